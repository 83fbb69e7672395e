import { z } from 'zod';
import { endpointKeys, placeholderNames, placeholderTypes, placeholdersOf, typesFor } from './placeholders.ts';

// The provider definition format of DESIGN.md ("Running it"). Field names are the file's
// own (snake_case): the format is a contract read by tools outside this repository, so the
// parsed object keeps the shape users write.

const methodName = z
  .string()
  .transform((m) => m.toUpperCase())
  .pipe(z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', '*']));

/**
 * One thing a scope lets an agent do: HTTP method(s), a path glob (`*` one segment, `**` any) and
 * optionally constraints on query parameters: name → the values allowed (a value or a list; the
 * parameter may be absent), or `false` (the parameter must not appear). Google Drive's
 * `{ alt: [json] }` keeps `alt=media` downloads out of a metadata-only scope.
 */
export const scopeRuleSchema = z.strictObject({
  /**
   * The API host the rule is about: a key of the environment's `api_hosts`. Absent: the main
   * `api_base_url`. A rule only ever matches requests to its own host.
   */
  host: z.string().regex(/^[a-z][a-z0-9_-]*$/, { message: 'a host key is lower-case letters, digits, "_" and "-"' }).optional(),
  method: z.union([methodName, z.array(methodName).min(1)]),
  path: z
    .string()
    .startsWith('/', { message: 'a scope rule path starts with "/"' })
    .refine((p) => !p.split('/').some((s) => s === '..' || s === '.'), {
      message: 'a scope rule path has no "." or ".." segments',
    }),
  query: z
    .record(
      z.string().trim().min(1, { message: 'a query parameter name is not empty' }),
      z.union([z.literal(false), z.string().transform((v) => [v]), z.array(z.string()).min(1)]),
    )
    .optional(),
});

const jsonScalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);

/**
 * A pattern over an upstream answer. Every member given must match: `status` (one or a list),
 * `json` (members, each equal to the value or one of a list; a key is a dot path into nested
 * objects, `error.code`, and `[]` after a segment means "any element of this array",
 * `errors[].extensions.code`; a leading `[]` enters an answer that is an array, Salesforce's
 * `[].errorCode`), `header` (name → substring), `body_contains` (substring of the raw body).
 */
export const responsePatternSchema = z.strictObject({
  status: z.union([z.number().int().min(100).max(599), z.array(z.number().int().min(100).max(599)).min(1)]).optional(),
  json: z.record(z.string(), z.union([jsonScalar, z.array(jsonScalar).min(1)])).optional(),
  header: z.record(z.string(), z.string()).optional(),
  body_contains: z.string().min(1).optional(),
  /** For scope failures: the JSON member that names the missing scope (Slack's `needed`); a dot path like `json` keys. */
  required_scope_field: z.string().optional(),
  /**
   * A header in which the answer lists the scopes the call accepts (GitHub `X-Accepted-OAuth-Scopes`):
   * matches when it names some and the token holds none of them — per `granted_scopes_header`
   * (`X-OAuth-Scopes`) when given. Those scopes are the missing scope the agent is told.
   */
  accepted_scopes_header: z.string().regex(/^[A-Za-z0-9-]+$/).optional(),
  granted_scopes_header: z.string().regex(/^[A-Za-z0-9-]+$/).optional(),
});

const secretRef = z
  .string()
  .min(1)
  .refine((s) => !s.includes('${') || /^\$\{env:[A-Za-z_][A-Za-z0-9_]*\}$/.test(s), {
    message: 'a reference is written ${env:NAME}',
  });

const url = z.url({ message: 'must be an absolute URL' });
/** A URL that may hold `{param}` placeholders filled from the connection (Salesforce `{instance_url}`). */
const urlTemplate = z
  .string()
  .min(1)
  .refine((s) => /^(https?:\/\/|\{[a-z_]+\})/.test(s), { message: 'must be an absolute URL or start with a {placeholder}' });

