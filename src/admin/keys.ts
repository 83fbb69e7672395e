import { randomBytes, timingSafeEqual } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { hashSecret } from '../crypto/index.ts';
import { invalidRequest, notFound } from '../errors/index.ts';
import type { AuditLog, EventBus } from '../events/index.ts';
import type { AdminKeyRow, Store } from '../store/index.ts';
import type { AdminPrincipal, AdminRole } from './roles.ts';

// Scoped admin keys: `wak_<key id>_<secret>`.
//  - key id: 16 hex characters (64 random bits), the lookup half; the key's id is `adk_<key id>`,
//    which the audit names as the actor (`admin_key:adk_…`). It never contains `_`.
//  - secret: 32 random bytes, base64url (43 characters); only its SHA-256 is stored, compared in
//    constant time. 256 bits of randomness need no slow KDF (crypto/secrets.ts).
//
// Admin keys are few, so every instance holds all of them in memory: a snapshot of the rows not
// revoked, read again when older than `cacheMs` (on demand, one read in flight). Hence:
//  - a revocation made on another instance is seen here within `cacheMs` (500 ms) plus one read;
//    one made here, at once;
//  - an unknown key id costs no store read of its own (a random `wak_…` is no amplifier);
//  - expiry is checked against the clock on every call, never cached.

export const ADMIN_KEY_PREFIX = 'wak_';
const ID_PREFIX = 'adk_';
const KEY_PATTERN = /^wak_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const DUMMY_HASH = Buffer.from(hashSecret(randomBytes(32).toString('base64url')), 'base64url');

