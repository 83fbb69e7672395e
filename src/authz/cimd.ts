import type { Logger } from 'pino';
import { errors, type Configuration } from 'oidc-provider';
import { OWNER_METADATA } from './headless.ts';
import { authzDefaults } from './options.ts';
import { allowedGrants, redirectUriProblem } from './registration.ts';

// Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document-02; the MCP
// authorization spec's first way for a client to identify itself): a client_id that is an https URL
// names a JSON document there, which oidc-provider fetches and uses as the client's registration.
// The URL is chosen by whoever sends the authorization request, yet fetched from Warrant's network
// position, so every fetch of oidc-provider goes through Warrant's SSRF guard (the MCP gateway's:
// public addresses only unless WARRANT_MCP_ALLOWED_NETWORKS allows the network, judged on the
// socket; no redirect followed; time- and size-capped), and the document must satisfy the rules a
// dynamically registered client does (registration.ts), `application_type` aside.

type DocumentFeature = NonNullable<NonNullable<Configuration['features']>['clientIdMetadataDocument']>;
type Client = Parameters<NonNullable<DocumentFeature['allowClient']>>[1];

/** The host that published a client's metadata document (its client_id URL), if it is such a client. */
export function documentHost(client: unknown): string | undefined {
  const c = client as { clientIdMetadataDocument?: boolean; clientId?: string } | undefined;
  if (!c?.clientIdMetadataDocument || typeof c.clientId !== 'string') return undefined;
  try {
    return new URL(c.clientId).host;
  } catch {
    return undefined;
  }
}

/**
 * Warrant's rules for a client described by a metadata document, on every use (cached or not).
 * `application_type` may be omitted (the draft and the SDK send none): RFC 7591's default `web`
 * applies, which takes https redirect URIs and plain http ones on a loopback host only.
 */
export function checkDocumentClient(client: Client): true {
  // Only Warrant's admin API binds a client to an owner (headless.ts); a document cannot.
  if ((client as unknown as Record<string, unknown>)[OWNER_METADATA] !== undefined) {
    throw new errors.InvalidClientMetadata(`client_id metadata document must not set ${OWNER_METADATA}`);
  }
  const grants = client.grantTypes ?? [];
  // A document client is always a browser-based one: it has redirect URIs and the code grant; no
  // client_credentials (that needs an owner an admin named), no grant Warrant does not serve.
  if (!grants.includes('authorization_code') || grants.some((g) => !allowedGrants.has(g))) {
    throw new errors.InvalidClientMetadata('client_id metadata document grant_types must include authorization_code and may add only refresh_token and the device_code grant');
  }
  const auth = client.tokenEndpointAuthMethod;
  // The draft §4.1 forbids shared secrets (oidc-provider refuses them too): a public client, or one with keys.
  if (auth !== 'none' && auth !== 'private_key_jwt') {
    throw new errors.InvalidClientMetadata('client_id metadata document token_endpoint_auth_method must be "none" or "private_key_jwt"');
  }
  // invalid_client_metadata rather than invalid_redirect_uri: oidc-provider's carries no description.
  const problem = redirectUriProblem(client.redirectUris, client.applicationType ?? 'web');
  if (problem) throw new errors.InvalidClientMetadata(`client_id metadata document: ${problem}`);
  return true;
}

/** Before any fetch: the URL itself (oidc-provider has already checked its form, draft §3). */
export function allowDocumentFetch(clientId: string): true {
  if (clientId.length > authzDefaults.clientIdMetadataDocument.maxUrlLength) {
    throw new errors.InvalidClient(`a client_id URL is at most ${authzDefaults.clientIdMetadataDocument.maxUrlLength} characters`);
  }
  return true;
}

