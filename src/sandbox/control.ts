import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { RevokeOutcome, RevokeTarget } from './bulk.ts';
import type { SandboxFaults } from './faults.ts';
import type { OutageView } from './outage.ts';
import { BodyError, readJson, sendEmpty, sendJson } from './http.ts';
import type { SandboxStats } from './stats.ts';

// The knobs over HTTP, for a `warrant sandbox` running in another process (loopback only, like
// the rest of the sandbox; no credential, it is a test double):
//   GET    /_sandbox/stats                 → stats
//   POST   /_sandbox/stats/reset           → 204
//   GET    /_sandbox/faults                → current faults
//   PUT    /_sandbox/faults   SandboxFaults → replaces them (POST accepted too); DELETE clears
//   PUT    /_sandbox/access-token-ttl {"seconds": N} → for tokens issued afterwards
//   POST   /_sandbox/revoke-grant {"token": "…"} → 204, or 404 when the token is unknown
//   GET    /_sandbox/provider[?id=…]       → the provider definition (JSON)
// and the ones for people (`warrant sandbox revoke|outage|expire-tokens|status`), which need no token:
//   POST   /_sandbox/revoke {"user": "…"} | {"all": true} → {revoked, clientCredentials}
//   POST   /_sandbox/outage {"seconds": N, "api"?: true}   → {tokenEndpointUntil, apiUntil}
//   POST   /_sandbox/expire-tokens                        → {expired}
//   GET    /_sandbox/status                               → stats, faults, outage, live grants

export interface ControlTarget {
  stats(): SandboxStats;
  resetStats(): void;
  getFaults(): SandboxFaults;
  setFaults(f: SandboxFaults): void;
  setAccessTokenTtl(seconds: number): void;
  revokeGrant(token: string): Promise<boolean>;
  revokeGrants(target: RevokeTarget): Promise<RevokeOutcome>;
  expireAccessTokens(): number;
  startOutage(seconds: number, opts?: { api?: boolean }): OutageView;
  status(): object;
  providerDefinition(id?: string): object;
}

const ttlBody = z.strictObject({ seconds: z.number().int().positive() });
const revokeBody = z.strictObject({ token: z.string().min(1) });
// The sandbox's account ids (idp.ts findAccount).
const revokeAllBody = z.union([
  z.strictObject({ user: z.string().regex(/^[a-z0-9-]{1,32}$/, { message: 'a sandbox user id ([a-z0-9-], at most 32)' }) }),
  z.strictObject({ all: z.literal(true) }),
], { error: 'either {"user": "…"} or {"all": true}' });
const outageBody = z.strictObject({ seconds: z.number().int().min(0).max(3600), api: z.boolean().optional() });

export function createControlHandler(target: ControlTarget) {
  async function dispatch(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<boolean> {
    const m = req.method ?? 'GET';
    if (path === '/stats' && m === 'GET') sendJson(res, 200, target.stats());
    else if (path === '/stats/reset' && m === 'POST') {
      target.resetStats();
      sendEmpty(res, 204);
    } else if (path === '/faults' && m === 'GET') sendJson(res, 200, target.getFaults());
    else if (path === '/faults' && (m === 'PUT' || m === 'POST')) {
      target.setFaults(((await readJson(req)) ?? {}) as SandboxFaults);
      sendJson(res, 200, target.getFaults());
    } else if (path === '/faults' && m === 'DELETE') {
      target.setFaults({});
      sendEmpty(res, 204);
    } else if (path === '/access-token-ttl' && (m === 'PUT' || m === 'POST')) {
      const body = ttlBody.parse(await readJson(req));
      target.setAccessTokenTtl(body.seconds);
      sendJson(res, 200, { seconds: body.seconds });
    } else if (path === '/revoke-grant' && m === 'POST') {
      const body = revokeBody.parse(await readJson(req));
      if (await target.revokeGrant(body.token)) sendEmpty(res, 204);
      else sendJson(res, 404, { error: 'not_found', error_description: 'no token, grant or client-credentials token matches' });
    } else if (path === '/revoke' && m === 'POST') {
      const body = revokeAllBody.parse(await readJson(req));
      sendJson(res, 200, await target.revokeGrants('all' in body ? { all: true } : { user: body.user }));
    } else if (path === '/outage' && m === 'POST') {
      const body = outageBody.parse(await readJson(req));
      sendJson(res, 200, target.startOutage(body.seconds, { api: body.api }));
    } else if (path === '/expire-tokens' && m === 'POST') {
      await readJson(req);
      sendJson(res, 200, { expired: target.expireAccessTokens() });
    } else if (path === '/status' && m === 'GET') sendJson(res, 200, target.status());
    else if (path === '/provider' && m === 'GET') sendJson(res, 200, target.providerDefinition(query.get('id') ?? undefined));
    else return false;
    return true;
  }

  return async function handleControl(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> {
    try {
      if (!(await dispatch(req, res, path, query))) sendJson(res, 404, { error: 'not_found' });
    } catch (err) {
      if (err instanceof BodyError || err instanceof TypeError || err instanceof z.ZodError) {
        const detail = err instanceof z.ZodError ? err.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ') : err.message;
        sendJson(res, 400, { error: 'invalid_request', error_description: detail });
        return;
      }
      throw err;
    }
  };
}
