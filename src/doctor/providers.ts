import type { Provider } from '../providers/index.ts';
import { probeClient } from './client-probe.ts';
import { clockFinding } from './clock.ts';
import { clientCredentialsOf } from './credentials.ts';
import { compareMetadata, fetchMetadata } from './discovery.ts';
import { environmentFindings } from './environments.ts';
import { request } from './http.ts';
import { error, warn, type ClockSample, type Finding } from './types.ts';

const hasPlaceholder = (v: string) => /\{[a-z_][a-z0-9_]*\}/.test(v);
const withClient = new Set<Provider['auth']>(['oauth2', 'client_credentials', 'jwt_bearer']);

/** Environments whose client id resolves; only those are checked against their IdP. */
export function configuredEnvironments(provider: Provider, env: NodeJS.ProcessEnv): string[] {
  if (!withClient.has(provider.auth)) return [];
  return Object.keys(provider.environments).filter((name) => clientCredentialsOf(provider, name, env));
}

/**
 * Every check of one provider: its definition's environments, then each configured environment
 * against its IdP (discovery, client probe, clock), the environments at once. `explicit`: the
 * operator named it, so having nothing configured is itself a finding.
 */
export async function checkProvider(provider: Provider, env: NodeJS.ProcessEnv, explicit = false): Promise<Finding[]> {
  const configured = configuredEnvironments(provider, env);
  if (!configured.length) {
    if (!explicit) return [];
    if (!withClient.has(provider.auth)) return [warn('credentials', provider.id, `auth ${provider.auth}: no OAuth client to check`, '')];
    return [error('credentials', provider.id, 'no client_id resolves for any environment', `set client_id (or its \${env:…} variable) in the definition of ${provider.id}`)];
  }
  const perEnvironment = await Promise.all(configured.map((name) => checkEnvironment(provider, name, env)));
  return [...environmentFindings(provider), ...perEnvironment.flat()];
}

async function checkEnvironment(provider: Provider, name: string, env: NodeJS.ProcessEnv): Promise<Finding[]> {
  const subject = `${provider.id}/${name}`;
  const environment = provider.environments[name]!;
  const credentials = clientCredentialsOf(provider, name, env)!;
  const [discovery, probe, extraClock] = await Promise.all([
    environment.issuer && !hasPlaceholder(environment.issuer) ? discoveryFindings(provider, name) : undefined,
    probeClient(provider, name, credentials),
    // Without discovery, the token endpoint's own answer carries the IdP's Date.
    !environment.issuer || hasPlaceholder(environment.issuer) ? tokenEndpointClock(environment.token_url) : [],
  ]);
  const samples = [...(discovery?.clock ?? []), ...extraClock];
  const clock = clockFinding(subject, samples);
  return [...(discovery?.findings ?? []), probe, ...(clock ? [clock] : [])];
}

async function discoveryFindings(provider: Provider, name: string): Promise<{ findings: Finding[]; clock: ClockSample[] }> {
  const subject = `${provider.id}/${name}`;
  const environment = provider.environments[name]!;
  const result = await fetchMetadata(environment.issuer!);
  if (result.found) return { findings: compareMetadata(provider, name, environment, result), clock: result.clock };
  const field = `environments.${name}.issuer`;
  const finding =
    result.problem === 'absent'
      ? warn('discovery', subject, `no discovery metadata for issuer ${environment.issuer}: ${result.detail}`, `check ${field}: the IdP publishes neither RFC 8414 nor OpenID Connect metadata for it`)
      : result.problem === 'unreachable'
        ? error('reachability', subject, result.detail, 'check the URL, DNS, TLS and any outbound proxy or firewall')
        : error('discovery', subject, result.detail, `check ${field}: the metadata URL answers something else (a login page, a proxy's error page)`);
  return { findings: [finding], clock: result.clock };
}

async function tokenEndpointClock(tokenUrl: string | undefined): Promise<ClockSample[]> {
  if (!tokenUrl || hasPlaceholder(tokenUrl)) return [];
  const answer = await request(tokenUrl, { method: 'HEAD' });
  return answer.ok && answer.clock ? [answer.clock] : [];
}
