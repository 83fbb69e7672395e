import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import type { FaultState } from './faults.ts';
import type { OutageState } from './outage.ts';
import { BodyError, delay, readJson, sendEmpty, sendJson } from './http.ts';
import { apiScopes, type ResolvedOptions } from './options.ts';
import type { SandboxStats } from './stats.ts';

// The resource server: a tiny in-memory items API that checks bearer tokens against the IdP in
// process (the tokens are opaque, so a revocation takes effect on the very next call).

export interface ApiDeps {
  provider: Provider;
  apiBaseUrl: string;
  /** RFC 9728 metadata URL, advertised in WWW-Authenticate. */
  resourceMetadataUrl: string;
  options: ResolvedOptions;
  faults: FaultState;
  /** A timed outage (`POST /_sandbox/outage` with `api`) answers 503 before any fault. */
  outage?: OutageState;
  stats: SandboxStats;
  signal: AbortSignal;
}

interface Principal {
  sub: string;
  scope: string;
  client_id: string;
}

type Lookup = { ok: true; principal: Principal } | { ok: false; reason: 'missing' | 'expired' | 'invalid' };

const itemInput = z.looseObject({ name: z.string().min(1).max(500) });
const itemPatch = z.looseObject({ name: z.string().min(1).max(500).optional() });
type Item = z.infer<typeof itemInput> & { id: string; created_at: string; updated_at: string };

const bearer = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

