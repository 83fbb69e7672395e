import { invalidRequest } from '../errors/index.ts';
import type { Provider } from '../providers/index.ts';

// The scopes a connect session asks for. A scope the provider's rules do not know would give the
// connection a grant no agent can use through the proxy (no rule opens a request for it), so it is
// refused before the owner is asked to consent, unless the provider takes free scopes.

type ScopeRules = Pick<Provider, 'id' | 'scopes' | 'default_scopes' | 'free_scopes'>;

/** Every scope name a session may ask for; undefined when any name may be asked for. */
export function knownScopes(provider: ScopeRules): Set<string> | undefined {
  const rules = Object.keys(provider.scopes ?? {});
  if (provider.free_scopes || rules.length === 0) return undefined;
  return new Set([...rules, ...(provider.default_scopes ?? [])]);
}

/**
 * `given` checked against the provider's scope rules (`field[i]` named on a refusal), with the
 * provider's `default_scopes` added; without `given`, the `default_scopes` alone, which must exist.
 */
export function sessionScopes(provider: ScopeRules, given: readonly string[] | undefined, field = 'scopes'): string[] {
  const defaults = provider.default_scopes ?? [];
  if (given === undefined) {
    if (!defaults.length) throw invalidRequest(field, `required: ${provider.id} has no default_scopes`);
    return [...new Set(defaults)];
  }
  const known = knownScopes(provider);
  if (known) {
    given.forEach((scope, i) => {
      if (!known.has(scope)) {
        const names = [...known].slice(0, 20).join(', ');
        throw invalidRequest(`${field}[${i}]`, `${provider.id} has no scope ${scope} (it has ${names}${known.size > 20 ? ', …' : ''})`);
      }
    });
  }
  return [...new Set([...defaults, ...given])];
}
