import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import { loadConfig } from '../../src/config/index.ts';
import { createWarrant, type Warrant } from '../../src/warrant.ts';
import { mcpServerResources } from '../../src/authz/index.ts';
import { ADMIN_TOKEN, captureLogger } from '../helpers/app.ts';
import { withSchema } from '../helpers/lifecycle.ts';
import { createSchema, dropSchema, testDatabaseUrl } from '../helpers/stores.ts';

// A real Warrant on loopback for the authorization server's tests, and a browser of sorts: a cookie
// jar and manual redirects, walking the login and consent pages like a person would.

export const insecure = { [oauth.allowInsecureRequests]: true } as const;

export interface AuthzWarrant {
  warrant: Warrant;
  base: string;
  shared: { dataDir: string; pgSchema?: string; masterKey: string };
  /** Its log lines at warn and above. */
  logs: ReturnType<typeof captureLogger>;
  cleanup(): Promise<void>;
}

export async function startAuthzWarrant(
  kind: 'sqlite' | 'postgres',
  opts: { shared?: AuthzWarrant['shared']; publicUrl?: string; env?: Record<string, string> } = {},
): Promise<AuthzWarrant> {
  const dataDir = opts.shared?.dataDir ?? mkdtempSync(join(tmpdir(), 'warrant-authz-'));
  const masterKey = opts.shared?.masterKey ?? `k1:${randomBytes(32).toString('base64')}`;
  const pgSchema = kind === 'postgres' ? (opts.shared?.pgSchema ?? `t_${randomBytes(6).toString('hex')}`) : undefined;
  if (pgSchema && !opts.shared) await createSchema(pgSchema);
  const env: Record<string, string> = {
    WARRANT_DATA_DIR: dataDir,
    WARRANT_ADMIN_TOKEN: ADMIN_TOKEN,
    WARRANT_MASTER_KEY: masterKey,
    WARRANT_PORT: '0',
    ...(opts.publicUrl ? { WARRANT_PUBLIC_URL: opts.publicUrl } : {}),
    ...(pgSchema ? { DATABASE_URL: withSchema(testDatabaseUrl!, pgSchema) } : {}),
    ...opts.env,
  };
  const logs = captureLogger('warn');
  const warrant = await createWarrant(loadConfig(env), { logger: logs.logger, notice: () => {}, scheduler: false, webhooks: false });
  // Stand-ins for servers registered with the MCP gateway: resources the tests ask tokens for.
  warrant.authz.resources.add(mcpServerResources((name) => name === 'demo' || name === 'shared'));
  const address = await warrant.listen();
  return {
    warrant,
    base: address.replace('localhost', '127.0.0.1'),
    shared: { dataDir, pgSchema, masterKey },
    logs,
    async cleanup() {
      await warrant.close();
      if (!opts.shared) {
        if (pgSchema) await dropSchema(pgSchema);
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}

export async function discover(base: string, issuer: string): Promise<oauth.AuthorizationServer> {
  const res = await oauth.discoveryRequest(new URL(base), { algorithm: 'oauth2', ...insecure });
  return oauth.processDiscoveryResponse(new URL(issuer), res);
}

/** An admin-made login code for `owner`. */
export async function loginCode(base: string, owner: string): Promise<string> {
  const res = await fetch(`${base}/v1/owners/${encodeURIComponent(owner)}/login-codes`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  if (res.status !== 201) throw new Error(`login code: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { code: string }).code;
}

/** A browser: keeps cookies, follows nothing by itself. */
export class Browser {
  readonly cookies = new Map<string, string>();
  async request(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i);
      const value = pair!.slice(i + 1);
      if (/expires=Thu, 01 Jan 1970/i.test(c) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }
  /** Follows redirects on `base` until one leaves it (answers that location) or a page shows. */
  async follow(base: string, url: string): Promise<{ res: Response; url: string }> {
    for (let i = 0; i < 10; i++) {
      const res = await this.request(url);
      if (res.status < 300 || res.status >= 400) return { res, url };
      const next = new URL(res.headers.get('location')!, url).href;
      if (!next.startsWith(base)) return { res, url: next };
      url = next;
    }
    throw new Error('too many redirects');
  }
  async postForm(url: string, form: Record<string, string>): Promise<Response> {
    return this.request(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
  }
}

export const csrfOf = (html: string) => /name="csrf" value="([^"]+)"/.exec(html)?.[1];
export const actionOf = (html: string, which = 0) => [...html.matchAll(/<form method="post" action="([^"]+)"/g)][which]?.[1];

export interface Authorized {
  /** Where the browser was sent back to the client. */
  callback: URL;
  browser: Browser;
  /** The HTML of every page the owner was shown (login, consent), in order. */
  pages: string[];
}

/**
 * Walks /authorize → login (owner + code) → consent → back to the client, as the owner would.
 * `approve: false` denies on the consent page.
 */
export async function authorizeAsOwner(
  base: string,
  authorizeUrl: URL,
  owner: string,
  opts: { approve?: boolean; browser?: Browser } = {},
): Promise<Authorized> {
  const browser = opts.browser ?? new Browser();
  const pages: string[] = [];
  let step = await browser.follow(base, authorizeUrl.href);
  for (let i = 0; i < 4; i++) {
    if (!step.url.startsWith(base) || step.res.status >= 300) return { callback: new URL(step.url), browser, pages };
    const html = await step.res.text();
    if (step.res.status !== 200) throw new Error(`page ${step.res.status}: ${html.slice(0, 300)}`);
    pages.push(html);
    const csrf = csrfOf(html)!;
    let posted: Response;
    if (html.includes('name="code"')) {
      posted = await browser.postForm(new URL(actionOf(html)!, base).href, { csrf, owner, code: await loginCode(base, owner) });
    } else {
      posted = await browser.postForm(new URL(actionOf(html, opts.approve === false ? 1 : 0)!, base).href, { csrf });
    }
    if (posted.status < 300 || posted.status >= 400) throw new Error(`form ${posted.status}: ${(await posted.text()).slice(0, 300)}`);
    const next = new URL(posted.headers.get('location')!, base).href;
    step = next.startsWith(base) ? await browser.follow(base, next) : { res: posted, url: next };
  }
  throw new Error('no way out of the interaction');
}

export async function registerPublicClient(as: oauth.AuthorizationServer, redirectUri: string, extra: Record<string, unknown> = {}): Promise<oauth.Client> {
  const res = await oauth.dynamicClientRegistrationRequest(
    as,
    { application_type: 'native', redirect_uris: [redirectUri], grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none', client_name: 'Test MCP client', client_uri: 'https://client.example.com/about', ...extra },
    insecure,
  );
  return (await oauth.processDynamicClientRegistrationResponse(res)) as oauth.Client;
}

export async function authorizationUrl(as: oauth.AuthorizationServer, client: oauth.Client, p: { redirectUri: string; resource?: string; scope?: string; verifier: string; state: string; method?: string }): Promise<URL> {
  const url = new URL(as.authorization_endpoint!);
  url.searchParams.set('client_id', client.client_id);
  url.searchParams.set('redirect_uri', p.redirectUri);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('state', p.state);
  url.searchParams.set('code_challenge', p.method === 'plain' ? p.verifier : await oauth.calculatePKCECodeChallenge(p.verifier));
  url.searchParams.set('code_challenge_method', p.method ?? 'S256');
  if (p.scope) url.searchParams.set('scope', p.scope);
  if (p.resource) url.searchParams.set('resource', p.resource);
  return url;
}