export interface AdminKeyView {
  id: string;
  name: string;
  role: AdminRole;
  status: 'active' | 'expired' | 'revoked';
  created_by: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

export interface AdminKeysDeps {
  store: Pick<Store, 'db' | 'transaction'>;
  audit: AuditLog;
  bus: EventBus;
  clock: { now(): number };
  logger: Logger;
  /** How long the snapshot of keys is trusted, in ms: the longest a revocation elsewhere is missed here (default 500). */
  cacheMs?: number;
  /** last_used_at is written at most once per this, per key and process, in ms (default 60 s). */
  touchIntervalMs?: number;
}

interface Entry {
  id: string;
  name: string;
  role: AdminRole;
  hash: Buffer;
  expiresAt: number | null;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

function viewOf(row: AdminKeyRow, now: number): AdminKeyView {
  const expiresAt = row.expires_at === null ? null : Number(row.expires_at);
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    status: row.revoked_at !== null ? 'revoked' : expiresAt !== null && expiresAt <= now ? 'expired' : 'active',
    created_by: row.created_by,
    created_at: iso(Number(row.created_at))!,
    expires_at: iso(expiresAt),
    revoked_at: iso(row.revoked_at === null ? null : Number(row.revoked_at)),
    last_used_at: iso(row.last_used_at === null ? null : Number(row.last_used_at)),
  };
}

export function createAdminKeys(deps: AdminKeysDeps) {
  const { store, audit, bus, clock, logger } = deps;
  const db = store.db;
  const cacheMs = deps.cacheMs ?? 500;
  const touchIntervalMs = deps.touchIntervalMs ?? 60_000;
  let snapshot = new Map<string, Entry>();
  let readAt = -Infinity;
  let reading: Promise<Map<string, Entry>> | undefined;
  /** Bumped by a local change: a read that started before it must not install its older snapshot. */
  let epoch = 0;
  const touched = new Map<string, number>();

  function read(): Promise<Map<string, Entry>> {
    if (reading) return reading;
    const started = epoch;
    const startedAt = performance.now();
    const p: Promise<Map<string, Entry>> = db
      .selectFrom('admin_keys')
      .select(['id', 'name', 'role', 'key_hash', 'expires_at'])
      .where('revoked_at', 'is', null)
      .execute()
      .then((rows) => {
        const next = new Map<string, Entry>();
        for (const r of rows) {
          next.set(r.id.slice(ID_PREFIX.length), {
            id: r.id,
            name: r.name,
            role: r.role,
            hash: Buffer.from(r.key_hash, 'base64url'),
            expiresAt: r.expires_at === null ? null : Number(r.expires_at),
          });
        }
        if (started === epoch) {
          snapshot = next;
          readAt = startedAt;
        }
        return next;
      })
      .finally(() => {
        if (reading === p) reading = undefined;
      });
    reading = p;
    return p;
  }

  /** After a change made here: the next call reads again, never through a read that began before it. */
  function changed(): void {
    epoch++;
    readAt = -Infinity;
    reading = undefined;
  }

  async function getRow(id: string): Promise<AdminKeyRow> {
    const row = await db.selectFrom('admin_keys').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound(`admin key ${id}`);
    return row;
  }

  async function touch(id: string, now: number): Promise<void> {
    const last = touched.get(id);
    if (last !== undefined && now - last < touchIntervalMs) return;
    touched.set(id, now);
    try {
      await db.updateTable('admin_keys').set({ last_used_at: now }).where('id', '=', id).execute();
    } catch (err) {
      logger.warn({ err, admin_key: id }, 'could not record when an admin key was last used');
    }
  }

  return {
    /** Is `token` shaped like an admin key (`wak_…`)? */
    looksLikeKey: (token: string) => KEY_PATTERN.test(token),

    /**
     * The principal of a valid, unexpired, unrevoked admin key; undefined otherwise (one answer
     * for unknown, wrong, expired and revoked: the caller says 401 alike).
     */
    async authenticate(token: string): Promise<AdminPrincipal | undefined> {
      const m = KEY_PATTERN.exec(token);
      if (!m) return undefined;
      const keys = performance.now() - readAt < cacheMs ? snapshot : await read();
      const entry = keys.get(m[1]!);
      const presented = Buffer.from(hashSecret(m[2]!), 'base64url');
      const stored = entry && entry.hash.length === presented.length ? entry.hash : DUMMY_HASH;
      const same = timingSafeEqual(presented, stored) && stored !== DUMMY_HASH;
      if (!entry || !same) return undefined;
      const now = clock.now();
      if (entry.expiresAt !== null && entry.expiresAt <= now) return undefined;
      await touch(entry.id, now);
      return { kind: 'key', id: entry.id, name: entry.name, role: entry.role };
    },

    /** Mints a key; the returned `api_key` exists only here (the store keeps its hash). */
    async create(input: { name: string; role: AdminRole; expires_at?: string | null }, actor: string): Promise<AdminKeyView & { api_key: string }> {
      const name = input.name.trim();
      if (!name || name.length > 100) throw invalidRequest('name', 'must be 1 to 100 characters');
      const now = clock.now();
      let expiresAt: number | null = null;
      if (input.expires_at) {
        expiresAt = Date.parse(input.expires_at);
        if (!Number.isFinite(expiresAt)) throw invalidRequest('expires_at', 'must be an ISO 8601 date-time');
        if (expiresAt <= now) throw invalidRequest('expires_at', 'must be in the future');
      }
      const keyId = randomBytes(8).toString('hex');
      const secret = randomBytes(32).toString('base64url');
      const row: AdminKeyRow = {
        id: `${ID_PREFIX}${keyId}`,
        name,
        role: input.role,
        key_hash: hashSecret(secret),
        created_by: actor,
        created_at: now,
        expires_at: expiresAt,
        revoked_at: null,
        last_used_at: null,
      };
      const entries = await store.transaction(async (trx) => {
        await trx.insertInto('admin_keys').values(row).execute();
        return audit.append(
          // Never the key nor its hash.
          { type: 'admin_key.created', actor, subject: `admin_key:${row.id}`, data: { name, role: row.role, expires_at: iso(expiresAt) } },
          trx,
        );
      });
      changed(); // usable here at once
      bus.publish(entries);
      return { ...viewOf(row, now), api_key: `${ADMIN_KEY_PREFIX}${keyId}_${secret}` };
    },

    async list(): Promise<AdminKeyView[]> {
      const rows = await db.selectFrom('admin_keys').selectAll().orderBy('created_at').orderBy('id').execute();
      const now = clock.now();
      return rows.map((r) => viewOf(r, now));
    },

    async get(id: string): Promise<AdminKeyView> {
      return viewOf(await getRow(id), clock.now());
    },

    /**
     * Revokes the key: refused here at once, on other instances within `cacheMs`. Idempotent:
     * a revoked key answers its view again, with the first revocation's time, and no new audit entry.
     */
    async revoke(id: string, actor: string): Promise<AdminKeyView> {
      const now = clock.now();
      const { row, entries } = await store.transaction(async (trx) => {
        const found = await trx.selectFrom('admin_keys').selectAll().where('id', '=', id).executeTakeFirst();
        if (!found) throw notFound(`admin key ${id}`);
        if (found.revoked_at !== null) return { row: found, entries: [] };
        const changed = await trx.updateTable('admin_keys').set({ revoked_at: now }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
        if (Number(changed.numUpdatedRows) === 0) {
          return { row: (await trx.selectFrom('admin_keys').selectAll().where('id', '=', id).executeTakeFirstOrThrow()), entries: [] };
        }
        const entries = await audit.append(
          { type: 'admin_key.revoked', actor, subject: `admin_key:${id}`, data: { name: found.name, role: found.role } },
          trx,
        );
        return { row: { ...found, revoked_at: now }, entries };
      });
      snapshot.delete(id.slice(ID_PREFIX.length));
      changed(); // refused here at once
      bus.publish(entries);
      return viewOf(row, now);
    },
  };
}

export type AdminKeys = ReturnType<typeof createAdminKeys>;