export const environmentSchema = z.strictObject({
  authorization_url: url.optional(),
  token_url: urlTemplate.optional(),
  /** Where refresh-token grants go when not to `token_url` (Figma `/v1/oauth/refresh`). */
  refresh_url: urlTemplate.optional(),
  revocation_url: urlTemplate.optional(),
  introspection_url: urlTemplate.optional(),
  userinfo_url: urlTemplate.optional(),
  /**
   * The authorization server's issuer identifier (RFC 8414 §2, OIDC discovery `issuer`), checked
   * against the `iss` of the authorization response (RFC 9207) and of an ID token. May hold typed
   * `{param}` placeholders known when the session starts (Okta `https://{okta_domain}`).
   */
  issuer: urlTemplate
    .refine((s) => URL.canParse(s.replace(/\{[a-z][a-z0-9_]*\}/g, 'x')), { message: 'must be an absolute URL' })
    .refine((s) => !/[?#]/.test(s), { message: 'an issuer has no query or fragment (RFC 8414 §2)' })
    .optional(),
  api_base_url: urlTemplate,
  /**
   * Further API hosts of this environment (Dropbox `content`, QuickBooks `payments`), by host key.
   * The proxy sends a request to one when the agent names its key (`Warrant-Api-Host: content`) or
   * when the request path starts with one of its `paths`; scope rules name the host they are about.
   * Each is held to the same SSRF guard as `api_base_url`.
   */
  api_hosts: z
    .record(
      z.string().regex(/^[a-z][a-z0-9_-]*$/, { message: 'a host key is lower-case letters, digits, "_" and "-"' }),
      z.strictObject({
        base_url: urlTemplate,
        /** Path prefixes (relative to the main API, e.g. `/files/download`) routed to this host. */
        paths: z.array(z.string().startsWith('/', { message: 'a path prefix starts with "/"' })).optional(),
      }),
    )
    .optional(),
  /** This environment's own app credentials, when they differ from the definition's (QuickBooks sandbox and production are different apps). */
  client_id: secretRef.optional(),
  client_secret: secretRef.optional(),
  /** This environment's own `client_private_key` (goes with its own `client_id`, as `client_secret` does). */
  client_private_key: secretRef.optional(),
});

/** Header name → value; a value may hold `{param}` placeholders filled from the connection's params (`{tenant_id}`). */
const headerMap = z.record(
  z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, { message: 'a header name is an HTTP token' }),
  z.string().refine((v) => !/[\r\n\0]/.test(v), { message: 'a header value has no line breaks' }),
);

/** A non-RFC 7009 revocation request (GitHub, Slack, Linear, Notion …) and how to tell it worked. */
export const revocationSchema = z.strictObject({
  method: z.enum(['POST', 'DELETE', 'GET']).default('POST'),
  /** `form`: `token=…` (RFC 7009 §2.1, `token_type_hint` added); `json`: `{"<token_field>": …}`; `none`: no body. */
  body: z.enum(['form', 'json', 'none']).default('form'),
  /** The body member carrying the token (GitHub and Linear: `access_token`). */
  token_field: z.string().min(1).default('token'),
  /**
   * How the request authenticates: `client` as at the token endpoint (token_auth_method), `basic`
   * the client id and secret as HTTP Basic (GitHub), `bearer` the token being revoked as a Bearer
   * token (Slack, Linear, Dropbox), `api` the token presented as `token_injection` says
   * (Shopify's `X-Shopify-Access-Token`), `none`.
   */
  auth: z.enum(['client', 'basic', 'bearer', 'api', 'none']).default('client'),
  headers: headerMap.optional(),
  /**
   * What an answer that did revoke looks like (status and/or body, as `auth_failures`); default any
   * 2xx. An answer that does not match (Slack's `200 {"ok": false}`) is reported as not revoked.
   */
  success: z.lazy(() => responsePatternSchema).optional(),
  /**
   * An API call (relative to `api_base_url`, GET) that must fail with an auth failure once the
   * token is revoked: how a revocation is verified where there is no introspection and no refresh
   * token to try (GitHub `/user`, Slack `/auth.test`).
   */
  verify_path: z.string().startsWith('/', { message: 'verify_path starts with "/"' }).optional(),
});

export const providerSchema = z
  .strictObject({
    id: z.string().regex(/^[a-z0-9-]+$/, { message: 'id is lower-case letters, digits and "-"' }),
    name: z.string().optional(),
    /** Shown on the hosted connect page: an https URL or a `data:image/…` URL. */
    logo_url: z
      .string()
      .max(65_536)
      .refine((s) => /^https:\/\/[^\s]+$/i.test(s) || /^data:image\/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=]+$/.test(s), {
        message: 'is an https:// URL or a data:image/…;base64 URL',
      })
      .optional(),
    docs_url: url.optional(),
    auth: z.enum(['oauth2', 'client_credentials', 'jwt_bearer', 'api_key', 'basic']),
    client_id: secretRef.optional(),
    client_secret: secretRef.optional(),
    token_auth_method: z
      .enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'])
      .default('client_secret_basic'),
    /**
     * `private_key_jwt` (RFC 7523 §2.2): the client's private key, PKCS#8 PEM (EC P-256 or RSA), or
     * `${env:NAME}`. Each token request carries an assertion signed with it (iss = sub = client_id,
     * aud = the issuer, 60 s, a fresh jti).
     */
    client_private_key: secretRef.optional(),
    /** The assertion's `alg`; default ES256 for an EC key, RS256 for an RSA key. */
    client_assertion_alg: z.enum(['ES256', 'RS256', 'PS256']).optional(),
    /**
     * What `invalid_client` from the token endpoint means for a connection: `misconfigured` (Warrant's
     * app settings are wrong: status `error`, retried with backoff until an operator fixes them) or
     * `terminal` (the client credentials are the grant itself, as an MCP server registered for
     * client credentials: their refusal ends it, `reauth_required` with one alert).
     */
    client_refusal: z.enum(['misconfigured', 'terminal']).default('misconfigured'),
    environments: z
      .record(z.string().regex(/^[a-z0-9-]+$/), environmentSchema)
      .refine((e) => Object.keys(e).length > 0, { message: 'at least one environment' }),
    authorization_params: z.record(z.string(), z.string()).optional(),
    /** Extra parameters sent with every token request (rarely needed). */
    token_params: z.record(z.string(), z.string()).optional(),
    /**
     * Headers sent on every proxied API call (`Notion-Version: 2022-06-28`), values may hold
     * `{param}` from the connection (`Xero-tenant-id: {tenant_id}`). They replace a header of the
     * same name sent by the agent: the definition is authoritative.
     */
    api_headers: headerMap.optional(),
    /** The authorization request parameter that carries the scopes; default `scope` (Slack user tokens: `user_scope`). */
    scope_param: z.string().regex(/^[a-z_]+$/).default('scope'),
    /** Where the token set sits in a token response that is not shaped as RFC 6749 §5.1 says. */
    token_response: z
      .strictObject({
        /** A member holding the token set (Slack user tokens: `authed_user`); a dot path. */
        path: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/).optional(),
        /** The member of the token set holding the granted scopes, when not `scope`. */
        scope_field: z.string().min(1).optional(),
      })
      .optional(),
    /**
     * After consent, a GET with the new access token that finds the tenant the grant reaches
     * (Atlassian `accessible-resources` → `cloud_id`, Xero `/connections` → `tenant_id`); the value
     * is stored as the connection param `param`. A param given when the session started must be
     * one of those found; otherwise the first is taken.
     */
    tenant_discovery: z
      .strictObject({
        url: url,
        /** The connection param to fill; must be declared in `connection_params`. */
        param: z.string().regex(/^[a-z][a-z0-9_]*$/),
        /** The member of each element (of the answer's array, or of `list`) holding the value. */
        field: z.string().min(1),
        /** When the answer is an object, the member holding the array (dot path). */
        list: z.string().optional(),
      })
      .optional(),
    /**
     * The IdP always sends `iss` in the authorization response (RFC 9207 §3, its metadata's
     * `authorization_response_iss_parameter_supported`): a response without it is refused.
     */
    authorization_response_iss_parameter_supported: z.boolean().optional(),
    /**
     * The path of this provider's OAuth callback under WARRANT_PUBLIC_URL; default
     * `/oauth/callback/{id}`. `/oauth/callback` keeps a redirect URI registered before per-provider
     * paths (src/providers/redirect.ts).
     */
    redirect_path: z
      .string()
      .regex(/^\/oauth\/callback(\/[a-z0-9-]{1,64})?$/, { message: 'is /oauth/callback or /oauth/callback/<letters, digits, "-">' })
      .optional(),
    /** PKCE S256 on the authorization code flow (RFC 7636); off only for IdPs that reject it. */
    pkce: z.boolean().default(true),
    /** RFC 8707 resource indicator sent on authorize and token requests. */
    resource: z.string().optional(),
    /**
     * The endpoints were learned from a remote server's metadata (an MCP gateway server), not
     * written by the operator: every IdP call goes through the SSRF guard, which refuses a
     * non-public address unless its network is allowed (WARRANT_MCP_ALLOWED_NETWORKS), on the
     * socket actually connected (src/tokens/clients.ts, src/oauth/fetch.ts).
     */
    endpoints_untrusted: z.boolean().optional(),
    /**
     * `false`: the IdP has no OAuth scopes (Notion: the integration's capabilities are set in its
     * settings). The names under `scopes` are then Warrant's own, after the provider's capabilities:
     * requested ones are never sent to the IdP, and the connection holds what was requested.
     */
    idp_scopes: z.boolean().default(true),
    scope_separator: z.string().min(1).default(' '),
    /** How the token response separates granted scopes, when not as the request does (GitHub ",", Linear " "). */
    scope_response_separator: z.string().min(1).optional(),
    /**
     * A prefix the token response puts before granted scopes (Microsoft answers
     * `https://graph.microsoft.com/mail.read` for `Mail.Read`): stripped, and the rest matched to the
     * catalog's or the request's spelling without regard to case.
     */
    scope_response_prefix: z.string().min(1).optional(),
    /** Scopes always requested, e.g. `offline_access` where that is how refresh tokens are granted. */
    default_scopes: z.array(z.string().min(1)).optional(),
    refresh_token_rotation: z.boolean().default(false),
    /** Seconds during which the previous refresh token still works after a rotation (Xero 1800, Atlassian 600). */
    refresh_token_grace_period: z.number().int().nonnegative().optional(),
    /** The previous refresh token stays valid after use until its own expiry (Microsoft). */
    refresh_token_reusable: z.boolean().optional(),
    /** Absolute refresh-token lifetime in seconds, when documented. */
    refresh_token_lifetime: z.number().int().positive().optional(),
    /** Seconds of disuse after which the IdP expires a refresh token; the scheduler refreshes idle grants before it. */
    refresh_token_idle_timeout: z.number().int().positive().optional(),
    /** Access-token lifetime in seconds, used when the token response has no `expires_in`. */
    token_lifetime: z.number().int().positive().optional(),
    /** How the token endpoint wants to be spoken to. */
    token_endpoint: z
      .strictObject({
        body: z.enum(['form', 'json']).default('form'),
        accept: z.string().optional(),
        /** The endpoint answers 200 with an `error` member on failure (GitHub). */
        errors_with_200: z.boolean().default(false),
        /** Headers sent on every token request (Notion: `Notion-Version`). Static: no placeholders. */
        headers: headerMap.optional(),
      })
      .optional(),
    /** Values a connection carries beyond its tokens, usable as `{name}` in URLs. */
    connection_params: z
      .record(
        z.string().regex(/^[a-z][a-z0-9_]*$/),
        z.strictObject({
          from: z.enum(['token_response', 'callback', 'connection']),
          /** Name at the source when it differs (QuickBooks sends `realmId` on the callback). */
          field: z.string().optional(),
          description: z.string().optional(),
          /** What the value may be; required for a param used as `{name}` in an endpoint URL (placeholders.ts). */
          type: z.enum(placeholderTypes).optional(),
          /** For `hostname`, `hostname_under`, `https_origin`: the host must end with this (or one of these). */
          suffix: z
            .union([z.string(), z.array(z.string()).min(1)])
            .refine((s) => [s].flat().every((x) => /^\.?[a-z0-9-]+(\.[a-z0-9-]+)+$/i.test(x)), { message: 'a suffix is a domain, e.g. .myshopify.com' })
            .optional(),
        }),
      )
      .optional(),
    /** Where the token goes on an upstream request; default `Authorization: Bearer {token}`. */
    token_injection: z
      .strictObject({
        in: z.enum(['header', 'query']).default('header'),
        name: z.string().default('Authorization'),
        format: z.string().default('Bearer {token}'),
      })
      .optional(),
    /** Which token to revoke at disconnect (RFC 7009): the refresh token ends the whole grant where the IdP supports it. */
    revocation_token: z.enum(['refresh_token', 'access_token']).default('refresh_token'),
    /** How the revocation endpoint is spoken to when it is not RFC 7009; its URL may use `{client_id}`. */
    revocation: revocationSchema.optional(),
    jwt_bearer: z
      .strictObject({
        audience: z.string().optional(),
        algorithm: z.enum(['RS256', 'ES256', 'PS256']).default('RS256'),
        /** Assertion lifetime in seconds. */
        assertion_lifetime: z.number().int().positive().max(3600).default(300),
      })
      .optional(),
    scopes: z.record(z.string().min(1), z.array(scopeRuleSchema)).default({}),
    /** What each scope lets an agent do, in a sentence for the owner (shown on the hosted connect page). */
    scope_descriptions: z.record(z.string().min(1), z.string().min(1).max(500)).optional(),
    /**
     * Connect sessions may ask for scopes beyond the keys of `scopes` and `default_scopes` (the
     * remote servers of the MCP gateway). A definition without any scope rules is free too: there is
     * nothing to check against.
     */
    free_scopes: z.boolean().optional(),
    auth_failures: z.array(responsePatternSchema).default([]),
    scope_failures: z.array(responsePatternSchema).default([]),
    notes: z.string().optional(),
    /** Where each fact of the entry comes from: fact (a field name, or a short phrase) → URL and what it says. */
    sources: z.record(z.string().min(1), z.string().min(1)).optional(),
  })
  .superRefine((p, ctx) => {
    if (p.token_auth_method === 'private_key_jwt' && !p.client_private_key && !Object.values(p.environments).some((e) => e.client_private_key)) {
      ctx.addIssue({ code: 'custom', path: ['client_private_key'], message: 'required when token_auth_method is private_key_jwt' });
    }
    for (const [name, env] of Object.entries(p.environments)) {
      const needs: (keyof typeof env)[] =
        p.auth === 'oauth2' ? ['authorization_url', 'token_url'] : p.auth === 'client_credentials' || p.auth === 'jwt_bearer' ? ['token_url'] : [];
      for (const key of needs) {
        if (!env[key]) ctx.addIssue({ code: 'custom', path: ['environments', name, key], message: `required when auth is ${p.auth}` });
      }
      for (const key of endpointKeys) {
        const template = env[key];
        if (template) for (const issue of placeholderIssues(p, template, key === 'revocation_url')) ctx.addIssue({ code: 'custom', path: ['environments', name, key], message: issue });
      }
      if (env.issuer) {
        for (const issue of placeholderIssues(p, env.issuer)) ctx.addIssue({ code: 'custom', path: ['environments', name, 'issuer'], message: issue });
        // The issuer is compared before the code is exchanged: its values must be known when the session starts.
        for (const { name: param } of placeholdersOf(env.issuer)) {
          const from = p.connection_params?.[param]?.from;
          if (from && from !== 'connection') ctx.addIssue({ code: 'custom', path: ['environments', name, 'issuer'], message: `{${param}} comes from the ${from}; an issuer may only use params given when the session starts (from: connection)` });
        }
      } else if (p.authorization_response_iss_parameter_supported) {
        ctx.addIssue({ code: 'custom', path: ['environments', name, 'issuer'], message: 'required when authorization_response_iss_parameter_supported is true' });
      }
    }
    for (const [name, env] of Object.entries(p.environments)) {
      for (const [key, host] of Object.entries(env.api_hosts ?? {})) {
        for (const issue of placeholderIssues(p, host.base_url)) ctx.addIssue({ code: 'custom', path: ['environments', name, 'api_hosts', key, 'base_url'], message: issue });
      }
    }
    for (const [rule, list] of Object.entries(p.scopes)) {
      list.forEach((r, i) => {
        if (r.host && !Object.values(p.environments).some((e) => e.api_hosts?.[r.host!])) {
          ctx.addIssue({ code: 'custom', path: ['scopes', rule, i, 'host'], message: `no environment has an api_hosts entry ${r.host}` });
        }
      });
    }
    for (const [header, value] of Object.entries(p.api_headers ?? {})) {
      for (const name of placeholderNames(value)) {
        if (!p.connection_params?.[name]) ctx.addIssue({ code: 'custom', path: ['api_headers', header], message: `uses {${name}} but declares no connection param ${name}` });
      }
    }
    if (p.tenant_discovery && !p.connection_params?.[p.tenant_discovery.param]) {
      ctx.addIssue({ code: 'custom', path: ['tenant_discovery', 'param'], message: `declares no connection param ${p.tenant_discovery.param}` });
    }
    for (const [name, def] of Object.entries(p.connection_params ?? {})) {
      if ((def.type === 'hostname_under' || def.type === 'https_origin') && !def.suffix) {
        ctx.addIssue({ code: 'custom', path: ['connection_params', name, 'suffix'], message: `required for type ${def.type}` });
      }
    }
  });

