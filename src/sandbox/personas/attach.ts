import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FaultState } from '../faults.ts';
import type { SandboxStats } from '../stats.ts';
import { createPersonaControl } from './control.ts';
import { buildPersonaDefinition, type PersonaDefinition } from './definition.ts';
import { createPersonaEngine, personaClient, type PersonaEngine, type PersonaStats } from './engine.ts';
import { personaById } from './index.ts';
import type { Persona } from './types.ts';

// How the sandbox server (server.ts) takes a persona on: an engine on the same port, its control
// routes, and the handle the Sandbox object exposes as `sandbox.persona`.

export interface PersonaOption {
  /** Play this provider (`slack`, `github`, …) at `/{real host}/…` beside the default IdP. */
  persona?: string;
}

export interface SandboxPersona {
  id: string;
  name: string;
  /** Catalog entries it can stand for; the first is the default for `providerDefinition`. */
  catalog: readonly string[];
  client: { id: string; secret: string };
  /** `{ id, extends, client_id, client_secret, environments }`: the catalog entry pointed at this sandbox. */
  providerDefinition(opts?: { id?: string; extends?: string }): PersonaDefinition;
  /** A real provider URL as this sandbox serves it. */
  url(real: string): string;
  /** GETs an authorization URL (auto-approve) and returns where it redirects: the callback with code and state, or an error. */
  follow(authorizationUrl: string): Promise<string>;
  /** The next `count` API calls with an otherwise valid token answer the persona's "expired" shape. */
  expireNextApiCalls(count: number): void;
  /** Takes scopes away from the grant behind a token (upstream narrowing); throws when the token is unknown. */
  withdrawScopes(token: string, scopes: readonly string[]): void;
  stats(): PersonaStats;
  notModelled: readonly string[];
}

export function resolvePersona(id: string | undefined): Persona | undefined {
  return id === undefined ? undefined : personaById(id);
}

export function attachPersona(
  persona: Persona | undefined,
  deps: { origin: string; faults: FaultState; stats: SandboxStats; log: (line: string) => void; signal: AbortSignal },
):
  | { engine: PersonaEngine; handle: SandboxPersona; control: (req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams) => Promise<boolean> }
  | undefined {
  if (!persona) return undefined;
  const engine = createPersonaEngine({ persona, ...deps });
  const definition = (opts: { id?: string; extends?: string } = {}) => buildPersonaDefinition(persona, deps.origin, opts);
  const handle: SandboxPersona = {
    id: persona.id,
    name: persona.name,
    catalog: persona.catalog,
    client: { ...personaClient },
    providerDefinition: definition,
    url: engine.url,
    async follow(authorizationUrl) {
      const res = await fetch(authorizationUrl, { redirect: 'manual', signal: AbortSignal.timeout(10_000) });
      await res.body?.cancel();
      const location = res.headers.get('location');
      if (res.status !== 302 || !location) throw new Error(`the persona's authorization endpoint answered ${res.status} without a redirect`);
      return location;
    },
    expireNextApiCalls: engine.expireNextApiCalls,
    withdrawScopes(token, scopes) {
      if (!engine.withdrawScopes(token, scopes)) throw new Error('withdrawScopes: the persona knows no such token');
    },
    stats: engine.stats,
    notModelled: persona.notModelled,
  };
  deps.log(`persona ${persona.id}: serving ${persona.hosts.join(', ')} under ${deps.origin}/{host}`);
  return { engine, handle, control: createPersonaControl(engine, definition) };
}
