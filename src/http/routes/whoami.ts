import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ADMIN_ROLES, actorOf } from '../../admin/index.ts';
import type { RouteContext } from '../app.ts';
import { adminPrincipalOf } from '../auth.ts';

const whoami = z.object({
  kind: z.enum(['token', 'key']).describe('`token`: the admin token; `key`: an admin key (wak_…)'),
  role: z.enum(ADMIN_ROLES),
  actor: z.string().describe('how what this credential does is written in the audit log (`admin`, `admin_key:adk_…`)'),
  key_id: z.string().optional(),
  name: z.string().optional(),
});

/** Who the admin credential is: every role may ask (the dashboard signs in and shows the role with it). */
export function whoamiRoutes() {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    r.addHook('onRequest', ctx.requireAdmin);
    r.get(
      '/v1/whoami',
      {
        schema: {
          tags: ['admin-keys'],
          security: [{ admin: [] }],
          summary: 'The admin credential making the call',
          description: 'Its kind, role and audit actor; never the credential itself. Any role.',
          response: { 200: whoami },
        },
      },
      async (req) => {
        const p = adminPrincipalOf(req)!;
        return { kind: p.kind, role: p.role, actor: actorOf(p), ...(p.kind === 'key' ? { key_id: p.id, name: p.name } : {}) };
      },
    );
  };
}
