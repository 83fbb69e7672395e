import type { Provider } from '../providers/index.ts';
import { clientCredentialsFor } from '../tokens/index.ts';

export interface ClientCredentials {
  clientId: string;
  clientSecret?: string;
}

/**
 * The app credentials an environment uses, resolved as `warrant serve` resolves them (an
 * environment's own client_id overrides the definition's). Undefined when no client id resolves:
 * that environment is not configured, and doctor does not call its IdP.
 */
export function clientCredentialsOf(provider: Provider, environment: string, env: NodeJS.ProcessEnv = process.env): ClientCredentials | undefined {
  const { clientId, clientSecret } = clientCredentialsFor(provider, environment, env);
  return clientId ? { clientId, clientSecret } : undefined;
}
