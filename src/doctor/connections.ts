import type { Provider } from '../providers/index.ts';
import type { ConnectionRow } from '../store/index.ts';
import { error, ok, warn, type Finding } from './types.ts';

// What a stored connection says about its provider's entry and its own future: scopes granted
// narrower than asked, token lifetimes the catalog gets wrong, dead grants, and grants whose
// absolute lifetime is running out. Read from the row alone: no IdP is called.

const DAY_MS = 24 * 3600 * 1000;
export const GRANT_WARN_DAYS = 30;
export const GRANT_ERROR_DAYS = 2;
/** An observed lifetime this far from the catalog's (as a fraction of the catalog's) is worth a line. */
export const LIFETIME_TOLERANCE = 0.2;

type Row = Pick<
  ConnectionRow,
  'id' | 'provider' | 'environment' | 'status' | 'scopes' | 'requested_scopes' | 'expires_at' | 'last_refreshed_at' | 'last_error' | 'created_at'
> & { grant_started_at?: number | null };

const list = (json: string): string[] => {
  try {
    const v = JSON.parse(json) as unknown;
    return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : [];
  } catch {
    return [];
  }
};

const reconnectFix = (id: string) => `send the owner a re-connect link (POST /v1/connections/${id}/reconnect-link) and have them approve it`;
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export function connectionFindings(row: Row, provider: Provider | undefined, now: number): Finding[] {
  const subject = `${row.provider}/${row.environment}/${row.id}`;
  if (!provider) return [error('catalog', subject, `the connection's provider ${row.provider} is not in the catalog`, 'restore its definition in WARRANT_PROVIDERS, or delete the connection')];
  return [statusFinding(row, subject), scopesFinding(row, provider, subject), lifetimeFinding(row, provider, subject), grantLifetimeFinding(row, provider, subject, now)].filter(
    (f): f is Finding => !!f,
  );
}

function statusFinding(row: Row, subject: string): Finding {
  if (row.status === 'reauth_required') return error('status', subject, 'reauth_required: the IdP no longer honours the grant', reconnectFix(row.id));
  if (row.status === 'error') {
    // last_error is Warrant's own text (an error code and reason), never a token.
    const why = row.last_error ? `: ${row.last_error.slice(0, 200)}` : '';
    return error('status', subject, `error: refreshing fails${why}`, `fix the cause above (client settings, endpoint); if the grant is gone, ${reconnectFix(row.id)}`);
  }
  return ok('status', subject, row.status);
}

/** RFC 6749 §3.3: the IdP may grant less than asked; agents granted the rest will be refused. */
function scopesFinding(row: Row, provider: Provider, subject: string): Finding {
  const granted = new Set(list(row.scopes).map((s) => s.toLowerCase()));
  // Default scopes (offline_access …) steer the grant; IdPs commonly leave them out of the answer.
  const asked = list(row.requested_scopes).filter((s) => !provider.default_scopes?.includes(s));
  const missing = asked.filter((s) => !granted.has(s.toLowerCase()));
  if (!missing.length) return ok('scopes', subject, `granted all ${asked.length} scope(s) requested`);
  return warn(
    'scopes',
    subject,
    `granted narrower than requested: ${missing.join(', ')} not granted`,
    `re-connect asking for ${missing.join(', ')} and approve every one (${reconnectFix(row.id)}); check the app's allowed scopes at the IdP`,
  );
}

/** The access-token lifetime the IdP gave (expires_at − last refresh) against the catalog's `token_lifetime`. */
function lifetimeFinding(row: Row, provider: Provider, subject: string): Finding | undefined {
  const catalog = provider.token_lifetime;
  if (row.expires_at === null) {
    if (catalog) return undefined;
    return warn('token-lifetime', subject, 'the IdP gave no expires_in and the catalog has no token_lifetime: Warrant cannot refresh ahead of expiry', `set token_lifetime in ${provider.id}'s definition to the provider's documented lifetime`);
  }
  if (row.status !== 'active' && row.status !== 'error') return undefined;
  const observed = Math.round((row.expires_at - (row.last_refreshed_at ?? row.created_at)) / 1000);
  if (observed <= 0) return undefined;
  if (!catalog) return ok('token-lifetime', subject, `access tokens live ${observed} s (the catalog has no token_lifetime)`);
  const off = Math.abs(catalog - observed) / catalog;
  if (off <= LIFETIME_TOLERANCE) return ok('token-lifetime', subject, `access tokens live ${observed} s; the catalog says ${catalog} s`);
  const fix = `set token_lifetime: ${observed} in ${provider.id}'s definition`;
  if (catalog > observed) {
    return error('token-lifetime', subject, `access tokens live ${observed} s but the catalog says ${catalog} s: when the IdP omits expires_in Warrant would serve expired tokens`, fix);
  }
  return warn('token-lifetime', subject, `access tokens live ${observed} s; the catalog says ${catalog} s`, fix);
}

/** `refresh_token_lifetime`: an absolute cap from the consent (Atlassian 365 days, Intuit 5 years). */
function grantLifetimeFinding(row: Row, provider: Provider, subject: string, now: number): Finding | undefined {
  const lifetime = provider.refresh_token_lifetime;
  if (!lifetime || (row.status !== 'active' && row.status !== 'error')) return undefined;
  const ends = (row.grant_started_at ?? row.created_at) + lifetime * 1000;
  const left = ends - now;
  const days = Math.floor(left / DAY_MS);
  if (left <= 0) return error('grant-lifetime', subject, `the grant's absolute lifetime ended at ${iso(ends)}`, reconnectFix(row.id));
  if (left < GRANT_ERROR_DAYS * DAY_MS) return error('grant-lifetime', subject, `the grant dies for good at ${iso(ends)} (in ${Math.round(left / 3_600_000)} h)`, reconnectFix(row.id));
  if (left < GRANT_WARN_DAYS * DAY_MS) return warn('grant-lifetime', subject, `the grant dies for good at ${iso(ends)} (in ${days} days)`, `${reconnectFix(row.id)} before then`);
  return ok('grant-lifetime', subject, `the grant lives until ${iso(ends)} (${days} days)`);
}
