import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RouteContext } from '../http/app.ts';
import type { LoginCodes } from './login-codes.ts';
import type { HeadlessClients } from './headless.ts';

// Admin API of the authorization server: owner login codes for the consent page's login step.

const loginCode = z.object({ owner: z.string(), code: z.string(), expires_at: z.string() });

const jwk = z.looseObject({ kty: z.string().min(1).max(16), kid: z.string().max(200).optional() });
const headlessClientBody = z.strictObject({
  owner: z.string().trim().min(1).max(320),
  client_name: z.string().trim().min(1).max(120),
  jwks: z.object({ keys: z.array(jwk).min(1).max(10) }).optional(),
  jwks_uri: z.string().url().max(2000).optional(),
  scope: z.string().trim().max(1000).regex(/^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/, 'space-separated scope tokens').optional(),
});
const headlessClient = z.object({
  client_id: z.string(),
  owner: z.string(),
  agent_id: z.string(),
  client_name: z.string(),
  grant_types: z.array(z.string()),
  token_endpoint_auth_method: z.string(),
  scope: z.string().optional(),
});

export function authzRoutes(loginCodes: LoginCodes, headless?: HeadlessClients) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    r.addHook('onRequest', ctx.requireAdmin);
    r.post(
      '/v1/owners/:owner/login-codes',
      {
        schema: {
          tags: ['owners'],
          security: [{ admin: [] }],
          summary: 'Issue a login code for the consent page',
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
    if (headless) {
      r.post(
        '/v1/authz/clients',
        {
          schema: {
            tags: ['owners'],
            security: [{ admin: [] }],
            summary: 'Register a headless agent (client credentials)',
            problems: ['not_found', 'conflict'],
            description:
              'Registers a headless agent (SEP-1046): a client authenticating with private_key_jwt (its public keys in jwks or at jwks_uri) that gets client_credentials tokens, bound to `owner` as an agent.',
            body: headlessClientBody,
            response: { 201: headlessClient },
          },
        },
        async (req, reply) => reply.code(201).send(await headless.register(req.body as never)),
      );
    }
  };
}
