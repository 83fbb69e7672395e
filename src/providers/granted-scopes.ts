import type { Provider } from './schema.ts';

// What a token response's `scope` says was granted (RFC 6749 §5.1), read as each provider writes
// it: the separator of the answer (GitHub answers "repo,gist" to a space-separated request; Linear
// answers "read write" to "read,write"), and a provider's own spelling normalised back to the
// catalog's (Microsoft answers `https://graph.microsoft.com/mail.read` for `Mail.Read`), so the
// scopes agents are granted match the scopes the connection holds.

type ScopeRules = Pick<Provider, 'scope_separator' | 'scope_response_separator' | 'scope_response_prefix' | 'scopes'> & { idp_scopes?: boolean };

/** The separator of granted scopes in a token response. */
export const responseScopeSeparator = (p: Pick<Provider, 'scope_separator' | 'scope_response_separator'>) => p.scope_response_separator ?? p.scope_separator;

function split(text: string, separator: string): string[] {
  const parts = separator.trim() === '' ? text.split(/\s+/) : text.split(separator);
  return parts.map((s) => s.trim()).filter(Boolean);
}

/**
 * The granted scopes of a token response's `scope` (a string, as normalised by the oauth layer),
 * in the catalog's spelling where one matches; undefined when the answer says nothing (RFC 6749
 * §5.1: then the requested scopes were granted). `holdsRefreshToken`: a requested
 * `offline_access` counts as granted, since the refresh token is what it grants and Microsoft's
 * answer never names it (OpenID Connect Core §11).
 */
export function grantedScopes(provider: ScopeRules, scope: string | undefined, requested: readonly string[] = [], holdsRefreshToken = false): string[] | undefined {
  // An IdP without OAuth scopes (Notion) grants the capabilities its integration has: the names are Warrant's.
  if (!scope || provider.idp_scopes === false) return undefined;
  const known = new Map<string, string>();
  for (const name of [...Object.keys(provider.scopes ?? {}), ...requested]) known.set(name.toLowerCase(), name);
  const prefix = provider.scope_response_prefix?.toLowerCase();
  const out: string[] = [];
  for (const raw of split(scope, responseScopeSeparator(provider))) {
    const lower = raw.toLowerCase();
    const bare = prefix && lower.startsWith(prefix) ? lower.slice(prefix.length) : lower;
    const name = known.get(lower) ?? known.get(bare) ?? raw;
    if (!out.includes(name)) out.push(name);
  }
  const offline = holdsRefreshToken ? requested.find((s) => s.toLowerCase() === 'offline_access') : undefined;
  if (offline && !out.some((s) => s.toLowerCase() === 'offline_access')) out.push(offline);
  return out;
}
