import { WarrantError, notFound } from '../errors/index.ts';
import type { Provider } from '../providers/index.ts';
import type { ConnectionRow, Store } from '../store/index.ts';
import { apiHeadersOrProblem, fillTemplate, type ConnectionChanges } from '../tokens/index.ts';
import { createApiBases, type ApiBases } from './hosts.ts';
import { singleFlight } from '../util/single-flight.ts';

/** What the proxy needs of a connection on every call, worked out once per load. */
export interface ConnectionMeta {
  row: ConnectionRow;
  provider: Provider;
  bases: ApiBases;
  /** The provider's `api_headers` filled for this connection, or why they cannot be (thrown once a call is allowed). */
  apiHeaders: Record<string, string> | WarrantError;
  at: number;
}

/** What the cache needs of the connection changes feed: to hear of them, and whether it is current. */
export type MetaChanges = Pick<ConnectionChanges, 'subscribe' | 'current'>;

/**
 * Connection metadata in memory, read once per connection however many calls arrive cold
 * (single flight), bounded (the oldest entry goes first). With `changes` an entry lives until its
 * id is announced, re-read after `ttlMs` at most (default 60 s), and is not served while the
 * feed is not current (store slow or away: every call reads the row, fail safe). Without it,
 * `ttlMs` (default 2 s) is the bound on a change reaching the proxy.
 */
export function createMetaCache(deps: {
  store: Pick<Store, 'connections'>;
  catalog: Map<string, Provider>;
  changes?: MetaChanges;
  ttlMs?: number;
  maxEntries?: number;
}) {
  const { changes } = deps;
  const ttlMs = deps.ttlMs ?? (changes ? 60_000 : 2_000);
  const maxEntries = deps.maxEntries ?? 50_000;
  const cache = new Map<string, ConnectionMeta>();
  /** Bumped by every invalidation: a load that started before it must not fill the cache. */
  let epoch = 0;
  /** A burst of cold calls for one connection makes one read. */
  const loading = singleFlight(load);

  /** Forgets these connections (`undefined`: all), including loads already under way. */
  function drop(ids: string[] | undefined): void {
    epoch++;
    if (!ids) {
      cache.clear();
      loading.forget();
      return;
    }
    for (const id of ids) {
      cache.delete(id);
      loading.forget(id);
    }
  }
  changes?.subscribe(drop);

  async function load(id: string): Promise<ConnectionMeta> {
    const startedIn = epoch;
    const row = await deps.store.connections.get(id);
    if (!row) throw notFound(`connection ${id}`);
    const provider = deps.catalog.get(row.provider);
    if (!provider) throw new WarrantError('conflict', `provider ${row.provider} is not in the catalog`);
    const env = provider.environments[row.environment];
    if (!env) throw new WarrantError('conflict', `provider ${row.provider} has no environment ${row.environment}`);
    const params = JSON.parse(row.params) as Record<string, string>;
    const fill = (template: string) => fillTemplate(template, params, provider);
    const m = { row, provider, bases: createApiBases(fill(env.api_base_url), env.api_hosts, fill), apiHeaders: apiHeadersOrProblem(provider, params), at: Date.now() };
    if (startedIn === epoch) {
      cache.delete(id);
      cache.set(id, m);
      if (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
    }
    return m;
  }

  return {
    /** The connection's metadata: from memory when it may be served, else one read shared by concurrent callers. */
    get(id: string): Promise<ConnectionMeta> | ConnectionMeta {
      const hit = cache.get(id);
      if (hit && Date.now() - hit.at < ttlMs && (!changes || changes.current())) return hit;
      return loading.run(id);
    },
  };
}
