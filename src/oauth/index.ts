export { createOAuthClient, type OAuthClient, type OAuthClientOptions, type TokenSet, type IntrospectionResult } from './client.ts';
export { privateKeyKind, type AssertionAlg, type KeyKind } from './client-assertion.ts';
export { OAuthCallError, classify, outcomeUnknown, MAX_RETRY_AFTER_SECONDS, type FailureKind } from './errors.ts';
export { MAX_ANSWER_BYTES, boundedFetch, readCapped, type BoundedAnswer, type IdpGuard } from './fetch.ts';
export { checkScheme } from './revocation.ts';
export type { ApiCheck } from './revocation.ts';
export { MAX_EXPIRES_IN_SECONDS, normaliseExpiresIn } from './token-response.ts';
export { generateRandomCodeVerifier, generateRandomState, calculatePKCECodeChallenge } from 'oauth4webapi';
