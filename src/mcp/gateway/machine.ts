import { WarrantError, invalidRequest } from '../../errors/index.ts';
import { privateKeyKind, type AssertionAlg, type KeyKind, type OAuthCallError } from '../../oauth/index.ts';
import type { AuthorizationServerMetadata } from './discovery.ts';

// A remote MCP server registered for a machine grant (SEP-1046, "OAuth client credentials"):
// Warrant authenticates at the server's authorization server with a pre-registered client (a secret,
// client_secret_basic or _post, or a private key, private_key_jwt) and gets tokens with the
// client_credentials grant: no consent, no authorization endpoint, no refresh token. The grant is
// still a person's connection (the `owner` the admin names), so offboarding reaches it.

export type GrantType = 'authorization_code' | 'client_credentials';

export interface CredentialInput {
  grant_type?: GrantType;
  client_id?: string;
  client_secret?: string;
  private_key?: string;
  owner?: string;
}

/**
 * Checks the fields that say how Warrant identifies itself, before anything is fetched: each
 * mistake is `invalid_request` naming its field. Returns the private key's kind when one is given.
 */
export function checkCredentialInput(input: CredentialInput): KeyKind | undefined {
  const machine = input.grant_type === 'client_credentials';
  if (input.client_secret && input.private_key) throw invalidRequest('private_key', 'give client_secret or private_key, not both');
  if (input.client_secret && !input.client_id) throw invalidRequest('client_id', 'is required with client_secret');
  if (input.private_key && !input.client_id) throw invalidRequest('client_id', 'is required with private_key');
  if (machine) {
    if (!input.client_id) throw invalidRequest('client_id', "is required with grant_type client_credentials (a client registered at the server's authorization server)");
    if (!input.client_secret && !input.private_key) throw invalidRequest('client_secret', 'or private_key is required with grant_type client_credentials');
    if (!input.owner) throw invalidRequest('owner', 'is required with grant_type client_credentials: the person whose connection the machine grant is');
  } else if (input.owner !== undefined) {
    throw invalidRequest('owner', 'is only for grant_type client_credentials (with authorization_code the owner is whoever consents)');
  }
  if (input.private_key === undefined) return undefined;
  const kind = privateKeyKind(input.private_key);
  if (typeof kind === 'string') throw invalidRequest('private_key', kind);
  return kind;
}

export interface ChosenAuth {
  method: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  alg?: AssertionAlg;
}

/**
 * RFC 8414 §2: the method from `token_endpoint_auth_methods_supported` (default
 * client_secret_basic), the assertion's alg from `token_endpoint_auth_signing_alg_values_supported`
 * (absent: the key's default). A listed set that leaves no way for these credentials is refused now,
 * not at the first token request.
 */
export function machineAuthFor(as: AuthorizationServerMetadata, key: KeyKind | undefined): ChosenAuth {
  const methods = as.token_endpoint_auth_methods_supported;
  if (key) {
    if (methods && !methods.includes('private_key_jwt')) throw invalidRequest('private_key', `the authorization server does not take private_key_jwt (it lists ${methods.join(', ').slice(0, 200)})`);
    const algs = as.token_endpoint_auth_signing_alg_values_supported;
    const alg = key.algs.find((a) => !algs || algs.includes(a));
    if (!alg) throw invalidRequest('private_key', `the key signs ${key.algs.join(' or ')}; the authorization server takes ${algs!.join(', ').slice(0, 200)}`);
    return { method: 'private_key_jwt', alg };
  }
  if (!methods || methods.includes('client_secret_basic')) return { method: 'client_secret_basic' };
  if (methods.includes('client_secret_post')) return { method: 'client_secret_post' };
  throw invalidRequest('client_secret', `the authorization server takes no client secret (it lists ${methods.join(', ').slice(0, 200)})`);
}

/** RFC 8414 §2: a server that lists its grant types must list client_credentials. */
export function checkMachineGrant(as: AuthorizationServerMetadata): void {
  const grants = as.grant_types_supported;
  if (grants && !grants.includes('client_credentials')) {
    throw invalidRequest('grant_type', `the authorization server does not list client_credentials in grant_types_supported (it lists ${grants.join(', ').slice(0, 200)})`);
  }
}

/**
 * The first token request failed: the registration is refused, nothing is stored. The answer names
 * the field to fix and the IdP's error code, never a credential.
 */
export function refusedRegistration(e: OAuthCallError, input: CredentialInput, scopes: string[]): WarrantError {
  const field = input.private_key ? 'private_key' : 'client_secret';
  const nothing = 'nothing was registered';
  if (e.kind === 'transient') {
    return new WarrantError('upstream_unavailable', `the authorization server's token endpoint issued no token (${e.error}); ${nothing}, try again`, { retry_after: e.retryAfter ?? 30 });
  }
  if (e.error === 'invalid_key') return invalidRequest('private_key', `cannot sign a client assertion; ${nothing}`);
  if (e.error === 'invalid_client') {
    const what = field === 'private_key' ? 'the client assertion signed with private_key' : 'client_secret';
    return invalidRequest(field, `the authorization server refused client_id with ${what} (invalid_client); ${nothing}`);
  }
  if (e.error === 'unauthorized_client' || e.error === 'unsupported_grant_type') {
    return invalidRequest('grant_type', `the authorization server does not let this client use client_credentials (${e.error}); ${nothing}`);
  }
  if (e.error === 'invalid_scope') return invalidRequest('url', `the authorization server refused the scopes the server asks for (${scopes.join(' ').slice(0, 200) || 'none'}) (invalid_scope); ${nothing}`);
  return invalidRequest('client_id', `the authorization server refused the client credentials token request (${e.error}); ${nothing}`);
}
