import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { CompiledQuery, Kysely, Migrator, PostgresDialect, SqliteDialect, SqliteDriver, sql, type DatabaseConnection, type Driver, type KyselyConfig, type Migration } from 'kysely';
import type { Database } from './schema.ts';
import { ensurePrivateDir, ensurePrivateFile } from '../util/file-modes.ts';
import * as m001 from './migrations/001_initial.ts';
import * as m002 from './migrations/002_lifecycle.ts';
import * as m003 from './migrations/003_refresh_claim.ts';
import * as m004 from './migrations/004_connect_binding.ts';
import * as m005 from './migrations/005_key_usage.ts';
import * as m006 from './migrations/006_connection_shares.ts';
import * as m007 from './migrations/007_grant_expiry.ts';
import * as m008 from './migrations/008_authz.ts';
import * as m009 from './migrations/009_mcp_servers.ts';
import * as m010 from './migrations/010_orphans.ts';
import * as m011 from './migrations/011_admin_keys.ts';
import * as m012 from './migrations/012_scim.ts';
import * as m013 from './migrations/013_offboarding.ts';
import * as m014 from './migrations/014_rotations.ts';
import * as m015 from './migrations/015_audit_seal.ts';
import * as m016 from './migrations/016_authz_consent.ts';
import * as m017 from './migrations/017_tags.ts';
import * as m018 from './migrations/018_status_index.ts';

export type Dialect = 'sqlite' | 'postgres';

/**
 * SQLite transactions that take the write lock up front (BEGIN IMMEDIATE). The embedded audit
 * writer thread writes through a second connection; a deferred transaction that read before it
 * wrote could otherwise fail with SQLITE_BUSY_SNAPSHOT instead of waiting its turn.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  constructor(private readonly settings: ConstructorParameters<typeof SqliteDialect>[0]) {
    super(settings);
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.settings);
  }
}
export type Db = Kysely<Database>;

/** The store cannot be reached, or no pooled connection came free in time. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

const unreachableCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03', '53300']);

/** Is this error the store being unreachable or saturated (as opposed to a bad query)? */
export function isStoreUnavailable(err: unknown): boolean {
  if (err instanceof StoreUnavailableError) return true;
  const e = err as { code?: string; message?: string } | undefined;
  if (!e || typeof e !== 'object') return false;
  if (e.code && unreachableCodes.has(e.code)) return true;
  // node-postgres words pool acquire timeouts and dropped sessions this way, with no code.
  return typeof e.message === 'string' && /timeout exceeded when trying to connect|Connection terminated|connection terminated unexpectedly|Client has encountered a connection error/i.test(e.message);
}

export interface DatabaseOptions {
  /** `postgres://…`; unset = embedded SQLite in `dataDir`. */
  databaseUrl?: string;
  dataDir?: string;
  /** PostgreSQL schema to live in (tests use one each); created when missing. */
  pgSchema?: string;
  /** SQLite file name inside dataDir, or `:memory:`. */
  sqliteFile?: string;
  poolSize?: number;
  /** Longest wait for a pooled PostgreSQL connection. */
  acquireTimeoutMs?: number;
  /** Called with each statement run through the store's Kysely instance (bench/proxy.ts --count-queries). */
  onQuery?: (sql: string) => void;
}

export interface OpenDatabase {
  db: Db;
  dialect: Dialect;
  /** The embedded mode's database file (absent for `:memory:`), for a second connection from a worker thread. */
  sqliteFile?: string;
  /** PostgreSQL only: a pool of its own on the same database, sized apart (the lock pool). */
  sidePool?: (max: number) => pg.Pool;
  close(): Promise<void>;
}

const INT8_OID = 20;

/**
 * A PostgreSQL pool on the store's database and schema. Acquiring a connection waits at most
 * `acquireTimeoutMs`; past it the caller gets a StoreUnavailableError (503 `unavailable`) instead
 * of queueing forever behind a pool that cannot drain.
 */
