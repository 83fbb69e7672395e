import type { Provider, ProviderEnvironment } from '../providers/index.ts';
import { error, type Finding } from './types.ts';

// Sandbox/production mix-ups visible in the definition alone: an environment's endpoints on
// another environment's host, and hosts whose names contradict the environment's name.

const authKeys = ['authorization_url', 'token_url', 'revocation_url', 'introspection_url'] as const;

const productionName = /^(prod|production|live)$/;
const testName = /^(sandbox|test|testing|staging|stage|dev|development|demo|uat|qa)(-.*)?$/;
/** A host label that says "not production": `sandbox-quickbooks.api…`, `test.salesforce.com`, `api.staging.x`. */
const testHost = /(^|[.-])(sandbox|test|testing|staging|stage|dev|demo|uat|qa)(\d*)([.-]|$)/;

/** The host (and port) of a URL; undefined when the host is or holds a `{placeholder}`. */
function hostOf(url: string | undefined): string | undefined {
  const host = url ? /^https?:\/\/([^/?#]+)/i.exec(url)?.[1] : undefined;
  return host && !host.includes('{') ? host.toLowerCase() : undefined;
}

/** The host that says who the identity server is: the issuer's, else the authorization or token endpoint's. */
const identityHost = (env: ProviderEnvironment) => hostOf(env.issuer) ?? hostOf(env.authorization_url) ?? hostOf(env.token_url);
const apiHosts = (env: ProviderEnvironment) =>
  [hostOf(env.api_base_url), ...Object.values(env.api_hosts ?? {}).map((h) => hostOf(h.base_url))].filter((h): h is string => !!h);

function urlsOf(env: ProviderEnvironment): [string, string][] {
  const out: [string, string][] = [];
  for (const key of [...authKeys, 'issuer', 'api_base_url'] as const) if (env[key]) out.push([key, env[key]!]);
  for (const [name, h] of Object.entries(env.api_hosts ?? {})) out.push([`api_hosts.${name}.base_url`, h.base_url]);
  return out;
}

export function environmentFindings(provider: Provider): Finding[] {
  const out: Finding[] = [];
  const envs = Object.entries(provider.environments);
  for (const [name, env] of envs) {
    const subject = `${provider.id}/${name}`;
    const field = (key: string) => `environments.${name}.${key}`;
    for (const [otherName, other] of envs) {
      if (otherName === name) continue;
      // Two identity servers (Salesforce login/test, DocuSign account/account-d): an auth endpoint
      // of one environment on the other's host sends its client and codes to the wrong one.
      const mine = identityHost(env);
      const theirs = identityHost(other);
      if (mine && theirs && mine !== theirs) {
        for (const key of authKeys) {
          if (hostOf(env[key]) === theirs) {
            out.push(error('environments', subject, `${key} ${env[key]} is on ${otherName}'s identity host ${theirs}`, `point ${field(key)} at ${mine}, ${name}'s own host`));
          }
        }
      }
      // An environment named for testing that calls the production API (or the reverse) shares its API host.
      if (testName.test(name) && productionName.test(otherName)) {
        const shared = apiHosts(env).filter((h) => apiHosts(other).includes(h));
        for (const host of shared) {
          out.push(error('environments', subject, `${name} calls the same API host as ${otherName} (${host})`, `point ${field('api_base_url')} at the provider's ${name} host`));
        }
      }
    }
    if (productionName.test(name)) {
      for (const [key, url] of urlsOf(env)) {
        const host = hostOf(url);
        if (host && testHost.test(host)) {
          out.push(error('environments', subject, `${key} ${url} looks like a sandbox/test host, in the ${name} environment`, `point ${field(key)} at the production host, or move it to a sandbox environment`));
        }
      }
    }
  }
  return out;
}