export function createApiHandler(deps: ApiDeps) {
  const { provider, apiBaseUrl, faults, stats, signal } = deps;
  const { log } = deps.options;
  const items = new Map<string, Item>();
  for (const name of ['first item', 'second item']) {
    const now = new Date().toISOString();
    const id = randomUUID();
    items.set(id, { id, name, created_at: now, updated_at: now });
  }

  async function lookup(req: IncomingMessage): Promise<Lookup> {
    const token = bearer.exec(req.headers.authorization ?? '')?.[1];
    if (!token) return { ok: false, reason: 'missing' };
    const at = await provider.AccessToken.find(token, { ignoreExpiration: true });
    if (at) {
      if (at.isExpired) return { ok: false, reason: 'expired' };
      // A revoked grant kills its tokens; checking the grant too mirrors oidc-provider's userinfo.
      if (!(await provider.Grant.find(at.grantId))) return { ok: false, reason: 'invalid' };
      if (at.expiresWithSession && !(at.sessionUid && (await provider.Session.findByUid(at.sessionUid)))) return { ok: false, reason: 'invalid' };
      if (at.aud !== undefined && ![at.aud].flat().includes(apiBaseUrl)) return { ok: false, reason: 'invalid' };
      return { ok: true, principal: { sub: at.accountId, scope: at.scope ?? '', client_id: at.clientId ?? '' } };
    }
    const cc = await provider.ClientCredentials.find(token, { ignoreExpiration: true });
    if (cc) {
      if (cc.isExpired) return { ok: false, reason: 'expired' };
      if (cc.aud !== undefined && ![cc.aud].flat().includes(apiBaseUrl)) return { ok: false, reason: 'invalid' };
      // RFC 9068 §2.2: for a client acting for itself, the subject is the client.
      return { ok: true, principal: { sub: cc.clientId ?? '', scope: cc.scope ?? '', client_id: cc.clientId ?? '' } };
    }
    return { ok: false, reason: 'invalid' };
  }

  function refuse(res: ServerResponse, reason: 'missing' | 'expired' | 'invalid'): void {
    if (faults.bodyLevelAuthFailure()) {
      // Slack style: 200 with the failure in the body (the silent-expiry case of DESIGN.md).
      const error = reason === 'missing' ? 'not_authed' : reason === 'expired' ? 'token_expired' : 'invalid_auth';
      sendJson(res, 200, { ok: false, error });
      return;
    }
    const meta = `resource_metadata="${deps.resourceMetadataUrl}"`;
    if (reason === 'missing') {
      // RFC 6750 §3.1: no error code when the request carried no credentials.
      sendJson(res, 401, { error: 'unauthorized', error_description: 'a bearer token is required' }, { 'www-authenticate': `Bearer realm="sandbox", ${meta}` });
      return;
    }
    const description = reason === 'expired' ? 'the access token expired' : 'the access token is invalid or revoked';
    sendJson(res, 401, { error: 'invalid_token', error_description: description }, {
      'www-authenticate': `Bearer realm="sandbox", error="invalid_token", error_description="${description}", ${meta}`,
    });
  }

  function requireScope(res: ServerResponse, principal: Principal, scope: string): boolean {
    if (principal.scope.split(' ').includes(scope)) return true;
    // RFC 6750 §3.1: insufficient_scope with the scope needed.
    const description = `this request needs the ${scope} scope`;
    sendJson(res, 403, { error: 'insufficient_scope', error_description: description, scope }, {
      'www-authenticate': `Bearer realm="sandbox", error="insufficient_scope", error_description="${description}", scope="${scope}"`,
    });
    return false;
  }

  async function route(req: IncomingMessage, res: ServerResponse, path: string, principal: Principal): Promise<void> {
    const method = req.method ?? 'GET';
    if (path === '/whoami') {
      if (method !== 'GET') return sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET' });
      return sendJson(res, 200, principal);
    }
    if (path === '/items' || path === '/items/') {
      if (method === 'GET') {
        if (requireScope(res, principal, apiScopes.read)) sendJson(res, 200, { items: [...items.values()] });
        return;
      }
      if (method !== 'POST') return sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, POST' });
      if (!requireScope(res, principal, apiScopes.write)) return;
      const input = itemInput.safeParse(await readJson(req));
      if (!input.success) return sendJson(res, 400, { error: 'invalid_request', error_description: input.error.issues[0]?.message });
      const now = new Date().toISOString();
      const item: Item = { ...input.data, id: randomUUID(), created_at: now, updated_at: now };
      items.set(item.id, item);
      return sendJson(res, 201, item, { location: `${apiBaseUrl}/items/${item.id}` });
    }
    const match = /^\/items\/([^/]+)$/.exec(path);
    if (!match?.[1]) return sendJson(res, 404, { error: 'not_found' });
    const id = decodeURIComponent(match[1]);
    const existing = items.get(id);
    const needed = method === 'GET' ? apiScopes.read : apiScopes.write;
    if (!['GET', 'PUT', 'PATCH', 'DELETE'].includes(method)) return sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, PUT, PATCH, DELETE' });
    if (!requireScope(res, principal, needed)) return;
    if (method === 'GET') return existing ? sendJson(res, 200, existing) : sendJson(res, 404, { error: 'not_found' });
    if (method === 'DELETE') {
      if (!items.delete(id)) return sendJson(res, 404, { error: 'not_found' });
      return sendEmpty(res, 204);
    }
    const now = new Date().toISOString();
    if (method === 'PUT') {
      const input = itemInput.safeParse(await readJson(req));
      if (!input.success) return sendJson(res, 400, { error: 'invalid_request', error_description: input.error.issues[0]?.message });
      const item: Item = { ...input.data, id, created_at: existing?.created_at ?? now, updated_at: now };
      items.set(id, item);
      return sendJson(res, existing ? 200 : 201, item);
    }
    if (!existing) return sendJson(res, 404, { error: 'not_found' });
    const input = itemPatch.safeParse(await readJson(req));
    if (!input.success) return sendJson(res, 400, { error: 'invalid_request', error_description: input.error.issues[0]?.message });
    const item = { ...existing, ...input.data, id, created_at: existing.created_at, updated_at: now } as Item;
    items.set(id, item);
    return sendJson(res, 200, item);
  }

  /** Handles a request whose path (after the API prefix) is `path`. */
  return async function handleApi(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    stats.apiRequests += 1;
    const down = deps.outage?.secondsLeft('api') ?? 0;
    if (down > 0) {
      log(`api ${req.method} ${path} -> 503 (outage, ${down}s left)`);
      return sendJson(res, 503, { error: 'injected_fault', error_description: 'the sandbox API is in an outage on purpose' }, { 'retry-after': String(down) });
    }
    const fault = faults.take('api');
    if (fault?.delayMs && !(await delay(fault.delayMs, signal))) return;
    if (fault?.status !== undefined) {
      log(`api ${req.method} ${path} -> ${fault.status} (injected, ${fault.left} left)`);
      const headers: Record<string, string> = fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {};
      return sendJson(res, fault.status, { error: 'injected_fault', error_description: `the sandbox answered ${fault.status} on purpose` }, headers);
    }
    const found = await lookup(req);
    if (!found.ok) {
      log(`api ${req.method} ${path} -> refused (${found.reason} token)`);
      return refuse(res, found.reason);
    }
    try {
      await route(req, res, path, found.principal);
    } catch (err) {
      if (!(err instanceof BodyError)) throw err;
      sendJson(res, 400, { error: 'invalid_request', error_description: err.message });
    }
    log(`api ${req.method} ${path} -> ${res.statusCode}`);
  };
}
