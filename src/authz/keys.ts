import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import type { Vault } from '../store/index.ts';

// The authorization server's signing keys and cookie keys: generated once, sealed by the vault,
// so every instance on one store signs with the same keys and they survive restarts. Instances
// starting at once agree on one set (putIfAbsent, then read back what won).

export interface AuthzKeys {
  /** Private JWKs (RS256): access tokens (RFC 9068) and ID tokens. */
  jwks: { keys: JWK[] };
  /** Keys of oidc-provider's signed cookies (interaction, session). */
  cookieKeys: string[];
}

const ref = { scope: 'authz', ref: 'server-keys' };

async function newSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg: 'RS256', use: 'sig' };
}

export async function loadOrCreateKeys(vault: Pick<Vault, 'get' | 'putIfAbsent'>): Promise<AuthzKeys> {
  const key = { ...ref, field: 'keys' };
  const stored = await vault.get(key);
  if (stored !== undefined) return JSON.parse(stored) as AuthzKeys;
  const fresh: AuthzKeys = { jwks: { keys: [await newSigningKey()] }, cookieKeys: [randomBytes(32).toString('base64url')] };
  await vault.putIfAbsent(key, JSON.stringify(fresh));
  const winner = await vault.get(key);
  if (winner === undefined) throw new Error('authz keys vanished right after being stored');
  return JSON.parse(winner) as AuthzKeys;
}

/**
 * The key Warrant's own access tokens are signed with outside oidc-provider (token exchange,
 * ID-JAG grants): the RS256 signing key oidc-provider uses, so one verifier accepts them all.
 */
export function accessTokenSigner(keys: AuthzKeys): () => Promise<{ key: CryptoKey | Uint8Array; kid?: string }> {
  let loaded: Promise<{ key: CryptoKey | Uint8Array; kid?: string }> | undefined;
  return () =>
    (loaded ??= (async () => {
      const jwk = keys.jwks.keys.find((k: JWK) => k.kty === 'RSA' && (k.alg ?? 'RS256') === 'RS256' && (k.use ?? 'sig') === 'sig');
      if (!jwk) throw new Error('the authorization server has no RS256 signing key');
      return { key: (await importJWK(jwk, 'RS256')) as CryptoKey | Uint8Array, kid: jwk.kid };
    })());
}
