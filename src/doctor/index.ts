import type { Provider } from '../providers/index.ts';
import type { ConnectionRow } from '../store/index.ts';
import { connectionFindings } from './connections.ts';
import { checkProvider } from './providers.ts';
import { error, type Finding } from './types.ts';

export type { Finding, Verdict } from './types.ts';
export { formatTable, formatJson } from './report.ts';

/** What doctor needs of the store: the connections, read only. */
export interface ConnectionSource {
  get(id: string): Promise<ConnectionRow | undefined>;
  list(filter: { provider?: string; limit?: number }): Promise<ConnectionRow[]>;
}

export interface DoctorOptions {
  catalog: ReadonlyMap<string, Provider>;
  /** Where `${env:…}` client credentials resolve. */
  env: NodeJS.ProcessEnv;
  /** Absent: no store yet, so no connections to check. */
  connections?: ConnectionSource;
  provider?: string;
  connection?: string;
  now?: () => number;
}

/**
 * Every check: the providers with client credentials (all at once, each bounded), then the
 * stored connections. `--connection` narrows to that connection and its provider.
 */
export async function runDoctor(opts: DoctorOptions): Promise<Finding[]> {
  const now = opts.now ?? Date.now;
  const rows = await connectionsToCheck(opts);
  if (!rows.ok) return [rows.finding];
  const providerId = opts.provider ?? (opts.connection ? rows.rows[0]?.provider : undefined);
  let providers: Provider[] = [...opts.catalog.values()];
  if (providerId) {
    const p = opts.catalog.get(providerId);
    if (!p && opts.provider) return [error('catalog', opts.provider, `no provider ${opts.provider} in the catalog`, 'see `warrant providers list`')];
    providers = p ? [p] : [];
  }
  const perProvider = await Promise.all(providers.map((p) => checkProvider(p, opts.env, !!providerId)));
  const perConnection = rows.rows.flatMap((row) => connectionFindings(row, opts.catalog.get(row.provider), now()));
  return [...perProvider.flat(), ...perConnection];
}

async function connectionsToCheck(opts: DoctorOptions): Promise<{ ok: true; rows: ConnectionRow[] } | { ok: false; finding: Finding }> {
  if (opts.connection) {
    const row = await opts.connections?.get(opts.connection);
    if (!row || (opts.provider && row.provider !== opts.provider)) {
      return { ok: false, finding: error('catalog', opts.connection, `no connection ${opts.connection}${opts.provider ? ` of ${opts.provider}` : ''} in the store`, 'check the id: GET /v1/connections lists them') };
    }
    return { ok: true, rows: [row] };
  }
  if (!opts.connections) return { ok: true, rows: [] };
  const rows = await opts.connections.list({ provider: opts.provider, limit: 1_000_000 });
  // A revoked connection holds nothing to check.
  return { ok: true, rows: rows.filter((r) => r.status !== 'revoked') };
}
