import { createPrivateKey, createPublicKey, generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, type JWK } from 'jose';
import type { Provider } from '../providers/index.ts';

// Key pairs for JWT-bearer service accounts (RFC 7523): the new private key of a rotation, made
// like the old one, and its public half in the two forms IdPs take for upload (Google: PEM or a
// JWK set; Salesforce: an X.509 certificate made from the PEM).

export interface NewKeyPair {
  /** PKCS#8 PEM: sealed in the vault, never shown. */
  privateKeyPem: string;
  /** SPKI PEM: shown for upload. */
  publicKeyPem: string;
}

/** A public JWK as IdPs take it for upload (RFC 7517): the key's members and kid, alg, use. */
export interface PublicJwk {
  kty: string;
  kid: string;
  alg: string;
  use: 'sig';
  n?: string;
  e?: string;
  crv?: string;
  x?: string;
  y?: string;
}

export interface PublicKeyView {
  /** RFC 7638 JWK thumbprint (SHA-256, base64url): names the key in events and listings. */
  thumbprint: string;
  public_key_pem: string;
  public_key_jwk: PublicJwk;
}

const generate = promisify(generateKeyPair);

/**
 * A key pair for the provider's assertion algorithm: RSA for RS256 and PS256 (at least 2048 bits,
 * as large as the old key when that is larger), EC P-256 for ES256.
 */
export async function newKeyPairFor(provider: Pick<Provider, 'jwt_bearer'>, oldPrivateKeyPem?: string): Promise<NewKeyPair> {
  const alg = provider.jwt_bearer?.algorithm ?? 'RS256';
  const pair =
    alg === 'ES256'
      ? await generate('ec', { namedCurve: 'prime256v1' })
      : await generate('rsa', { modulusLength: Math.max(2048, modulusOf(oldPrivateKeyPem)) });
  return {
    privateKeyPem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

function modulusOf(pem: string | undefined): number {
  if (!pem) return 0;
  try {
    return createPrivateKey(pem).asymmetricKeyDetails?.modulusLength ?? 0;
  } catch {
    return 0;
  }
}

/** The public half of a PEM key (private or public), as PEM, JWK and thumbprint. */
export async function publicKeyView(pem: string, provider: Pick<Provider, 'jwt_bearer'>): Promise<PublicKeyView> {
  const key = createPublicKey(pem);
  const jwk = key.export({ format: 'jwk' }) as JWK & { kty: string };
  const thumbprint = await calculateJwkThumbprint(jwk, 'sha256');
  return {
    thumbprint,
    public_key_pem: key.export({ type: 'spki', format: 'pem' }).toString(),
    public_key_jwk: { ...jwk, kid: thumbprint, alg: provider.jwt_bearer?.algorithm ?? 'RS256', use: 'sig' },
  };
}

/** The thumbprint alone, or undefined when `pem` is not a key (a corrupt import). */
export async function thumbprintOf(pem: string | undefined): Promise<string | undefined> {
  if (!pem) return undefined;
  try {
    return await calculateJwkThumbprint(createPublicKey(pem).export({ format: 'jwk' }) as JWK, 'sha256');
  } catch {
    return undefined;
  }
}
