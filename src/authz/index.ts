// Warrant's own OAuth 2.1 authorization server (DESIGN.md, "authz/"): oidc-provider mounted at
// `/oauth2/…`, its state in Warrant's store, clients bound to owners as agents.
export { createAuthz, issuerFor, type Authz, type AuthzDeps } from './server.ts';
export { authzRoutes } from './routes.ts';
export { authzDefaults, authzPaths } from './options.ts';
export { createResources, warrantResources, mcpServerResources, builtInScopes, type Resources, type ResourceInfo, type ResourceMatcher } from './resources.ts';
export { createAccessTokenVerifier, TokenRefusal, type TokenRefusalReason, type VerifiedAccessToken, type VerifyAccessToken } from './verify.ts';
