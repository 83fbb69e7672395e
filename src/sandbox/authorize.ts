import { sandboxDefaults } from './options.ts';
import { CookieJar } from '../util/cookie-jar.ts';

// Non-interactive consent for automation: walk the authorization endpoint over real HTTP as a
// browser would (cookies, 303s), approve at the interaction step, and stop at the first
// redirect that leaves the IdP: the client's redirect URI with code, state and iss.

export interface AuthorizeParams {
  client_id?: string;
  redirect_uri: string;
  scope: string;
  state: string;
  code_challenge: string;
  code_challenge_method: 'S256';
  resource?: string;
  [k: string]: string | undefined;
}

export class SandboxAuthorizeError extends Error {
  override name = 'SandboxAuthorizeError';
}

const maxHops = 10;

/**
 * Runs the authorization request and returns the URL the browser would finally be sent to.
 * An error the IdP redirects back (`error=invalid_scope`, …) is returned like a success would be;
 * one it cannot redirect (bad client or redirect URI) throws, as a browser would show a page.
 */
export async function followAuthorization(authorizationEndpoint: string, defaultClientId: string, params: AuthorizeParams): Promise<string> {
  const start = new URL(authorizationEndpoint);
  start.searchParams.set('response_type', 'code');
  start.searchParams.set('client_id', params.client_id ?? defaultClientId);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) start.searchParams.set(k, v);

  const idpPrefix = `${sandboxDefaults.idpPath}/`;
  const interactionPrefix = `${sandboxDefaults.idpPath}/interaction/`;
  const jar = new CookieJar();
  let url = start;
  let method: 'GET' | 'POST' = 'GET';
  for (let hop = 0; hop < maxHops; hop++) {
    const cookie = jar.header(url);
    const res = await fetch(url, {
      method,
      redirect: 'manual',
      headers: { accept: 'text/html', ...(cookie ? { cookie } : {}) },
    });
    jar.store(url, res.headers.getSetCookie());
    const location = res.headers.get('location');
    if (res.status < 300 || res.status > 399 || !location) {
      const text = (await res.text())
        .replace(/<[^>]+>/g, ' ')
        .replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
        .replace(/\s+/g, ' ')
        .trim();
      throw new SandboxAuthorizeError(`the authorization request stopped at ${method} ${url.pathname} with ${res.status}: ${text.slice(0, 300)}`);
    }
    await res.body?.cancel();
    const next = new URL(location, url);
    if (next.origin !== start.origin || !next.pathname.startsWith(idpPrefix)) return next.href;
    if (next.pathname.startsWith(interactionPrefix)) {
      // Approve explicitly rather than rely on autoApprove, which a human may have turned off.
      url = new URL(`${next.pathname}/approve`, next);
      method = 'POST';
    } else {
      url = next;
      method = 'GET';
    }
  }
  throw new SandboxAuthorizeError(`the authorization request did not reach the redirect URI within ${maxHops} redirects`);
}
