import type { Provider, ProviderEnvironment } from '../providers/index.ts';
import { request } from './http.ts';
import { error, ok, warn, type ClockSample, type Finding } from './types.ts';

// Discovery metadata (RFC 8414, OpenID Connect Discovery 1.0) against the catalog's entry.

export interface Metadata {
  issuer?: unknown;
  authorization_endpoint?: unknown;
  token_endpoint?: unknown;
  revocation_endpoint?: unknown;
  introspection_endpoint?: unknown;
  code_challenge_methods_supported?: unknown;
}

export type MetadataResult =
  | { found: true; url: string; metadata: Metadata; clock: ClockSample[] }
  | { found: false; problem: 'absent' | 'unreachable' | 'invalid'; detail: string; clock: ClockSample[] };

/** RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path. */
export function metadataUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname.replace(/\/+$/, '');
  return [
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
    // OpenID Connect Discovery 1.0 §4: appended to the issuer.
    `${url.origin}${path}/.well-known/openid-configuration`,
  ];
}

/** The first metadata document found, RFC 8414 first; an answer that is not a JSON object is an error. */
export async function fetchMetadata(issuer: string): Promise<MetadataResult> {
  const clock: ClockSample[] = [];
  const misses: string[] = [];
  for (const url of metadataUrls(issuer)) {
    const answer = await request(url);
    if (!answer.ok) return { found: false, problem: 'unreachable', detail: `${url}: ${answer.reason}`, clock };
    if (answer.clock) clock.push(answer.clock);
    if (answer.status !== 200) {
      misses.push(`${url} answered ${answer.status}`);
      continue;
    }
    let metadata: unknown;
    try {
      metadata = JSON.parse(answer.text);
    } catch {
      return { found: false, problem: 'invalid', detail: `${url} answered 200 with a body that is not JSON (${answer.headers.get('content-type') ?? 'no content-type'})`, clock };
    }
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
      return { found: false, problem: 'invalid', detail: `${url} answered JSON that is not an object`, clock };
    }
    return { found: true, url, metadata: metadata as Metadata, clock };
  }
  return { found: false, problem: 'absent', detail: misses.join('; '), clock };
}

const same = (a: string, b: string) => URL.canParse(a) && URL.canParse(b) && new URL(a).href === new URL(b).href;
const hasPlaceholder = (v: string) => /\{[a-z_][a-z0-9_]*\}/.test(v);
const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);

/** Each difference between the metadata and the environment's entry, or one ok line. */
export function compareMetadata(provider: Provider, envName: string, env: ProviderEnvironment, found: { url: string; metadata: Metadata }): Finding[] {
  const subject = `${provider.id}/${envName}`;
  const field = (key: string) => `environments.${envName}.${key}`;
  const m = found.metadata;
  const out: Finding[] = [];

  // RFC 8414 §3.3: the metadata's issuer must be the issuer it was fetched for.
  if (env.issuer && str(m.issuer) !== env.issuer) {
    out.push(error('discovery', subject, `the metadata at ${found.url} names issuer ${str(m.issuer) ?? '(none)'}, the entry ${env.issuer}`, `set ${field('issuer')} to the IdP's issuer (its iss is checked on every callback)`));
  }
  for (const [key, metaKey] of [
    ['authorization_url', 'authorization_endpoint'],
    ['token_url', 'token_endpoint'],
  ] as const) {
    const ours = env[key];
    const theirs = str(m[metaKey]);
    if (!ours || hasPlaceholder(ours) || !theirs || same(ours, theirs)) continue;
    out.push(error('discovery', subject, `${key} ${ours} differs from the IdP's ${metaKey} ${theirs}`, `set ${field(key)} to ${theirs}`));
  }
  out.push(...optionalEndpoint(provider, envName, env, m, 'revocation'));
  out.push(...optionalEndpoint(provider, envName, env, m, 'introspection'));
  out.push(...pkce(provider, subject, m));
  if (!out.length) out.push(ok('discovery', subject, `${found.url} agrees with the entry (issuer, endpoints, PKCE)`));
  return out;
}

/** Revocation and introspection: offered by one side only (warn), or at different URLs. */
function optionalEndpoint(provider: Provider, envName: string, env: ProviderEnvironment, m: Metadata, what: 'revocation' | 'introspection'): Finding[] {
  const subject = `${provider.id}/${envName}`;
  const key = `${what}_url` as const;
  const ours = env[key];
  const theirs = str(m[`${what}_endpoint`]);
  const field = `environments.${envName}.${key}`;
  if (ours && hasPlaceholder(ours)) return [];
  if (!ours && theirs) {
    const why = what === 'revocation' ? 'disconnecting cannot revoke the grant at the IdP' : 'Warrant cannot ask the IdP whether a token is live';
    return [warn(what, subject, `the IdP offers ${what} at ${theirs}; the entry has no ${key}, so ${why}`, `set ${field} to ${theirs}`)];
  }
  if (ours && !theirs) {
    return [warn(what, subject, `the entry has ${key} ${ours}; the IdP's metadata lists no ${what}_endpoint`, `check the provider's documentation; remove ${field} if it does not exist`)];
  }
  if (ours && theirs && !same(ours, theirs)) {
    // A revocation shape of the provider's own (`revocation:`) may legitimately use another URL.
    const own = what === 'revocation' && provider.revocation;
    const finding = own ? warn : error;
    return [finding(what, subject, `${key} ${ours} differs from the IdP's ${what}_endpoint ${theirs}`, `set ${field} to ${theirs}${own ? ' unless the provider documents the other one' : ''}`)];
  }
  return [];
}

/** RFC 7636 / RFC 8414 §2 `code_challenge_methods_supported`. */
function pkce(provider: Provider, subject: string, m: Metadata): Finding[] {
  if (provider.auth !== 'oauth2') return [];
  const methods = Array.isArray(m.code_challenge_methods_supported) ? m.code_challenge_methods_supported.filter((x): x is string => typeof x === 'string') : undefined;
  if (provider.pkce) {
    if (!methods) return [warn('pkce', subject, 'the entry uses PKCE; the metadata does not say whether the IdP supports it (no code_challenge_methods_supported)', 'connect once to confirm; set pkce: false only if the IdP rejects code_challenge')];
    if (!methods.includes('S256')) return [error('pkce', subject, `the entry uses PKCE S256; the IdP lists only ${methods.join(', ') || 'no methods'}`, 'set pkce: false if the IdP rejects code_challenge, or check the IdP\'s app settings')];
    return [];
  }
  if (methods?.includes('S256')) return [warn('pkce', subject, 'the IdP supports PKCE S256 but the entry has pkce: false', 'remove pkce: false (RFC 9700 §2.1.1 recommends PKCE for every client)')];
  return [];
}
