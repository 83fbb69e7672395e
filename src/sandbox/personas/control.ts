import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { BodyError, readJson, sendEmpty, sendJson } from '../http.ts';
import type { PersonaDefinition } from './definition.ts';
import type { PersonaEngine } from './engine.ts';

// The persona's knobs over HTTP, under the sandbox's control path (the shared ones, stats,
// access-token-ttl and revoke-grant, act on the persona too: see server.ts):
//   POST /_sandbox/invalidate-token {"token": "…"}   → 204, 404 when unknown
//   POST /_sandbox/expire-next {"count": N}         → the next N API calls answer "expired"
//   POST /_sandbox/withdraw-scopes {"token", "scopes": […]} → 204, the grant loses them; 404 when unknown
//   GET  /_sandbox/persona                          → id, catalog entries, hosts, persona stats
//   GET  /_sandbox/provider[?id=…&extends=…]        → the persona's provider definition

const tokenBody = z.strictObject({ token: z.string().min(1) });
const countBody = z.strictObject({ count: z.number().int().min(0) });
const withdrawBody = z.strictObject({ token: z.string().min(1), scopes: z.array(z.string().min(1)).min(1) });

export function createPersonaControl(engine: PersonaEngine, definition: (opts: { id?: string; extends?: string }) => PersonaDefinition) {
  return async function handlePersonaControl(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<boolean> {
    const m = req.method ?? 'GET';
    try {
      if (path === '/invalidate-token' && m === 'POST') {
        const { token } = tokenBody.parse(await readJson(req));
        if (engine.invalidateAccessToken(token)) sendEmpty(res, 204);
        else sendJson(res, 404, { error: 'not_found', error_description: 'no such access token' });
      } else if (path === '/expire-next' && m === 'POST') {
        const { count } = countBody.parse(await readJson(req));
        engine.expireNextApiCalls(count);
        sendJson(res, 200, { count });
      } else if (path === '/withdraw-scopes' && m === 'POST') {
        const { token, scopes } = withdrawBody.parse(await readJson(req));
        if (engine.withdrawScopes(token, scopes)) sendEmpty(res, 204);
        else sendJson(res, 404, { error: 'not_found', error_description: 'no such token' });
      } else if (path === '/persona' && m === 'GET') {
        const { persona } = engine;
        sendJson(res, 200, { id: persona.id, name: persona.name, catalog: persona.catalog, hosts: persona.hosts, not_modelled: persona.notModelled, stats: engine.stats() });
      } else if (path === '/provider' && m === 'GET') {
        sendJson(res, 200, definition({ id: query.get('id') ?? undefined, extends: query.get('extends') ?? undefined }));
      } else return false;
    } catch (err) {
      if (!(err instanceof BodyError || err instanceof TypeError || err instanceof z.ZodError)) throw err;
      const detail = err instanceof z.ZodError ? err.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ') : err.message;
      sendJson(res, 400, { error: 'invalid_request', error_description: detail });
    }
    return true;
  };
}
