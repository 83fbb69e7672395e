import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyError, delay, sendJson } from '../http.ts';
import { isLoopbackUrl } from '../options.ts';
import type { FaultState } from '../faults.ts';
import { countTokenRequest, type SandboxStats } from '../stats.ts';
import { createGrantStore, type Grant } from './grants.ts';
import { bearerOf, compilePattern, parseBody, presentedClient, send, sendForm, type ParsedBody } from './request.ts';
import type { Answer, ApiRoute, Issued, Persona, RefusalReason, TokenErrorCode } from './types.ts';

// One engine runs every persona: it serves the persona's real URLs at `{origin}/{host}{path}`,
// keeps its grants (grants.ts) and answers in the persona's shapes (types.ts).

/** The sandbox client a persona knows; fixed development values, like the default sandbox's. */
export const personaClient = Object.freeze({ id: 'warrant-sandbox', secret: 'warrant-sandbox-secret' });

export interface RevocationRecord {
  method: string;
  contentType?: string;
  /** How the request authenticated: `basic`, `bearer`, `post` / `json` (secret in the body), `none`. */
  auth: string;
  /** The body members present (names only, never values). */
  fields: string[];
  status: number;
}

export interface PersonaStats {
  persona: string;
  /** Token requests by grant type. */
  tokenRequests: Record<string, number>;
  /** Token requests refused, by the engine's reason. */
  tokenErrors: Record<string, number>;
  revocations: RevocationRecord[];
  introspections: number;
  tenantRequests: number;
  apiRequests: number;
  /** Rotated-out refresh tokens presented outside any grace. */
  reuseDetected: number;
  /** API calls answered "expired" by the expire-next knob. */
  forcedExpiries: number;
}

export interface EngineDeps {
  persona: Persona;
  origin: string;
  faults: FaultState;
  stats: SandboxStats;
  log: (line: string) => void;
  signal: AbortSignal;
}

interface Endpoint {
  host: string;
  re: RegExp;
  names: string[];
}

