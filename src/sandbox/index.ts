/**
 * The sandbox (DESIGN.md "The sandbox"): a real OAuth 2.1 authorization server (oidc-provider)
 * and a small API behind it, on one loopback port:
 *
 *   /oauth/*                               the IdP; issuer `http://HOST:PORT/oauth`
 *     /oauth/.well-known/openid-configuration, /oauth/auth, /oauth/token,
 *     /oauth/token/revocation, /oauth/token/introspection, /oauth/me, /oauth/jwks
 *     /oauth/interaction/:uid[/approve|/deny]   login + consent as `sandbox-user`
 *   /.well-known/oauth-authorization-server/oauth   RFC 8414 metadata
 *   /api/*                                 the API: /items, /items/:id, /whoami
 *   /.well-known/oauth-protected-resource/api       RFC 9728 metadata
 *   /_sandbox/*                            the knobs over HTTP (see control.ts), also for people:
 *                                          revoke every grant, a timed outage, expire every token
 *   /{real host}/*                         with `persona`: a real provider's protocol (personas/)
 *
 * Used by Warrant's tests, `warrant demo`, `warrant sandbox`, and people testing their agents
 * against token expiry, so it behaves like production: opaque tokens checked in-process
 * (revocation is immediate), PKCE S256 required, refresh-token rotation with reuse detection,
 * and the RFC 7523 JWT bearer grant for service accounts (jwt-bearer.ts).
 */
export { startSandbox, type Sandbox, type SandboxStatus } from './server.ts';
export { formatProviderYaml } from './definition.ts';
export { sandboxDefaults, type SandboxOptions, type SandboxClient, type SandboxServiceAccount } from './options.ts';
export { jwtBearerGrantType, type ServiceAccountKey } from './jwt-bearer.ts';
export type { SandboxFaults } from './faults.ts';
export type { SandboxStats } from './stats.ts';
export type { RevokeOutcome, RevokeTarget } from './bulk.ts';
export type { OutageView } from './outage.ts';
export { SandboxAuthorizeError, type AuthorizeParams } from './authorize.ts';
export { personas, personaClient, sandboxUrl, type Persona, type PersonaDefinition, type PersonaStats, type RevocationRecord } from './personas/index.ts';
export type { PersonaOption, SandboxPersona } from './personas/attach.ts';