/** oidc-provider's `features.clientIdMetadataDocument`. */
export function documentFeature(): DocumentFeature {
  const { cacheSeconds } = authzDefaults.clientIdMetadataDocument;
  return {
    enabled: true,
    // An experimental feature: the draft version implemented, acknowledged (a new one fails start-up).
    ack: 'draft-02',
    allowFetch: (_ctx, clientId) => allowDocumentFetch(clientId),
    allowClient: (_ctx, client) => checkDocumentClient(client),
    // Cache-Control max-age / Expires of the document, clamped to these bounds (seconds).
    cacheDuration: { min: cacheSeconds.min, max: cacheSeconds.max },
  };
}

/**
 * Client.find with a memory of failed metadata documents: a client_id URL whose document could not
 * be used is refused without a fetch for `failureSeconds`. Without it each refused authorization
 * fetches twice (oidc-provider's error handler looks the client up again) and every retry fetches
 * anew: a way to have Warrant send requests at will. Only oidc-provider's own errors are kept (a
 * store error is not the document's fault); at most `failureEntries` URLs, the oldest dropped.
 */
export function rememberFailedDocuments<C>(find: (id: string) => Promise<C>, now: () => number): (id: string) => Promise<C> {
  const { failureSeconds, failureEntries } = authzDefaults.clientIdMetadataDocument;
  const failed = new Map<string, { until: number; err: Error }>();
  return async (id) => {
    if (typeof id !== 'string' || !id.startsWith('https://')) return find(id);
    const known = failed.get(id);
    if (known && known.until > now()) throw known.err;
    failed.delete(id);
    try {
      return await find(id);
    } catch (err) {
      if (err instanceof errors.OIDCProviderError) {
        if (failed.size >= failureEntries) failed.delete(failed.keys().next().value!);
        failed.set(id, { until: now() + failureSeconds * 1000, err });
      }
      throw err;
    }
  };
}

/** oidc-provider's `fetchResponseBodyLimits`: every document it may fetch is capped. */
export function fetchBodyLimits(): NonNullable<Configuration['fetchResponseBodyLimits']> {
  const { bodyLimitBytes } = authzDefaults.clientIdMetadataDocument;
  return { 'client_id metadata document': bodyLimitBytes, jwks_uri: authzDefaults.outboundBodyLimitBytes, sector_identifier_uri: authzDefaults.outboundBodyLimitBytes };
}

/** Why an outbound fetch failed, as a code fit for a log line (never the body, never a header). */
function reasonOf(err: unknown): string {
  const e = err as { name?: string; message?: string; code?: unknown; cause?: { code?: unknown; name?: string } };
  if (typeof e.message === 'string' && e.message.startsWith('refused:')) return e.message;
  // undici's connection errors carry a string code in `cause` (ADDRESS_REFUSED from the guard); a deadline is a TimeoutError.
  const code = [e.cause?.code, e.code].find((c): c is string => typeof c === 'string');
  return code ?? e.cause?.name ?? e.name ?? 'error';
}

/**
 * oidc-provider's `fetch` (client metadata documents, a client's jwks_uri): Warrant's guarded fetch
 * in place of oidc-provider's own special-use-address dispatcher (which knows no allowed networks),
 * no redirect followed, and a deadline of our own on top of oidc-provider's. Refusals are logged
 * with the document's origin and path and a reason code.
 */
export function outboundFetch(deps: { fetch: typeof fetch; timeoutMs: number; logger: Logger }): NonNullable<Configuration['fetch']> {
  return async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const where = `${url.origin}${url.pathname}`;
    const { dispatcher: _theirs, signal, ...rest } = init as RequestInit & { dispatcher?: unknown };
    const deadline = AbortSignal.timeout(deps.timeoutMs);
    try {
      const res = await deps.fetch(input, { ...rest, redirect: 'manual', signal: signal ? AbortSignal.any([signal, deadline]) : deadline });
      // draft §4: a redirect is not followed; any answer but 200 fails the client.
      if (res.status !== 200) deps.logger.warn({ url: where, status: res.status }, 'authz fetch answered other than 200 (redirects are not followed)');
      return res;
    } catch (err) {
      deps.logger.warn({ url: where, reason: reasonOf(err) }, 'authz fetch refused or failed');
      throw err;
    }
  };
}
