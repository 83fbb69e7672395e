import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { viewOf, type ConnectionService } from '../../tokens/index.ts';
import type { RouteContext } from '../app.ts';
import { adminActorOf } from '../auth.ts';
import { MAX_EXPIRES_IN_SECONDS } from '../../oauth/index.ts';
import { tagFilterOf, tagsBody, tagsPatchBody, tagsQuery, tagsView } from './tags.ts';

const id = z.object({ id: z.string().min(1).max(64) });
const scopeList = z.array(z.string().min(1).max(512)).max(200);
const params = z.record(z.string().regex(/^[a-z][a-z0-9_]*$/), z.string().max(2048));

export const connectionView = z.object({
  id: z.string(),
  provider: z.string(),
  environment: z.string(),
  owner: z.string(),
  status: z.enum(['active', 'reauth_required', 'revoked', 'error']),
  expires_at: z.string().nullable(),
  scopes: z.array(z.string()),
  requested_scopes: z.array(z.string()),
  missing_scopes: z.array(z.string()),
  last_refreshed_at: z.string().nullable(),
  last_error: z.string().optional(),
  account: z.string().optional(),
  created_at: z.string(),
  ...tagsView,
});

const importBody = z.strictObject({
  provider: z.string().min(1),
  environment: z.string().min(1).optional(),
  owner: z.string().min(1).max(320),
  access_token: z.string().min(1).max(16384).optional(),
  refresh_token: z.string().min(1).max(16384).optional(),
  // The same bound as a token endpoint's answer (src/oauth/token-response.ts): one year.
  expires_in: z.number().int().positive().max(MAX_EXPIRES_IN_SECONDS).optional(),
  scopes: scopeList,
  params: params.optional(),
  private_key: z.string().min(1).max(16384).optional(),
  ...tagsBody,
});

/** What a connection looks like on the wire (the reference's examples). */
export const connectionExample = {
  id: 'con_7hq2',
  provider: 'github',
  environment: 'production',
  owner: 'alice@example.com',
  status: 'active',
  expires_at: '2026-01-01T08:00:00.000Z',
  scopes: ['repo', 'read:user'],
  requested_scopes: ['repo', 'read:user'],
  missing_scopes: [],
  last_refreshed_at: '2026-01-01T00:00:00.000Z',
  created_at: '2025-12-01T09:30:00.000Z',
  end_user: 'user_42',
  organization: 'org_7',
  labels: { plan: 'pro' },
};

const revocationReport = z.object({
  id: z.string(),
  revoked: z.boolean(),
  verified: z.boolean(),
  verification: z.enum(['introspection', 'refresh_refused', 'api_refused', 'none']),
  detail: z.string(),
  deleted: z.boolean(),
});

export function connectionRoutes(connections: ConnectionService) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    r.addHook('onRequest', ctx.requireAdmin);
    const tags = ['connections'];
    const security = [{ admin: [] }];

    r.post(
      '/v1/connections',
      {
        schema: {
          tags,
          security,
          summary: 'Import an existing grant',
          description:
            'Creates a connection from tokens obtained elsewhere (an access token, a refresh token, or both; a private key for JWT bearer providers). ' +
            'The tokens are sealed in the vault at once and never shown again; from then on Warrant refreshes them ahead of expiry. ' +
            'To have the owner grant access in a browser instead, start a connect session.',
          problems: ['conflict'],
          body: importBody.meta({
            examples: [{ provider: 'github', owner: 'alice@example.com', access_token: 'gho_…', refresh_token: 'ghr_…', expires_in: 28800, scopes: ['repo', 'read:user'] }],
          }),
          response: { 201: connectionView.meta({ examples: [connectionExample] }) },
        },
      },
      async (req, reply) => {
        const row = await connections.importGrant(req.body, adminActorOf(req));
        return reply.code(201).send(viewOf(row));
      },
    );

    r.get(
      '/v1/connections',
      {
        schema: {
          tags,
          security,
          summary: 'List connections',
          description: 'Every connection, filtered by owner, status, provider and tags (end user, organization, labels). Tokens are never part of a view.',
          querystring: z.object({
            owner: z.string().min(1).optional(),
            status: z.enum(['active', 'reauth_required', 'revoked', 'error']).optional(),
            provider: z.string().min(1).optional(),
            ...tagsQuery,
          }),
          response: { 200: z.object({ connections: z.array(connectionView) }) },
        },
      },
      async (req) => {
        const { owner, status, provider } = req.query;
        return { connections: (await connections.list({ owner, status, provider, ...tagFilterOf(req.query) })).map(viewOf) };
      },
    );

    r.get(
      '/v1/connections/:id',
      {
        schema: {
          tags,
          security,
          summary: 'Read a connection',
          description: 'Its status (`active`, `reauth_required`, `revoked`, `error`), expiry, scopes granted and missing, last refresh and last error. Never a token.',
          problems: ['not_found'],
          params: id,
          response: { 200: connectionView.meta({ examples: [connectionExample] }) },
        },
      },
      async (req) => viewOf(await connections.get(req.params.id)),
    );

    // Tags only (end_user, organization, labels); role operate (admin/roles.ts).
    r.patch(
      '/v1/connections/:id',
      {
        schema: {
          tags,
          security,
          summary: "Change a connection's tags",
          description: 'Sets `end_user`, `organization` (`null` clears one) and `labels` (replaces them all); a member left out stays. Nothing else of a connection changes here.',
          problems: ['not_found'],
          params: id,
          body: z.strictObject(tagsPatchBody),
          response: { 200: connectionView },
        },
      },
      async (req) => viewOf(await connections.setTags(req.params.id, req.body, adminActorOf(req))),
    );

    r.delete(
      '/v1/connections/:id',
      {
        schema: {
          tags,
          security,
          summary: 'Revoke a connection',
          description:
            'Revokes the grant at the IdP (RFC 7009 where the provider has a revocation endpoint), verifies the revocation (introspection, a refused refresh, or a refused API call), ' +
            'then deletes the connection and its sealed tokens. The report says what was verified. If the IdP cannot revoke right now, the connection is kept (`upstream_unavailable`).',
          problems: ['not_found', 'upstream_unavailable'],
          params: id,
          response: { 200: revocationReport },
        },
      },
      async (req) => connections.revoke(req.params.id, adminActorOf(req)),
    );

    r.post(
      '/v1/connections/:id/refresh',
      {
        schema: {
          tags,
          security,
          summary: 'Refresh a connection now',
          description: 'Refreshes the access token at the IdP now, whatever its expiry (single-flight with any refresh already running). A refused refresh turns the connection `reauth_required`.',
          problems: ['not_found', 'conflict', 'reauth_required', 'refresh_unavailable'],
          params: id,
          response: { 200: z.object({ id: z.string(), expires_at: z.string().nullable(), refreshed: z.boolean() }) },
        },
      },
      async (req) => {
        const t = await connections.forceRefresh(req.params.id, adminActorOf(req));
        return { id: t.connectionId, expires_at: t.expiresAt === null ? null : new Date(t.expiresAt).toISOString(), refreshed: t.refreshed };
      },
    );
  };
}
