import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RouteContext } from '../http/app.ts';
import type { LoginCodes } from './login-codes.ts';

// Admin API of the authorization server: owner login codes for the consent page's login step.

const loginCode = z.object({ owner: z.string(), code: z.string(), expires_at: z.string() });

export function authzRoutes(loginCodes: LoginCodes) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    r.addHook('onRequest', ctx.requireAdmin);
    r.post(
      '/v1/owners/:owner/login-codes',
      {
        schema: {
          tags: ['owners'],
          security: [{ admin: [] }],
          description: 'A one-time, short-lived code the owner types on the consent page to sign in (shown once, stored hashed).',
          params: z.object({ owner: z.string().trim().min(1).max(320) }),
          response: { 201: loginCode },
        },
      },
      async (req, reply) => {
        reply.header('cache-control', 'no-store');
        return reply.code(201).send(await loginCodes.issue(req.params.owner));
      },
    );
  };
}