/**
 * Every `{param}` of an endpoint URL is a connection param with a type that fits where it lands;
 * a revocation URL may also use the built-in `{client_id}` (the app's), in its path only.
 */
function placeholderIssues(p: { connection_params?: Record<string, { type?: string }> }, template: string, clientIdAllowed = false): string[] {
  const issues: string[] = [];
  for (const { name, position } of placeholdersOf(template)) {
    if (clientIdAllowed && name === 'client_id') {
      if (position !== 'path') issues.push('{client_id} may only stand in the path of a revocation_url');
      else if (p.connection_params?.client_id) issues.push('{client_id} in a revocation_url is the app\'s client id; a connection param of that name would be ambiguous');
      continue;
    }
    const def = p.connection_params?.[name];
    const allowed = typesFor[position];
    if (!allowed.length) issues.push(`{${name}} may only stand for a whole URL origin, a whole host, the first label of a host, or path text`);
    else if (!def) issues.push(`uses {${name}} but declares no connection param ${name}`);
    else if (!def.type) issues.push(`uses {${name}}: connection_params.${name}.type must say what it may be (${allowed.join(' or ')})`);
    else if (!(allowed as readonly string[]).includes(def.type)) issues.push(`{${name}} is a ${def.type}, which cannot stand there (${allowed.join(' or ')})`);
  }
  return issues;
}

export type ProviderInput = z.input<typeof providerSchema>;
export type Provider = z.output<typeof providerSchema>;
export type ProviderEnvironment = z.output<typeof environmentSchema>;
export type ScopeRule = z.output<typeof scopeRuleSchema>;
export type ResponsePattern = z.output<typeof responsePatternSchema>;

/** Turns zod issues into one line per field, e.g. `environments.production.token_url: required when …`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}
