import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Rotations } from '../../tokens/index.ts';
import type { RouteContext } from '../app.ts';
import { adminActorOf } from '../auth.ts';

// Rotation schedules (docs/governance.md, "Rotation schedules"). The response schemas are the
// guard: a pending key's public half goes out, never a private key, refresh token or secret.

const flag = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const kind = z.enum(['refresh_token', 'private_key', 'client_secret']);

const item = z.object({
  kind,
  connection: z.string().optional(),
  provider: z.string(),
  environment: z.string(),
  owner: z.string().optional(),
  issued_at: z.string().nullable(),
  due_at: z.string().nullable(),
  state: z.enum(['current', 'due', 'pending', 'verifying', 'owner_action', 'admin_action']),
  action: z.enum(['none', 'refresh', 'generate_key', 'check_key', 'verify_old_token', 'notify']),
  last_error: z.string().optional(),
  next_attempt_at: z.string().optional(),
});

const outcome = z.object({
  kind,
  connection: z.string().optional(),
  provider: z.string(),
  environment: z.string(),
  outcome: z.enum(['completed', 'failed', 'pending', 'verifying', 'skipped', 'planned', 'notified']),
  verified: z.boolean().optional(),
  verification: z.enum(['introspection', 'token_request', 'unsupported']).optional(),
  detail: z.string(),
  public_key_thumbprint: z.string().optional(),
});

const jwk = z.object({ kty: z.string(), kid: z.string(), alg: z.string(), use: z.string(), n: z.string().optional(), e: z.string().optional(), crv: z.string().optional(), x: z.string().optional(), y: z.string().optional() });

const status = item.extend({
  pending_key: z
    .object({ thumbprint: z.string(), public_key_pem: z.string(), public_key_jwk: jwk, since: z.string() })
    .optional(),
});

export function rotationRoutes(rotations: Rotations) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    r.addHook('onRequest', ctx.requireAdmin);
    const tags = ['rotations'];
    const security = [{ admin: [] }];

    r.get(
      '/v1/rotations',
      {
        schema: {
          tags,
          security,
          summary: 'List credentials and their rotation state',
          description: 'Refresh tokens, private keys and client secrets with when they were issued, when rotation is due, and what the next step is (`due=true`: only those due).',
          querystring: z.object({ due: flag.optional(), limit: z.coerce.number().int().min(1).max(1000).default(500) }),
          response: { 200: z.object({ rotations: z.array(item) }) },
        },
      },
      async (req) => ({ rotations: await rotations.list({ due: req.query.due ?? false, limit: req.query.limit }) }),
    );

    r.post(
      '/v1/rotations/run',
      {
        schema: {
          tags,
          security,
          summary: 'Rotate what is due now',
          description:
            'One rotation pass over the credentials that are due (or `connection=ID`: that one now, whatever its age): new refresh tokens, new key pairs pending registration, ' +
            'notices to owners and admins for what Warrant cannot rotate itself. `dry_run=true` plans without doing.',
          problems: ['not_found'],
          querystring: z.object({
            // Only due credentials are rotated by a pass; `connection` rotates one now, whatever its age.
            due: flag.refine((v) => v, { message: 'only due=true is supported: a pass rotates what is due (or ?connection=ID)' }).optional(),
            dry_run: flag.optional(),
            connection: z.string().min(1).max(64).optional(),
          }),
          response: { 200: z.object({ dry_run: z.boolean(), results: z.array(outcome), notices_sent: z.number().int() }) },
        },
      },
      async (req) => rotations.run({ dryRun: req.query.dry_run ?? false, connection: req.query.connection, actor: adminActorOf(req) }),
    );

    r.get(
      '/v1/rotations/:connection',
      {
        schema: {
          tags,
          security,
          summary: "A connection's rotation state",
          description: 'Its credential, due date, state and next action; a pending key\'s public half (PEM and JWK) to register at the provider. Never a private key or a token.',
          problems: ['not_found'],
          params: z.object({ connection: z.string().min(1).max(64) }),
          response: { 200: status },
        },
      },
      async (req) => rotations.status(req.params.connection),
    );
  };
}