/** `https://host/path` → its host and path (placeholders kept: `new URL` would encode the braces). */
export function splitUrl(real: string): { host: string; path: string } {
  const m = /^https:\/\/([^/?#]+)(\/[^?#]*)?$/.exec(real);
  if (!m) throw new TypeError(`persona URL is not https://host/path: ${real}`);
  return { host: m[1]!.toLowerCase(), path: m[2] ?? '' };
}

function endpoint(real: string): Endpoint {
  const { host, path } = splitUrl(real);
  return { host, ...compilePattern(path || '/') };
}

function matches(e: Endpoint, host: string, path: string): Record<string, string> | undefined {
  if (e.host !== host) return undefined;
  const m = e.re.exec(path);
  if (!m) return undefined;
  return Object.fromEntries(e.names.map((n, i) => [n, decodeURIComponent(m[i + 1]!)]));
}

const emptyPersonaStats = (persona: string): PersonaStats => ({
  persona,
  tokenRequests: {},
  tokenErrors: {},
  revocations: [],
  introspections: 0,
  tenantRequests: 0,
  apiRequests: 0,
  reuseDetected: 0,
  forcedExpiries: 0,
});

export function createPersonaEngine(deps: EngineDeps) {
  const { persona, origin, faults, log, signal } = deps;
  const grants = createGrantStore(persona);
  let stats = emptyPersonaStats(persona.id);
  let accessTtl = persona.token.accessTtl;
  let expireNext = 0;
  const hosts = new Set(persona.hosts.map((h) => h.toLowerCase()));

  const url = (real: string): string => {
    const { host, path } = splitUrl(real);
    return `${origin}/${host}${path}`;
  };
  const ep = {
    authorize: endpoint(persona.authorize.url),
    token: endpoint(persona.token.url),
    revocation: persona.revocation && endpoint(persona.revocation.url),
    introspection: persona.introspection && endpoint(persona.introspection.url),
    tenants: persona.tenants && endpoint(persona.tenants.url),
    discovery: persona.discovery && endpoint(`${persona.discovery.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`),
  };
  // An API base matches a path prefix ending at a segment boundary.
  const bases = persona.api.bases.map((b) => {
    const { host, path } = splitUrl(b);
    const { re, names } = compilePattern(path);
    return { host, names, re: new RegExp(`${path ? re.source.slice(0, -1) : '^'}(?=/|$)`) };
  });
  const routes = persona.api.routes.map((r) => ({ route: r, ...compilePattern(r.path) }));
  for (const e of [...Object.values(ep), ...bases]) {
    if (e && !hosts.has(e.host)) throw new TypeError(`persona ${persona.id}: ${e.host} is not one of its hosts`);
  }

  const split = (value: string | undefined, sep: string) => (value ?? '').split(sep).map((s) => s.trim()).filter(Boolean);

  function clientOk(c: ReturnType<typeof presentedClient>, allowed: readonly string[]): boolean {
    return allowed.includes(c.auth) && c.clientId === personaClient.id && (c.auth === 'none' || c.secret === personaClient.secret);
  }

  function missingHeader(req: IncomingMessage): Answer | undefined {
    for (const name of persona.requiredHeaders ?? []) {
      if (!req.headers[name.toLowerCase()]) return persona.missingHeader?.(name) ?? { status: 400, body: { error: 'invalid_request', error_description: `${name} header required` } };
    }
    return undefined;
  }

  function authorize(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void {
    const redirectUri = query.get('redirect_uri') ?? '';
    if (query.get('client_id') !== personaClient.id || !isLoopbackUrl(redirectUri)) {
      // RFC 6749 §4.1.2.1: never redirect to an unverified redirect URI.
      return sendJson(res, 400, { error: 'invalid_request', error_description: 'unknown client_id or a redirect_uri that is not loopback' });
    }
    const back = new URL(redirectUri);
    const state = query.get('state');
    const redirect = (params: Record<string, string>) => {
      for (const [k, v] of Object.entries(params)) back.searchParams.set(k, v);
      if (state !== null) back.searchParams.set('state', state);
      if (persona.authorize.iss) back.searchParams.set('iss', url(persona.authorize.iss));
      res.writeHead(302, { location: back.href, 'content-length': 0, 'cache-control': 'no-store' });
      res.end();
    };
    if (query.get('response_type') !== 'code') return redirect({ error: 'unsupported_response_type' });
    for (const [name, value] of Object.entries(persona.authorize.requiredParams ?? {})) {
      if (query.get(name) !== value) return redirect({ error: 'invalid_request', error_description: `${name}=${value} is required` });
    }
    const challenge = query.get('code_challenge') ?? undefined;
    const method = query.get('code_challenge_method');
    if ((challenge !== undefined || method !== null) && (method !== 'S256' || !challenge || !/^[A-Za-z0-9_-]{43}$/.test(challenge))) {
      return redirect({ error: 'invalid_request', error_description: 'PKCE: S256 with a 43-character challenge' });
    }
    const scopes = persona.authorize.capabilities ? [...persona.authorize.capabilities] : split(query.get('scope') ?? undefined, persona.authorize.separator);
    const secondaryParam = persona.authorize.secondaryScopeParam;
    const secondaryScopes = secondaryParam && query.has(secondaryParam) ? split(query.get(secondaryParam) ?? undefined, persona.authorize.separator) : undefined;
    const rule = persona.token.refreshToken;
    const withRefresh =
      rule === 'always' ? true : rule === 'never' ? false : 'scope' in rule ? scopes.includes(rule.scope) : query.get(rule.param) === rule.value;
    const { code, tenantId } = grants.createCode({ clientId: personaClient.id, scopes, secondaryScopes, withRefresh, redirectUri, challenge });
    log(`persona ${persona.id}: authorize -> code (${scopes.length} scopes${secondaryScopes ? `, ${secondaryScopes.length} secondary` : ''})`);
    redirect({ code, ...persona.authorize.callbackParams?.(tenantId) });
  }

  function issue(grant: Grant, grantType: Issued['grantType'], refreshToken: string | undefined): Issued {
    const { token, expiresIn } = grants.issueAccess(grant, accessTtl);
    return {
      grantType,
      access_token: token,
      refresh_token: refreshToken,
      expires_in: expiresIn,
      scopes: grant.scopes,
      tenantId: grant.tenantId,
      userId: grant.userId,
      clientId: grant.clientId,
      issuedAt: Date.now(),
      isSecondary: grant.secondary,
      url,
      clientSecret: personaClient.secret,
    };
  }

  async function token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const fault = faults.take('tokenEndpoint');
    if (fault?.delayMs && !(await delay(fault.delayMs, signal))) return;
    let body: ParsedBody | undefined;
    try {
      body = await parseBody(req);
    } catch (err) {
      if (!(err instanceof BodyError)) throw err;
    }
    const grantType = body?.params.grant_type;
    stats.tokenRequests[grantType ?? '?'] = (stats.tokenRequests[grantType ?? '?'] ?? 0) + 1;
    const answer = (a: Answer) => {
      countTokenRequest(deps.stats, grantType, a.status);
      log(`persona ${persona.id}: token grant_type=${grantType ?? '?'} -> ${a.status}`);
      send(res, a);
    };
    const refuse = (code: TokenErrorCode) => {
      stats.tokenErrors[code] = (stats.tokenErrors[code] ?? 0) + 1;
      answer(persona.token.error(code, grantType));
    };
    if (fault?.status !== undefined) {
      const headers: Record<string, string> = fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {};
      return answer({ status: fault.status, body: { error: 'temporarily_unavailable', error_description: 'the sandbox is failing on purpose' }, headers });
    }
    const headerMissing = missingHeader(req);
    if (headerMissing) return answer(headerMissing);
    if (!body || body.format !== persona.token.body) return refuse('invalid_request');
    const client = presentedClient(req, body);
    if (!clientOk(client, persona.token.clientAuth) || (client.auth === 'basic' && body.params.client_id !== undefined && body.params.client_id !== client.clientId)) {
      return refuse('invalid_client');
    }
    const p = body.params;
    let issued: Issued;
    if (grantType === 'authorization_code') {
      if (!p.code) return refuse('invalid_request');
      const redeemed = grants.redeemCode(p.code, personaClient.id, p.redirect_uri, p.code_verifier);
      if (!redeemed.ok) return refuse(redeemed.error);
      const [main, second] = redeemed.grants.map((g) => issue(g, 'authorization_code', g.withRefresh ? grants.issueRefresh(g) : undefined));
      issued = { ...main!, secondary: second };
    } else if (grantType === 'refresh_token') {
      if (!p.refresh_token) return refuse('invalid_request');
      const outcome = grants.refresh(p.refresh_token, personaClient.id);
      if (!outcome.ok) {
        if (outcome.reuse) {
          stats.reuseDetected += 1;
          deps.stats.reuseDetected += 1;
        }
        return refuse('invalid_grant');
      }
      issued = issue(outcome.grant, 'refresh_token', outcome.refreshToken);
    } else {
      return refuse('unsupported_grant_type');
    }
    const responseBody = persona.token.response(issued);
    countTokenRequest(deps.stats, grantType, 200);
    log(`persona ${persona.id}: token grant_type=${grantType} -> 200`);
    if (persona.token.formUnlessAcceptJson && !/application\/json/i.test(req.headers.accept ?? '')) return sendForm(res, 200, responseBody);
    sendJson(res, 200, responseBody);
  }

  async function revoke(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, captured: Record<string, string>): Promise<void> {
    const rule = persona.revocation!;
    deps.stats.revocations += 1;
    const body = await parseBody(req);
    const client = presentedClient(req, body);
    const bearer = bearerOf(req);
    const record: RevocationRecord = {
      method: req.method ?? 'GET',
      contentType: body.contentType,
      auth: bearer ? 'bearer' : client.auth,
      fields: Object.keys(body.params).sort(),
      status: 0,
    };
    const finish = (a: Answer) => {
      record.status = a.status;
      stats.revocations.push(record);
      log(`persona ${persona.id}: revocation ${record.method} (${record.auth}, ${record.contentType ?? 'no body'}) -> ${a.status}`);
      send(res, a);
    };
    const headerMissing = missingHeader(req);
    if (headerMissing) return finish(headerMissing);
    if (captured.client_id !== undefined && captured.client_id !== personaClient.id) return finish(rule.fail('bad_client'));
    const wantedFormat = rule.body === 'query-or-form' ? 'form' : rule.body;
    const bodyOk = rule.body === 'none' || body.format === wantedFormat || (rule.body === 'query-or-form' && body.format === 'other' && body.raw === '');
    if (!bodyOk) return finish(rule.fail('bad_request'));
    const fromBody = rule.tokenFields.map((f) => body.params[f]).find((v) => v !== undefined);
    const revokedToken = rule.auth === 'bearer' ? (bearer ?? fromBody) : (fromBody ?? (rule.body === 'query-or-form' ? (query.get('token') ?? undefined) : undefined));
    const clientAuthOk =
      rule.auth === 'basic' ? clientOk(client, ['basic']) : rule.auth === 'client' ? clientOk(client, persona.token.clientAuth) : true;
    if (!clientAuthOk) return finish(rule.fail('bad_client'));
    if (!revokedToken) return finish(rule.fail('bad_request'));
    const found = grants.find(revokedToken);
    if (!found || found.grant.revoked || found.grant.clientId !== personaClient.id) return finish(rule.fail('unknown_token'));
    grants.revokeGrantOf(revokedToken);
    finish(rule.ok);
  }

  async function introspect(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rule = persona.introspection!;
    stats.introspections += 1;
    deps.stats.introspections += 1;
    const body = await parseBody(req);
    const client = presentedClient(req, body);
    if (!clientOk(client, rule.auth === 'basic' ? ['basic'] : persona.token.clientAuth)) return sendJson(res, 401, { error: 'invalid_client' });
    if (body.format !== rule.body || !body.params.token) return sendJson(res, 400, { error: 'invalid_request' });
    const found = grants.find(body.params.token);
    if (!found?.active) return sendJson(res, 200, { active: false });
    sendJson(res, 200, { active: true, client_id: found.grant.clientId, scope: found.grant.scopes.join(' '), token_type: found.kind === 'access' ? 'access_token' : 'refresh_token' });
  }

  /** The grant behind the request's bearer token, or the persona's refusal. */
  function authenticate(req: IncomingMessage): { grant: Grant } | { refusal: Answer; reason: RefusalReason } {
    const token = bearerOf(req);
    if (!token) return { refusal: persona.api.refuse('missing'), reason: 'missing' };
    const found = grants.lookupAccess(token);
    if (!found.ok) return { refusal: persona.api.refuse(found.reason), reason: found.reason };
    if (expireNext > 0) {
      expireNext -= 1;
      stats.forcedExpiries += 1;
      return { refusal: persona.api.refuse('expired'), reason: 'expired' };
    }
    return { grant: found.grant };
  }

  function tenants(req: IncomingMessage, res: ServerResponse): void {
    stats.tenantRequests += 1;
    const who = authenticate(req);
    if ('refusal' in who) return send(res, who.refusal);
    sendJson(res, 200, persona.tenants!.body(who.grant.tenantId, who.grant.scopes, url));
  }

  function findRoute(method: string, rest: string, raw: string): ApiRoute | undefined {
    return routes.find(({ route, re }) => [route.method].flat().some((m) => m === '*' || m === method) && re.test(rest) && (!route.bodyMatch || route.bodyMatch.test(raw)))?.route;
  }

  async function api(req: IncomingMessage, res: ServerResponse, host: string, path: string): Promise<boolean> {
    let rest: string | undefined;
    let tenant: string | undefined;
    for (const b of bases) {
      const m = b.host === host ? b.re.exec(path) : null;
      if (!m) continue;
      rest = path.slice(m[0].length);
      tenant = b.names.includes('tenant') ? decodeURIComponent(m[b.names.indexOf('tenant') + 1]!) : undefined;
      break;
    }
    if (rest === undefined) return false;
    stats.apiRequests += 1;
    deps.stats.apiRequests += 1;
    const fault = faults.take('api');
    if (fault?.delayMs && !(await delay(fault.delayMs, signal))) return true;
    if (fault?.status !== undefined) {
      const headers: Record<string, string> = fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {};
      send(res, { status: fault.status, body: { error: 'injected_fault' }, headers });
      return true;
    }
    const method = req.method ?? 'GET';
    const raw = await parseBody(req).then((b) => b.raw);
    const answer = (a: Answer, note: string) => {
      log(`persona ${persona.id}: api ${method} ${path} -> ${a.status} (${note})`);
      send(res, a);
    };
    const headerMissing = missingHeader(req);
    if (headerMissing) return answer(headerMissing, 'missing header'), true;
    const who = authenticate(req);
    if ('refusal' in who) return answer(who.refusal, `${who.reason} token`), true;
    const { grant } = who;
    if (tenant !== undefined && tenant !== grant.tenantId) return answer({ status: 404, body: { error: 'not_found', error_description: 'no such tenant for this token' } }, 'other tenant'), true;
    const th = persona.api.tenantHeader;
    if (th && req.headers[th.name.toLowerCase()] !== grant.tenantId) return answer(th.wrong, 'tenant header'), true;
    const route = findRoute(method, rest || '/', raw);
    if (!route) return answer({ status: 404, body: { error: 'not_found' } }, 'no route'), true;
    const granted = grant.scopes.map((s) => s.toLowerCase());
    if (route.scopes.length > 0 && !route.scopes.some((s) => granted.includes(s.toLowerCase()))) {
      return answer(persona.api.missingScope(route.scopes, grant.scopes), 'missing scope'), true;
    }
    answer({ status: route.status ?? 200, body: route.body ?? {}, headers: persona.api.headers?.(grant.scopes) }, 'ok');
    return true;
  }

  /** Handles a request under `/{host}/…`; false when the persona serves no such host. */
  function discoveryDocument(): Record<string, unknown> {
    const d = persona.discovery!;
    return {
      issuer: url(d.issuer),
      authorization_endpoint: url(persona.authorize.url),
      token_endpoint: url(persona.token.url),
      ...(persona.revocation ? { revocation_endpoint: url(persona.revocation.url) } : {}),
      ...(persona.introspection ? { introspection_endpoint: url(persona.introspection.url) } : {}),
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      code_challenge_methods_supported: d.codeChallengeMethods,
      ...d.extra,
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse, pathname: string, query: URLSearchParams): Promise<boolean> {
    const slash = pathname.indexOf('/', 1);
    const host = (slash === -1 ? pathname.slice(1) : pathname.slice(1, slash)).toLowerCase();
    if (!hosts.has(host)) return false;
    const path = slash === -1 ? '/' : pathname.slice(slash);
    const method = req.method ?? 'GET';
    try {
      if (matches(ep.authorize, host, path)) {
        if (method !== 'GET') return sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET' }), true;
        return authorize(req, res, query), true;
      }
      if (matches(ep.token, host, path)) {
        if (method !== 'POST') return sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'POST' }), true;
        return await token(req, res), true;
      }
      const revocationMatch = ep.revocation && matches(ep.revocation, host, path);
      if (revocationMatch && method === persona.revocation!.method) return await revoke(req, res, query, revocationMatch), true;
      if (ep.introspection && matches(ep.introspection, host, path) && method === 'POST') return await introspect(req, res), true;
      if (ep.tenants && matches(ep.tenants, host, path) && method === 'GET') return tenants(req, res), true;
      if (ep.discovery && matches(ep.discovery, host, path) && method === 'GET') return sendJson(res, 200, discoveryDocument()), true;
      if (await api(req, res, host, path)) return true;
    } catch (err) {
      if (!(err instanceof BodyError)) throw err;
      sendJson(res, 400, { error: 'invalid_request', error_description: err.message });
      return true;
    }
    sendJson(res, 404, { error: 'not_found' });
    return true;
  }

  const sweeper = setInterval(() => grants.sweep(), 60_000);
  sweeper.unref();
  signal.addEventListener('abort', () => clearInterval(sweeper), { once: true });

  return {
    persona,
    handle,
    /** A real provider URL as this sandbox serves it. */
    url,
    setAccessTokenTtl(seconds: number) {
      accessTtl = seconds;
    },
    /** The next `count` API calls with an otherwise valid token answer the persona's "expired" shape. */
    expireNextApiCalls(count: number) {
      if (!Number.isSafeInteger(count) || count < 0) throw new TypeError('count is a whole number, 0 or more');
      expireNext = count;
    },
    invalidateAccessToken: (token: string) => grants.invalidateAccess(token),
    revokeGrantOf: (token: string) => grants.revokeGrantOf(token),
    /** The grant behind the token loses these scopes: calls needing them answer the persona's missing-scope shape. */
    withdrawScopes: (token: string, scopes: readonly string[]) => grants.withdrawScopes(token, scopes),
    stats: (): PersonaStats => structuredClone(stats),
    resetStats() {
      stats = emptyPersonaStats(persona.id);
    },
  };
}

export type PersonaEngine = ReturnType<typeof createPersonaEngine>;
