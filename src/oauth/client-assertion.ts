import { createPrivateKey } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import { importPKCS8 } from 'jose';
import { OAuthCallError } from './errors.ts';

// `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect Core §9): each request to
// the token endpoint (and revocation, introspection) carries a JWT signed with the client's private
// key. oauth4webapi's PrivateKeyJwt builds it: iss = sub = client_id, aud = the issuer, iat/nbf now,
// exp 60 s later, a random jti. This module only reads the key: PKCS#8 PEM, EC P-256 or RSA.
// Nothing of the key ever goes into an error message or a log line.

export type AssertionAlg = 'ES256' | 'RS256' | 'PS256';

/** What a key can sign with, the first being its default. */
export interface KeyKind {
  type: 'ec-p256' | 'rsa' | 'rsa-pss';
  algs: AssertionAlg[];
}

const PKCS8 = /^-----BEGIN PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PRIVATE KEY-----\s*$/;

/**
 * The kind of an unencrypted PKCS#8 PEM private key Warrant can sign assertions with, or why not
 * (a sentence naming no part of the key).
 */
export function privateKeyKind(pem: string): KeyKind | string {
  if (!PKCS8.test(pem.trim() + '\n')) return 'is not an unencrypted PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)';
  let key;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    return 'cannot be read as a PKCS#8 private key';
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    return details.namedCurve === 'prime256v1' ? { type: 'ec-p256', algs: ['ES256'] } : 'is an EC key on a curve other than P-256';
  }
  if (key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss') {
    if ((details.modulusLength ?? 0) < 2048) return 'is an RSA key shorter than 2048 bits';
    return key.asymmetricKeyType === 'rsa' ? { type: 'rsa', algs: ['RS256', 'PS256'] } : { type: 'rsa-pss', algs: ['PS256'] };
  }
  return 'is neither an EC P-256 nor an RSA key';
}

const misconfigured = (detail: string) => new OAuthCallError('misconfigured', 'invalid_key', undefined, `private_key_jwt: the client's private key ${detail}`);

/**
 * The ClientAuth of `private_key_jwt`: the key is read once, on first use (an unreadable key fails
 * that request as `misconfigured`, never a transient error).
 */
export function privateKeyJwt(pem: string, alg?: AssertionAlg): oauth.ClientAuth {
  let key: Promise<CryptoKey> | undefined;
  const load = async (): Promise<CryptoKey> => {
    const kind = privateKeyKind(pem);
    if (typeof kind === 'string') throw misconfigured(kind);
    const use = alg ?? kind.algs[0]!;
    if (!kind.algs.includes(use)) throw misconfigured(`cannot sign ${use}`);
    return importPKCS8(pem, use).catch(() => {
      throw misconfigured(`cannot be imported for ${use}`);
    });
  };
  return async (as, client, body, headers) => {
    key ??= load();
    // RFC 7523 §3: aud is the authorization server's issuer (oauth4webapi's default), 60 s, a jti.
    await oauth.PrivateKeyJwt(await key)(as, client, body, headers);
  };
}
