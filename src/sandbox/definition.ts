import { stringify } from 'yaml';
import type { ProviderInput } from '../providers/index.ts';
import type { ServiceAccount } from './jwt-bearer.ts';
import { apiScopes, sandboxDefaults, type ResolvedOptions } from './options.ts';

// The Warrant provider definition (DESIGN.md "Running it") that points at a running sandbox.

export interface DefinitionInputs {
  urls: {
    issuer: string;
    authorization: string;
    token: string;
    revocation: string;
    introspection: string;
    apiBase: string;
  };
  options: ResolvedOptions;
  accessTokenTtl: number;
}

/** What each scope opens on the API, and how the API says no: the same for every definition. */
function apiRules(): Pick<ProviderInput, 'scopes' | 'auth_failures' | 'scope_failures'> {
  return {
    scopes: {
      [apiScopes.read]: [
        { method: 'GET', path: '/items' },
        { method: 'GET', path: '/items/**' },
        { method: 'GET', path: '/whoami' },
      ],
      [apiScopes.write]: [
        { method: 'POST', path: '/items' },
        { method: ['POST', 'PUT', 'PATCH', 'DELETE'], path: '/items/**' },
      ],
    },
    auth_failures: [{ status: 200, json: { ok: false, error: ['token_expired', 'invalid_auth'] } }],
    // Missing scopes come back as 403 with WWW-Authenticate error="insufficient_scope" (RFC 6750).
    scope_failures: [],
  };
}

export function buildProviderDefinition(inputs: DefinitionInputs, id = 'sandbox'): ProviderInput {
  const { urls, options } = inputs;
  const client = options.clients.find((c) => c.client_id === sandboxDefaults.clientId) ?? options.clients[0];
  return {
    id,
    name: 'Warrant sandbox',
    auth: 'oauth2',
    client_id: client?.client_id,
    client_secret: client?.client_secret,
    token_auth_method: client?.client_secret === undefined ? 'none' : client.token_endpoint_auth_method === 'client_secret_post' ? 'client_secret_post' : 'client_secret_basic',
    environments: {
      production: {
        authorization_url: urls.authorization,
        token_url: urls.token,
        revocation_url: urls.revocation,
        introspection_url: urls.introspection,
        issuer: urls.issuer,
        api_base_url: urls.apiBase,
      },
    },
    pkce: true,
    scope_separator: ' ',
    default_scopes: ['offline_access'],
    refresh_token_rotation: options.rotateRefreshTokens,
    refresh_token_lifetime: options.refreshTokenTtl,
    token_lifetime: inputs.accessTokenTtl,
    ...apiRules(),
    revocation_token: 'refresh_token',
    notes:
      'Local Warrant sandbox (oidc-provider). The client secret is a fixed development value. ' +
      'Body-level auth failures (200 {"ok":false}) appear only when that fault is injected.',
  };
}

/**
 * An `auth: jwt_bearer` definition (RFC 7523) for a service account of the sandbox, shaped like the
 * catalog's google-service-account: no client secret, the private key is the connection's.
 */
export function buildServiceAccountDefinition(inputs: DefinitionInputs, id: string, account: ServiceAccount): ProviderInput {
  const { urls } = inputs;
  return {
    id,
    name: 'Warrant sandbox service account (JWT bearer)',
    auth: 'jwt_bearer',
    client_id: account.clientId,
    token_auth_method: 'none',
    environments: {
      production: {
        token_url: urls.token,
        revocation_url: urls.revocation,
        introspection_url: urls.introspection,
        issuer: urls.issuer,
        api_base_url: urls.apiBase,
      },
    },
    jwt_bearer: { audience: urls.token, algorithm: account.algorithms[0] as 'RS256' | 'ES256' | 'PS256' },
    scope_separator: ' ',
    token_lifetime: inputs.accessTokenTtl,
    ...apiRules(),
    // No refresh token: the access token is all there is to revoke.
    revocation_token: 'access_token',
    notes:
      'Local Warrant sandbox, RFC 7523 JWT bearer grant: the assertion is signed with the service account key, ' +
      'iss = client_id, aud = token_url, sub = the user acted for (optional), exp at most 1 hour after iat, ' +
      'each jti once. No refresh token: a new assertion is exchanged when the access token expires.',
  };
}

/** The definition as YAML, for `warrant sandbox` to print. */
export function formatProviderYaml(def: object): string {
  return stringify(def, { lineWidth: 0 });
}
