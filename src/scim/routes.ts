import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { defaults } from '../config/index.ts';
import { bearerOf, clientKey } from '../http/auth.ts';
import { createMemoryBuckets } from '../limits/index.ts';
import { isStoreUnavailable } from '../store/index.ts';
import * as discovery from './discovery.ts';
import { ScimError, invalidValue } from './errors.ts';
import { WarrantError } from '../errors/index.ts';
import { parseFilter } from './filter.ts';
import { LIST_SCHEMA, applyPatch, readPatch, readUser, toScimUser, type UserRecord } from './resource.ts';
import type { ScimUsers } from './users.ts';

// SCIM 2.0 at /scim/v2 (RFC 7644): its own bearer token, its own media type and error bodies.

export const SCIM_PREFIX = '/scim/v2';
export const SCIM_CONTENT_TYPE = 'application/scim+json; charset=utf-8';

export interface ScimRoutesDeps {
  users: ScimUsers;
  /** WARRANT_SCIM_TOKEN. */
  token: string;
  publicUrl: string;
  /** Failed authentications per client address before 429 (default: the admin API's). */
  authLimit?: { failuresPerSecond: number; failureBurst: number; now?: () => number };
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** Compares hashes, so neither the length nor a prefix of the token leaks through timing. */
export function tokenMatcher(token: string): (candidate: string | undefined) => boolean {
  const expected = sha256(token);
  return (candidate) => candidate !== undefined && timingSafeEqual(sha256(candidate), expected);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

function send(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).header('content-type', SCIM_CONTENT_TYPE).header('cache-control', 'no-store').send(JSON.stringify(body));
}

function asScimError(err: FastifyError | Error, request: FastifyRequest): ScimError {
  if (err instanceof ScimError) return err;
  // The app's own application/json parser (invalid UTF-8), or the offboarding service.
  if (err instanceof WarrantError && err.status < 500) return new ScimError(err.status, err.status === 400 ? 'invalidSyntax' : undefined, err.detail ?? 'the request is malformed');
  if (err instanceof WarrantError && err.code === 'unavailable') {
    return new ScimError(503, undefined, err.detail ?? 'Warrant cannot serve this right now; try again shortly', { cause: err, retryAfterSeconds: 1 });
  }
  const code = (err as FastifyError).code;
  if (code === 'FST_ERR_CTP_INVALID_JSON_BODY' || code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return new ScimError(400, 'invalidSyntax', 'body: is not valid JSON');
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new ScimError(415, undefined, 'content-type: send application/scim+json');
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new ScimError(413, undefined, 'body: larger than allowed');
  if (isStoreUnavailable(err)) return new ScimError(503, undefined, 'the store is unreachable or saturated right now; try again shortly', { cause: err, retryAfterSeconds: 1 });
  const status = (err as FastifyError).statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) return new ScimError(status, undefined, 'the request is malformed');
  request.log.error({ err }, 'SCIM request failed');
  return new ScimError(500, undefined, 'internal error');
}

/** `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5), top-level names; id and schemas always stay. */
function projector(query: Record<string, unknown>): (r: Record<string, unknown>) => Record<string, unknown> {
  const names = (v: unknown) =>
    typeof v === 'string' && v.trim() ? new Set(v.split(',').map((s) => s.trim().replace(/^urn:ietf:params:scim:schemas:core:2\.0:User:/i, '').split('.')[0]!.toLowerCase())) : undefined;
  const only = names(query.attributes);
  const excluded = names(query.excludedAttributes);
  if (!only && !excluded) return (r) => r;
  return (r) =>
    Object.fromEntries(
      Object.entries(r).filter(([k]) => {
        const key = k.toLowerCase();
        if (key === 'id' || key === 'schemas') return true;
        return only ? only.has(key) : !excluded!.has(key);
      }),
    );
}

function intParam(name: string, v: unknown, fallback: number): number {
  if (v === undefined || v === '') return fallback;
  if (typeof v !== 'string' || !/^-?\d{1,9}$/.test(v)) throw invalidValue(name, 'must be an integer');
  return Number(v);
}

export function scimRoutes(deps: ScimRoutesDeps) {
  const matches = tokenMatcher(deps.token);
  const base = `${deps.publicUrl}${SCIM_PREFIX}`;
  const limit = deps.authLimit ?? { failuresPerSecond: defaults.adminAuthFailuresPerSecond, failureBurst: defaults.adminAuthFailureBurst };
  const failures = createMemoryBuckets({ now: limit.now });
  const location = (u: UserRecord) => `${base}/Users/${encodeURIComponent(u.id)}`;

  return async (app: FastifyInstance) => {
    await app.register(
      async (scim) => {
        // Okta and Entra send application/scim+json (Entra sometimes application/json, the app's own parser).
        scim.addContentTypeParser('application/scim+json', { parseAs: 'buffer' }, (request, body, done) => {
          let text: string;
          try {
            text = strictUtf8.decode(body as Buffer);
          } catch {
            done(new ScimError(400, 'invalidSyntax', 'body: is not valid UTF-8'), undefined);
            return;
          }
          scim.getDefaultJsonParser('error', 'error')(request, text, done);
        });
        scim.setErrorHandler((err: FastifyError, request, reply) => {
          const e = asScimError(err, request);
          if (e.status === 401) reply.header('www-authenticate', 'Bearer realm="warrant-scim"');
          if (e.retryAfterSeconds !== undefined) reply.header('retry-after', String(Math.max(1, Math.ceil(e.retryAfterSeconds))));
          return send(reply, e.status, e.toBody());
        });
        scim.setNotFoundHandler((_request, reply) => send(reply, 404, new ScimError(404, undefined, 'no such SCIM endpoint (Users only)').toBody()));

        scim.addHook('onRequest', async (request) => {
          if (matches(bearerOf(request))) return;
          const refused = failures.take([{ key: clientKey(request.ip), ratePerSecond: limit.failuresPerSecond, burst: limit.failureBurst }]);
          if (refused) {
            throw new ScimError(429, undefined, 'too many failed authentications from this address; wait before trying again', { retryAfterSeconds: refused.waitMs / 1000 });
          }
          throw new ScimError(401, undefined, 'send WARRANT_SCIM_TOKEN as Authorization: Bearer …');
        });

        // In the reference: SCIM's own media type and error responses (RFC 7644 §3.12), not problems.
        const scimJson = (description: string) => ({ description, content: { 'application/scim+json': { schema: { type: 'object' } } } });
        const errors = {
          400: scimJson('SCIM error: `invalidSyntax`, `invalidFilter`, `invalidValue`'),
          401: scimJson('SCIM error: WARRANT_SCIM_TOKEN missing or wrong'),
          404: scimJson('SCIM error: no such resource'),
          429: scimJson('SCIM error: too many failed authentications from this address (Retry-After)'),
          503: scimJson('SCIM error: the store cannot be reached right now'),
        };
        const doc = (summary: string, description: string, ok: Record<string, { description: string; content?: Record<string, unknown> }>) => ({
          schema: { tags: ['scim'], security: [{ scim: [] }], summary, description, problems: false as const, otherResponses: { ...ok, ...errors } },
        });
        const discoveryDoc = (what: string) => doc(what, `${what} (RFC 7644 §4), for the identity provider's setup.`, { 200: scimJson(what) });
        const user = scimJson('The User (userName = owner id)');
        scim.get('/ServiceProviderConfig', discoveryDoc('Service provider configuration'), (_req, reply) => send(reply, 200, discovery.serviceProviderConfig(base)));
        scim.get('/ResourceTypes', discoveryDoc('Resource types'), (_req, reply) => send(reply, 200, discovery.resourceTypes(base)));
        scim.get<{ Params: { id: string } }>('/ResourceTypes/:id', discoveryDoc('A resource type'), (req, reply) => {
          const found = discovery.resourceType(base, req.params.id);
          return found ? send(reply, 200, found) : send(reply, 404, new ScimError(404, undefined, 'no such resource type').toBody());
        });
        scim.get('/Schemas', discoveryDoc('Schemas'), (_req, reply) => send(reply, 200, discovery.schemas(base)));
        scim.get<{ Params: { id: string } }>('/Schemas/:id', discoveryDoc('A schema'), (req, reply) => {
          const found = discovery.schema(base, req.params.id);
          return found ? send(reply, 200, found) : send(reply, 404, new ScimError(404, undefined, 'no such schema').toBody());
        });

        const listDoc = doc('List or find Users', 'Owners as SCIM Users, filtered (`userName eq "…"` and the like), paged with `startIndex` and `count`.', { 200: scimJson('A ListResponse') });
        scim.get<{ Querystring: Record<string, unknown> }>('/Users', listDoc, async (req, reply) => {
          const q = req.query;
          if (q.filter !== undefined && typeof q.filter !== 'string') throw new ScimError(400, 'invalidFilter', 'filter: give it once');
          const filter = typeof q.filter === 'string' && q.filter.trim() ? parseFilter(q.filter) : undefined;
          // RFC 7644 §3.4.2.4: startIndex below 1 is 1, a negative count is 0.
          const startIndex = Math.max(1, intParam('startIndex', q.startIndex, 1));
          const count = Math.min(discovery.MAX_RESULTS, Math.max(0, intParam('count', q.count, 100)));
          const { total, users } = await deps.users.list(filter, { startIndex, count });
          const project = projector(q);
          return send(reply, 200, {
            schemas: [LIST_SCHEMA],
            totalResults: total,
            startIndex,
            itemsPerPage: users.length,
            Resources: users.map((u) => project(toScimUser(u, location(u)))),
          });
        });

        scim.post('/Users', doc('Provision a User', 'Creates the owner (userName = owner id).', { 201: user }), async (req, reply) => {
          const user = await deps.users.create(readUser(req.body));
          reply.header('location', location(user));
          return send(reply, 201, toScimUser(user, location(user)));
        });

        scim.get<{ Params: { id: string }; Querystring: Record<string, unknown> }>('/Users/:id', doc('Read a User', 'One owner as a SCIM User.', { 200: user }), async (req, reply) => {
          const user = await deps.users.get(req.params.id);
          return send(reply, 200, projector(req.query)(toScimUser(user, location(user))));
        });

        scim.put<{ Params: { id: string } }>('/Users/:id', doc('Replace a User', 'Replaces the User; `active: false` offboards the owner: every agent and upstream grant revoked and verified.', { 200: user }), async (req, reply) => {
          const input = readUser(req.body);
          const user = await deps.users.replace(req.params.id, input);
          return send(reply, 200, toScimUser(user, location(user)));
        });

        scim.patch<{ Params: { id: string } }>('/Users/:id', doc('Update a User', 'SCIM PatchOp (RFC 7644 §3.5.2); `active: false` offboards the owner.', { 200: user }), async (req, reply) => {
          const ops = readPatch(req.body);
          const user = await deps.users.patch(req.params.id, (state) => applyPatch(state, ops));
          return send(reply, 200, toScimUser(user, location(user)));
        });

        scim.delete<{ Params: { id: string } }>('/Users/:id', doc('Deprovision a User', 'Offboards the owner (as `active: false`).', { 204: { description: 'Offboarded' } }), async (req, reply) => {
          await deps.users.remove(req.params.id);
          return reply.code(204).send();
        });
      },
      { prefix: SCIM_PREFIX },
    );
  };
}
