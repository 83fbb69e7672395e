import { createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { errors as jose, jwtVerify } from 'jose';
import type Provider from 'oidc-provider';
import { errors, type Adapter, type ClientMetadata } from 'oidc-provider';
import type { ResolvedOptions } from './options.ts';

// RFC 7523 §2.1: the JWT bearer authorization grant, as Google service accounts and Salesforce's
// JWT flow speak it. A service account is a public client (no client authentication, RFC 7523 §3.1
// makes it optional) whose registered public key verifies the assertion it presents:
//   iss = the service account's client_id, aud = the token endpoint (or the issuer), exp in the
//   future and at most an hour after iat, jti never seen before, sub = the user acted for (optional).
// The answer is an opaque access token bound to a one-token grant; no refresh token (a new assertion
// is the refresh).

export const jwtBearerGrantType = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** RFC 7523 leaves the bound to the server; Google and Salesforce both allow one hour. */
const maxAssertionLifetimeSeconds = 3600;
/** How far ahead of ours an assertion's clock may run (iat in the future). */
const clockSkewSeconds = 30;

export interface RegisteredKey {
  publicKey: KeyObject;
  /** The JWS algorithms the key can verify. */
  algorithms: string[];
}

export interface ServiceAccount {
  clientId: string;
  /** The key registered first; `keys` holds every key an assertion may be signed with. */
  publicKey: KeyObject;
  /** The JWS algorithms the first key can verify; the first one is what a definition names. */
  algorithms: string[];
  /**
   * Every registered key (Google service accounts hold several: a key is uploaded, used, then the
   * old one deleted). An assertion verifies against any of them.
   */
  keys: RegisteredKey[];
  /** Scopes the account may be granted; all of them when an assertion asks for none. */
  scope: string[];
}

export interface ServiceAccountKey {
  client_id: string;
  /** PKCS#8 PEM: what Warrant stores as the connection's private_key. */
  privateKeyPem: string;
  /** SPKI PEM of the registered public key. */
  publicKeyPem: string;
}

export interface ServiceAccounts {
  /** Registers an account whose assertions `publicKeyPem` verifies (SPKI PEM; RSA or EC P-256). */
  register(account: { client_id: string; publicKeyPem: string; scope?: string }): Promise<ServiceAccount>;
  /** Registers an account with a fresh RSA-2048 key pair and hands out its private key. */
  create(account: { client_id: string; scope?: string }): Promise<ServiceAccountKey>;
  get(clientId: string): ServiceAccount | undefined;
  /** Uploads another public key (SPKI PEM) to an account, as a key rotation does before switching. */
  addKey(clientId: string, publicKeyPem: string): void;
  /** Deletes a key of an account (SPKI PEM of its public half); assertions signed with it are refused from then on. */
  removeKey(clientId: string, publicKeyPem: string): void;
}

export interface JwtBearerDeps {
  issuer: string;
  apiBaseUrl: string;
  options: ResolvedOptions;
  /** Read on every issuance, so a change applies to tokens issued afterwards. */
  lifetimes: { accessTokenTtl: number };
  /** The API's own scopes: the default allowance of a service account. */
  resourceScopes: string[];
}

function algorithmsFor(key: KeyObject): string[] {
  if (key.asymmetricKeyType === 'rsa') return ['RS256', 'PS256'];
  if (key.asymmetricKeyType === 'rsa-pss') return ['PS256'];
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return ['ES256'];
  throw new TypeError(`a service account key is RSA or EC P-256, not ${key.asymmetricKeyType ?? 'unknown'}`);
}

const sameResource = (a: string, b: string) => a.replace(/\/+$/, '') === b.replace(/\/+$/, '');

/** Every refusal of an assertion is invalid_grant (RFC 7523 §3.1), with a description that says why. */
const invalidGrant = (why: string) => new errors.CustomOIDCProviderError('invalid_grant', why);

/**
 * Registers the grant type with oidc-provider and returns the service-account registry. Call it
 * right after constructing the provider: oidc-provider validates a client's grant_types against
 * the registered grant types when the client is first loaded.
 */
export async function installJwtBearer(provider: Provider, deps: JwtBearerDeps): Promise<ServiceAccounts> {
  const { options, lifetimes, apiBaseUrl } = deps;
  const { log } = options;
  const accounts = new Map<string, ServiceAccount>();
  /** `iss` NUL `jti` → exp of assertions already exchanged; entries leave once the assertion expired. */
  const usedAssertions = new Map<string, number>();
  const audiences = [provider.urlFor('token'), deps.issuer];
  // Clients registered at run time live in the adapter, where oidc-provider looks after its static ones.
  const clientStore = (provider.Client as unknown as { adapter: Adapter }).adapter;

  function rememberAssertion(key: string, exp: number): boolean {
    const now = Math.floor(Date.now() / 1000);
    for (const [k, until] of usedAssertions) if (until < now) usedAssertions.delete(k);
    if (usedAssertions.has(key)) return false;
    usedAssertions.set(key, exp);
    return true;
  }

  provider.registerGrantType<{ assertion?: string }>(
    jwtBearerGrantType,
    async (ctx) => {
      const { client, params } = ctx.oidc;
      const account = accounts.get(client.clientId);
      // allowedGrantTypeCheck already kept other clients out; this is the registry speaking.
      if (!account) throw new errors.UnauthorizedClient('the client is not a service account');
      if (typeof params.assertion !== 'string' || !params.assertion) throw new errors.InvalidRequest("missing required parameter 'assertion'");

      let claims: Awaited<ReturnType<typeof jwtVerify>>['payload'] | undefined;
      let refusal: Error | undefined;
      // Any registered key may have signed it; a signature that fails on one key is tried on the next.
      for (const key of account.keys) {
        try {
          ({ payload: claims } = await jwtVerify(params.assertion, key.publicKey, {
            algorithms: key.algorithms,
            issuer: account.clientId,
            audience: audiences,
            requiredClaims: ['exp', 'iat', 'jti'],
          }));
          break;
        } catch (err) {
          if (!(err instanceof jose.JOSEError)) throw err;
          refusal = err;
          if (!(err instanceof jose.JWSSignatureVerificationFailed) && !(err instanceof jose.JOSEAlgNotAllowed)) break;
        }
      }
      if (!claims) {
        const why = refusal?.message ?? 'the service account has no key';
        log(`jwt-bearer client=${account.clientId} refused: ${why}`);
        throw invalidGrant(`the assertion is invalid: ${why}`);
      }
      const { exp, iat, jti, sub } = claims as { exp: number; iat: number; jti: unknown; sub?: unknown };
      const now = Math.floor(Date.now() / 1000);
      if (iat > now + clockSkewSeconds) throw invalidGrant('the assertion is issued in the future (iat)');
      if (exp - iat > maxAssertionLifetimeSeconds) throw invalidGrant(`the assertion lives longer than ${maxAssertionLifetimeSeconds} seconds (exp - iat)`);
      if (typeof jti !== 'string' || !jti) throw invalidGrant('the assertion has no jti');
      if (sub !== undefined && (typeof sub !== 'string' || !sub)) throw invalidGrant('the assertion sub is not a string');

      const requested = params.scope ?? (typeof claims.scope === 'string' ? claims.scope : undefined);
      const wanted = requested === undefined ? account.scope : [...new Set(requested.split(' ').filter(Boolean))];
      const refused = wanted.filter((s) => !account.scope.includes(s));
      if (refused.length) throw new errors.InvalidScope('requested scope is not allowed for this service account', refused.join(' '));
      const { resource } = params;
      if (resource !== undefined && (typeof resource !== 'string' || !sameResource(resource, apiBaseUrl))) throw new errors.InvalidTarget();

      // Checked last, so an assertion refused for another reason can be corrected and sent again.
      if (!rememberAssertion(`${account.clientId}\0${jti}`, exp)) {
        log(`jwt-bearer client=${account.clientId} refused: assertion replayed`);
        throw invalidGrant('the assertion was already used (jti)');
      }

      const ttl = lifetimes.accessTokenTtl;
      const accountId = typeof sub === 'string' ? sub : account.clientId;
      const scope = wanted.join(' ') || undefined;
      // A grant per assertion, living as long as its one token: revokeGrantOf, introspection and the
      // API's grant check treat these tokens like any other.
      const grant = new provider.Grant({ accountId, clientId: account.clientId, expiresIn: ttl } as ConstructorParameters<typeof provider.Grant>[0]);
      if (scope) grant.addOIDCScope(scope);
      const grantId = await grant.save();
      const token = new provider.AccessToken({ client, accountId, grantId, gty: 'jwt_bearer', scope, expiresIn: ttl });
      if (resource !== undefined) token.setAudience(apiBaseUrl);
      ctx.oidc.entity('Grant', grant);
      ctx.oidc.entity('AccessToken', token);
      const value = await token.save();
      ctx.body = { access_token: value, token_type: token.tokenType, expires_in: token.expiration, scope };
    },
    ['assertion', 'scope', 'resource'],
  );

  async function register(input: { client_id: string; publicKeyPem: string; scope?: string }): Promise<ServiceAccount> {
    const clientId = input.client_id;
    if (!clientId) throw new TypeError('a service account needs a client_id');
    if (accounts.has(clientId) || options.clients.some((c) => c.client_id === clientId)) {
      throw new TypeError(`client_id ${clientId} is already registered with the sandbox`);
    }
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey(input.publicKeyPem);
    } catch (err) {
      throw new TypeError(`the public key of service account ${clientId} is not a PEM key: ${(err as Error).message}`);
    }
    const algorithms = algorithmsFor(publicKey);
    const scope = input.scope === undefined ? deps.resourceScopes : [...new Set(input.scope.split(' ').filter(Boolean))];
    const unknown = scope.filter((s) => !options.scopes.includes(s));
    if (unknown.length) throw new TypeError(`service account ${clientId}: unknown scope ${unknown.join(' ')}`);

    const metadata: ClientMetadata = {
      client_id: clientId,
      grant_types: [jwtBearerGrantType],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'none',
      scope: scope.join(' '),
    };
    const account: ServiceAccount = { clientId, publicKey, algorithms, keys: [{ publicKey, algorithms }], scope };
    accounts.set(clientId, account);
    await clientStore.upsert(clientId, metadata as never);
    log(`service account ${clientId} registered (${algorithms[0]}, scope ${scope.join(' ') || '-'})`);
    return account;
  }

  for (const sa of options.serviceAccounts) await register(sa);

  return {
    register,
    async create(input) {
      const { privateKey, publicKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
      const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
      await register({ ...input, publicKeyPem });
      return { client_id: input.client_id, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKeyPem };
    },
    get: (clientId) => accounts.get(clientId),
    addKey(clientId, publicKeyPem) {
      const account = accounts.get(clientId);
      if (!account) throw new TypeError(`no service account ${clientId}`);
      let publicKey: KeyObject;
      try {
        publicKey = createPublicKey(publicKeyPem);
      } catch (err) {
        throw new TypeError(`the public key for service account ${clientId} is not a PEM key: ${(err as Error).message}`);
      }
      if (account.keys.some((k) => k.publicKey.equals(publicKey))) return;
      account.keys.push({ publicKey, algorithms: algorithmsFor(publicKey) });
      log(`service account ${clientId}: key added (${account.keys.length} now)`);
    },
    removeKey(clientId, publicKeyPem) {
      const account = accounts.get(clientId);
      if (!account) throw new TypeError(`no service account ${clientId}`);
      const publicKey = createPublicKey(publicKeyPem);
      const before = account.keys.length;
      account.keys = account.keys.filter((k) => !k.publicKey.equals(publicKey));
      if (account.keys.length === before) throw new TypeError(`service account ${clientId} has no such key`);
      log(`service account ${clientId}: key removed (${account.keys.length} left)`);
    },
  };
}
