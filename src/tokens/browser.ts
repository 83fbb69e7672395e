import { randomBytes } from 'node:crypto';

// Browser binding of a connect session: the first open of its start URL sets a random cookie,
// the session keeps only the cookie's hash, and the OAuth callback is accepted only from a browser
// that presents it. A start URL, a re-connect link or an IdP URL that leaked is of no use in
// another browser: the code it yields cannot be redeemed there.

export interface BrowserCookie {
  name: string;
  value: string;
  maxAgeSeconds: number;
}

/** One cookie per session, so sessions open side by side in one browser do not evict each other. */
export const cookieName = (sessionId: string) => `warrant_connect_${sessionId}`;

export const newBrowserSecret = () => randomBytes(32).toString('base64url');

/** A value from a `Cookie` request header (RFC 6265 §5.4), or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq > 0 && pair.slice(0, eq).trim() === name) return pair.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * `Set-Cookie` for the binding: HttpOnly (no script reads it), SameSite=Lax (sent on the IdP's
 * top-level redirect back to the callback, never on cross-site subrequests), Secure when Warrant is
 * reached over https. `maxAgeSeconds: 0` deletes it.
 */
export function setCookieHeader(c: BrowserCookie, secure: boolean): string {
  return `${c.name}=${c.value}; Path=/; Max-Age=${Math.max(0, Math.floor(c.maxAgeSeconds))}; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
}
