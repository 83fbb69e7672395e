export { createOAuthClient, type OAuthClient, type OAuthClientOptions, type TokenSet, type IntrospectionResult } from './client.ts';
export { OAuthCallError, classify, type FailureKind } from './errors.ts';
export { generateRandomCodeVerifier, generateRandomState, calculatePKCECodeChallenge } from 'oauth4webapi';
