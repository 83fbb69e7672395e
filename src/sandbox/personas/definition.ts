import { loadBuiltinProviders } from '../../providers/loader.ts';
import type { Provider } from '../../providers/schema.ts';
import { endpointKeys } from '../../providers/placeholders.ts';
import { personaClient } from './engine.ts';
import type { Persona } from './types.ts';

// A persona's provider definition: `extends: <catalog id>` with every URL of the catalog entry
// pointed at the sandbox (`https://host/path` → `{origin}/host/path`) and the sandbox client.
// Built from the catalog as it is, so a changed entry is followed; no URL is left pointing at the
// real provider, where the sandbox's client secret would otherwise be sent.

export interface PersonaDefinition {
  id: string;
  extends: string;
  client_id: string;
  client_secret: string;
  environments: Record<string, Record<string, unknown>>;
  tenant_discovery?: Record<string, unknown>;
  notes: string;
}

let catalogCache: Map<string, Provider> | undefined;
function catalogEntry(id: string): Provider {
  catalogCache ??= new Map(loadBuiltinProviders().map((p) => [p.id, p]));
  const entry = catalogCache.get(id);
  if (!entry) throw new TypeError(`no catalog entry ${id}`);
  return entry;
}

/** `https://host/path` → `{origin}/host/path`; a template starting with a placeholder stays (its value comes from the sandbox). */
export function sandboxUrl(origin: string, real: string): string {
  if (real.startsWith('{')) return real;
  const m = /^https?:\/\/([^/?#]+)(.*)$/s.exec(real);
  if (!m || m[1]!.includes('{')) throw new TypeError(`cannot point ${real} at the sandbox`);
  return `${origin}/${m[1]!.toLowerCase()}${m[2]}`;
}

export function buildPersonaDefinition(persona: Persona, origin: string, opts: { id?: string; extends?: string } = {}): PersonaDefinition {
  const base = opts.extends ?? persona.catalog[0]!;
  if (!persona.catalog.includes(base)) throw new TypeError(`persona ${persona.id} stands for ${persona.catalog.join(', ')}, not ${base}`);
  const entry = catalogEntry(base);
  const environments: PersonaDefinition['environments'] = {};
  for (const [name, env] of Object.entries(entry.environments)) {
    const out: Record<string, unknown> = {};
    for (const key of [...endpointKeys, 'issuer'] as const) {
      const value = env[key];
      if (value) out[key] = key === 'api_base_url' && value.startsWith('{') && persona.api.definitionBase ? sandboxUrl(origin, persona.api.definitionBase) : sandboxUrl(origin, value);
    }
    if (env.api_hosts) {
      out.api_hosts = Object.fromEntries(Object.entries(env.api_hosts).map(([k, h]) => [k, { ...h, base_url: sandboxUrl(origin, h.base_url) }]));
    }
    if (env.client_id) out.client_id = personaClient.id;
    if (env.client_secret) out.client_secret = personaClient.secret;
    environments[name] = out;
  }
  return {
    id: opts.id ?? base,
    extends: base,
    client_id: personaClient.id,
    client_secret: personaClient.secret,
    environments,
    ...(entry.tenant_discovery ? { tenant_discovery: { url: sandboxUrl(origin, entry.tenant_discovery.url) } } : {}),
    notes: `The ${base} catalog entry pointed at a local Warrant sandbox playing ${persona.name} (persona ${persona.id}). The client secret is a fixed development value.`,
  };
}