function pgPool(opts: DatabaseOptions, max: number): pg.Pool {
  const schema = opts.pgSchema;
  const pool = new pg.Pool({
    connectionString: opts.databaseUrl,
    max,
    connectionTimeoutMillis: opts.acquireTimeoutMs ?? 5_000,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
    // Times are epoch milliseconds in bigint columns: well inside Number's safe range.
    types: { getTypeParser: ((oid: number, format?: any) => (oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format))) as any },
  });
  pool.on('error', () => {
    // An idle client's connection dropped; the pool replaces it. Queries report their own errors.
  });
  // pg-pool listens for a client's 'error' only while the client is idle. A session terminated
  // while checked out (a lock held across a refresh, a transaction between statements) would
  // otherwise emit an unhandled 'error' and take the process down; the query in flight reports
  // the failure itself, and the pool drops the broken client when it is released.
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  return pool;
}

/** Kysely's `log` option when a statement hook is given; none otherwise (no cost). */
function queryLog(opts: DatabaseOptions): { log?: KyselyConfig['log'] } {
  const onQuery = opts.onQuery;
  return onQuery ? { log: (event) => onQuery(event.query.sql) } : {};
}

export async function openDatabase(opts: DatabaseOptions): Promise<OpenDatabase> {
  if (opts.databaseUrl) {
    const schema = opts.pgSchema;
    if (schema && !/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error('pgSchema must be a plain identifier');
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: pgPool(opts, opts.poolSize ?? 10) }), ...queryLog(opts) });
    if (schema) await sql`create schema if not exists ${sql.id(schema)}`.execute(db);
    return { db, dialect: 'postgres', sidePool: (max) => pgPool(opts, max), close: () => db.destroy() };
  }
  const dataDir = opts.dataDir ?? './.warrant';
  const file = opts.sqliteFile === ':memory:' ? ':memory:' : join(dataDir, opts.sqliteFile ?? 'warrant.db');
  if (file !== ':memory:') {
    // 0700 and 0600 (an existing data dir that is wider stops start-up: FileModeError, exit 78).
    ensurePrivateDir(dataDir);
    ensurePrivateFile(file, [`${file}-wal`, `${file}-shm`]);
  }
  const sqlite = new SQLite(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('synchronous = NORMAL');
  const db = new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database: sqlite }), ...queryLog(opts) });
  return { db, dialect: 'sqlite', sqliteFile: file === ':memory:' ? undefined : file, close: () => db.destroy() };
}

/** Runs every pending migration; one set serves both dialects. */
export async function migrate(db: Db, dialect: Dialect): Promise<void> {
  const bind = (mod: { up(db: Kysely<any>, d: Dialect): Promise<void> }): Migration => ({ up: (d) => mod.up(d, dialect) });
  const migrations: Record<string, Migration> = { '001_initial': bind(m001), '002_lifecycle': bind(m002), '003_refresh_claim': bind(m003), '004_connect_binding': bind(m004), '005_key_usage': bind(m005), '006_connection_shares': bind(m006), '007_grant_expiry': bind(m007), '008_authz': bind(m008), '009_mcp_servers': bind(m009), '010_orphans': bind(m010), '011_admin_keys': bind(m011), '012_scim': bind(m012), '013_offboarding': bind(m013), '014_rotations': bind(m014), '015_audit_seal': bind(m015), '016_authz_consent': bind(m016), '017_tags': bind(m017), '018_status_index': bind(m018) };
  // On PostgreSQL the migrator must look in our own schema only: otherwise another Warrant schema
  // in the same database (tests, several tenants on one server) is taken for ours.
  const schema =
    dialect === 'postgres' ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(db)).rows[0]?.schema : undefined;
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: 'warrant_migrations',
    migrationLockTableName: 'warrant_migrations_lock',
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`migration ${failed?.migrationName ?? '?'} failed: ${(error as Error).message}`, { cause: error });
  }
}
