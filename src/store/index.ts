import { migrate, openDatabase, type DatabaseOptions, type Db, type Dialect } from './db.ts';
export { isStoreUnavailable, StoreUnavailableError } from './db.ts';
import { sql } from 'kysely';
import { createSecretsRepo } from './secrets.ts';
import { createSettingsRepo } from './settings.ts';
import { createKeysRepo } from './keys.ts';
import { createConnectionsRepo } from './connections.ts';
import { createOwnersRepo } from './owners.ts';
import { createRotationsRepo } from './rotations.ts';
import { createTagsRepo } from './tags.ts';
import { createVault } from './vault.ts';
import { createKeyCanary } from './canary.ts';
import type { KeyRingSource } from '../crypto/index.ts';

export type { Db, Dialect, DatabaseOptions } from './db.ts';
export type * from './schema.ts';
export type { Vault, RotationReport } from './vault.ts';
export type { SecretKey } from './secrets.ts';
export type { ConnectionFilter, GrantLimits, GrantNearingEnd } from './connections.ts';
export type { OwnerRow, OwnersRepo, OwnerWithCounts, OwnerFilter } from './owners.ts';
export type { RotationsRepo, RotationCandidate } from './rotations.ts';
export { tagPredicates, type TagsRepo, type TaggedTable } from './tags.ts';
export { KeyCheckError, EX_CONFIG, type KeyCanary } from './canary.ts';
export { createAdminTokens, type AdminTokens } from './admin-token.ts';
export { createKeyHeartbeat, newInstanceId, type KeyHeartbeat } from './key-heartbeat.ts';
export type { KeyLease } from './keys.ts';

export interface StoreOptions extends DatabaseOptions {
  ring: KeyRingSource;
  now?: () => number;
}

/** Opens the database, migrates it, and wires the repositories. */
export async function createStore(opts: StoreOptions) {
  const { db, dialect, sqliteFile, sidePool, close } = await openDatabase(opts);
  await migrate(db, dialect);
  const now = opts.now ?? Date.now;
  const secrets = createSecretsRepo(db);
  const keys = createKeysRepo(db);
  const vault = createVault({ secrets, keys, ring: opts.ring, now });
  const settings = createSettingsRepo(db);
  // Before anything is written under this ring: a wrong key must stop start-up (exit 78), not serve.
  const canary = createKeyCanary({ db, settings, vault, ring: opts.ring, now });
  try {
    await canary.check();
  } catch (err) {
    await close();
    throw err;
  }
  await keys.markActive(opts.ring.current().activeId, now());
  return {
    db,
    dialect: dialect as Dialect,
    sqliteFile,
    /** PostgreSQL only: a separate pool on the same database (locks hold their connections apart from the work). */
    sidePool,
    secrets,
    keys,
    vault,
    /** Proves the key ring opens this store; `warrant keys rotate` re-seals it under the new key. */
    canary,
    settings,
    connections: createConnectionsRepo(db, dialect as Dialect),
    owners: createOwnersRepo(db, dialect as Dialect),
    /** Rotation schedules' bookkeeping (tokens/rotation-schedules.ts). */
    rotations: createRotationsRepo(db),
    /** Tags of connections and agents (end_user, organization, labels): filters and changes. */
    tags: createTagsRepo(db, dialect as Dialect),
    /** Runs `fn` in one transaction; repository calls given `trx` commit or roll back together. */
    transaction<T>(fn: (trx: Db) => Promise<T>): Promise<T> {
      return db.transaction().execute(fn);
    },
    async ping(): Promise<void> {
      await sql`select 1`.execute(db);
    },
    close,
  };
}

export type Store = Awaited<ReturnType<typeof createStore>>;
