import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createStore, type Store } from '../../src/store/index.ts';
import { parseKeyRing, type KeyRing } from '../../src/crypto/index.ts';

export const testDatabaseUrl = process.env.WARRANT_TEST_DATABASE_URL || undefined;
export const testRedisUrl = process.env.WARRANT_TEST_REDIS_URL || undefined;

/** Reason to skip a PostgreSQL test, shown by the runner, or false when it must run. */
export const skipWithoutPostgres: string | false = testDatabaseUrl
  ? false
  : 'WARRANT_TEST_DATABASE_URL is not set: PostgreSQL tests skipped (CI sets it)';
export const skipWithoutRedis: string | false = testRedisUrl
  ? false
  : 'WARRANT_TEST_REDIS_URL is not set: Redis tests skipped (CI sets it)';

export function testKeyRing(...ids: string[]): KeyRing {
  const names = ids.length ? ids : ['k1'];
  return parseKeyRing(names.map((id) => `${id}:${randomBytes(32).toString('base64')}`).join(','));
}

export interface StoreKind {
  name: 'sqlite' | 'postgres';
  skip: string | false;
}

export const storeKinds: StoreKind[] = [
  { name: 'sqlite', skip: false },
  { name: 'postgres', skip: skipWithoutPostgres },
];

export interface TestStore {
  store: Store;
  /** SQLite: the data dir; PostgreSQL: the schema name. */
  location: string;
  cleanup(): Promise<void>;
}

/** A fresh, migrated store of the given kind: a temp SQLite dir, or a throwaway PostgreSQL schema. */
export async function openTestStore(kind: StoreKind['name'], ring: KeyRing = testKeyRing(), now?: () => number): Promise<TestStore> {
  const source = { current: () => ring };
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'warrant-test-'));
    const store = await createStore({ dataDir: dir, ring: source, now });
    return {
      store,
      location: dir,
      cleanup: async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const store = await createStore({ databaseUrl: testDatabaseUrl!, pgSchema: schema, ring: source, now, poolSize: 4 });
  return {
    store,
    location: schema,
    cleanup: async () => {
      await store.close();
      await dropSchema(schema);
    },
  };
}

async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: testDatabaseUrl });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

export const createSchema = (schema: string) => adminQuery(`create schema if not exists "${schema}"`);
export const dropSchema = (schema: string) => adminQuery(`drop schema if exists "${schema}" cascade`);
