import { WarrantError } from '../errors/index.ts';
import { MAX_ANSWER_BYTES, boundedFetch, checkScheme, type BoundedAnswer } from '../oauth/index.ts';
import { jsonValuesAt, type Provider } from '../providers/index.ts';
import { checkParams } from './clients.ts';

// After consent, which tenant the grant reaches: Atlassian's `accessible-resources` (→ cloud_id),
// Xero's `/connections` (→ tenant_id). The API URLs and headers of those providers need it, and the
// user picks it on the IdP's consent screen, so only the IdP can say. The call is held to what IdP
// calls are held to: its URL is the definition's (never from an answer), redirects are not
// followed, plain http only to a loopback host, and the answer is bounded in time and size.

/** Why a connect failed at tenant discovery: the session's `error`, and the problem's `error` member. */
export type TenantDiscoveryFailure = 'no_tenant' | 'tenant_mismatch' | 'tenant_discovery_failed';

export interface DiscoveredTenant {
  /** The connection param to store (`tenant_id`) and its value. */
  param: string;
  value: string;
  /** How many tenants the grant reaches. */
  found: number;
}

const failed = (provider: Provider, why: string, cause?: unknown) =>
  new WarrantError(
    'upstream_unavailable',
    `${provider.id}'s tenant discovery failed (${why}); nothing was stored: connect again`,
    { error: 'tenant_discovery_failed' satisfies TenantDiscoveryFailure },
    cause === undefined ? undefined : { cause },
  );

/** GET the discovery URL with the new access token; the list of tenant values it names, in order. */
async function candidatesOf(provider: Provider, accessToken: string, timeoutMs: number): Promise<string[]> {
  const spec = provider.tenant_discovery!;
  let url: URL;
  try {
    url = checkScheme(spec.url, 'tenant discovery');
  } catch {
    throw failed(provider, 'its URL is not https');
  }
  let answer: BoundedAnswer;
  try {
    // The deadline covers the headers and the body.
    const headers = new Headers({ authorization: `Bearer ${accessToken}`, accept: 'application/json' });
    answer = await boundedFetch(url.href, { method: 'GET', headers, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const e = err as { error?: string; name?: string };
    throw failed(provider, e.error === 'timeout' ? `no answer within ${timeoutMs} ms` : 'network error', e.error ?? e.name);
  }
  if (answer.status < 200 || answer.status > 299) throw failed(provider, `HTTP ${answer.status}`);
  if (answer.overflow) throw failed(provider, `answer larger than ${MAX_ANSWER_BYTES} bytes`);
  if (answer.json === undefined) throw failed(provider, 'the answer is not JSON');
  const list = spec.list ? jsonValuesAt(answer.json, spec.list)[0] : answer.json;
  if (!Array.isArray(list)) throw failed(provider, spec.list ? `the answer has no list at ${spec.list}` : 'the answer is not a list');
  const values: string[] = [];
  for (const element of list) {
    const v = jsonValuesAt(element, spec.field)[0];
    if ((typeof v === 'string' && v) || typeof v === 'number') values.push(String(v));
  }
  return values;
}

/**
 * The tenant a new grant reaches, per the provider's `tenant_discovery`. `given` is the param's
 * value known before (the connect session's, or a re-connected connection's): it must be among
 * the tenants found; without one, the first found is taken. The value is checked against the
 * param's declared type before it is returned. Throws a WarrantError whose `error` member is a
 * TenantDiscoveryFailure (or `invalid_request` for a value of the wrong type).
 */
export async function discoverTenant(opts: { provider: Provider; accessToken: string; given?: string; timeoutMs: number }): Promise<DiscoveredTenant> {
  const { provider, given } = opts;
  const spec = provider.tenant_discovery!;
  const candidates = await candidatesOf(provider, opts.accessToken, opts.timeoutMs);
  if (!candidates.length) {
    throw new WarrantError(
      'conflict',
      `this ${provider.id} grant reaches no ${spec.param}: no organisation or site was picked (or allowed) on ${provider.id}'s consent screen. ` +
        `Connect again and pick one there; an administrator of the ${provider.id} organisation may first have to allow the app. Nothing was stored.`,
      { error: 'no_tenant' satisfies TenantDiscoveryFailure, param: spec.param },
    );
  }
  if (given !== undefined && !candidates.includes(given)) {
    const field = `params.${spec.param}`;
    throw new WarrantError(
      'invalid_request',
      `${field}: ${given} is not among the ${candidates.length} ${spec.param} value(s) this ${provider.id} grant reaches; connect again and pick it on the consent screen, ` +
        `or start the session without ${spec.param} to take the one picked. Nothing was stored.`,
      { field, error: 'tenant_mismatch' satisfies TenantDiscoveryFailure },
    );
  }
  const value = given ?? candidates[0]!;
  checkParams(provider, { [spec.param]: value }, 'tenant_discovery', { [spec.param]: spec.field });
  return { param: spec.param, value, found: candidates.length };
}
