import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { hashSecret } from '../crypto/index.ts';
import { WarrantError } from '../errors/index.ts';
import type { AgentsRepo } from './repo.ts';
import { DUMMY_KEY_HASH, parseApiKey } from './keys.ts';
import { authenticatedAgentOf, scopeList, type AuthenticatedAgent } from './view.ts';
import { singleFlight } from '../util/single-flight.ts';

// Agent authentication runs on every proxied request, so its hot path is in memory: a cache
// keyed by key id holds the stored hash, the agent and its grants. A hit
// costs one SHA-256 of the presented secret and a constant-time comparison of the two 32-byte
// digests (the stored one decoded once, when the entry is loaded); no query.
//
// Consistency: a revocation made by this process (`invalidate`) takes effect at once. One made
// (or a grant changed) by another instance reaches this one through the invalidation feed
// (invalidation.ts), within a second: entries then live until invalidated, re-read after
// `cacheMaxAgeMs` at most, and are not served at all while the feed is not current (`current`).
// Without a feed an entry is re-read after `cacheTtlMs`, the bound on another instance's change.
// Expiry is checked against the clock on every call, never cached.
//
// Unknown key ids cost no query each (security review, low 16: otherwise every request with a
// random `wrt_<key id>_…` is a store read, an unauthenticated amplifier). The process keeps the
// set of key ids that exist — every agent's, loaded once, then the ones created since, with an
// overlap for clock skew between instances. An id outside the set is unknown without a query;
// a miss makes the set look again at most once per `knownIdsSyncIntervalMs` (one query in flight
// at a time), however many ids are presented. A per-id negative cache would not do: random ids
// never repeat. So the store reads of unknown ids are bounded by time, not by requests; the set
// holds ids of agents in the store only (attackers cannot grow it).
// Consistency: a key created by this process is known at once (`remember`); one created by
// another instance is known here within `knownIdsSyncIntervalMs` of its first use.

export interface AgentAuthOptions {
  /** Without an invalidation feed: how long a verified key's row and grants are reused before they are read again, in ms. */
  cacheTtlMs: number;
  /** With a feed: the longest an entry is served before it is read again, invalidated or not, in ms. */
  cacheMaxAgeMs?: number;
  /** last_used_at is written at most once per this interval per agent, in ms. */
  touchIntervalMs: number;
  /** Most keys held in the cache; the oldest entry goes first. */
  cacheMaxEntries: number;
  /**
   * Unknown key ids make the set of existing ids look for new ones at most once per this, in ms:
   * also the longest a key created on another instance can be refused here.
   */
  knownIdsSyncIntervalMs: number;
}

/** An incremental look re-reads agents created this long before the previous look (clock skew, slow commits). */
const KNOWN_IDS_OVERLAP_MS = 5 * 60_000;
/** Backstop for a clock skewed past the overlap: the whole set is read again this often (when ids are missed). */
const KNOWN_IDS_FULL_SYNC_MS = 10 * 60_000;

interface Entry {
  /** The stored hash's bytes; undefined when it is not a canonical base64url hash (it then matches nothing). */
  keyHash: Buffer | undefined;
  status: 'active' | 'suspended' | 'revoked';
  /** While suspended: why (orphan reasons, or `admin`). */
  suspendedReasons: string[];
  expiresAt: number | null;
  agent: AuthenticatedAgent;
  loadedAt: number;
}

/**
 * A hash as `hashSecret` writes it (base64url), decoded. Equal bytes mean equal strings only for
 * the canonical encoding, so anything else (a corrupted row) is refused: it matches no secret.
 */
function hashBytes(hash: string): Buffer | undefined {
  const bytes = Buffer.from(hash, 'base64url');
  return bytes.length > 0 && bytes.toString('base64url') === hash ? bytes : undefined;
}
const DUMMY_KEY_BYTES = hashBytes(DUMMY_KEY_HASH)!;

/** Whether the presented secret's hash equals the stored one, in constant time (both are SHA-256 digests). */
function sameHash(presented: Buffer, stored: Buffer | undefined): boolean {
  return stored !== undefined && stored.length === presented.length && timingSafeEqual(presented, stored);
}

const unauthenticated = (detail: string) => new WarrantError('agent_unauthenticated', detail);
/** Told only to a caller holding the agent's right key: what happened and who can undo it. */
const suspended = (agentId: string, reasons: string[]) =>
  new WarrantError(
    'agent_suspended',
    `the agent is suspended (${reasons.join(', ') || 'admin'}); an admin can reactivate it with PATCH /v1/agents/${agentId} {"status":"active"} once its owner confirms it is still needed`,
    { agent: agentId, reasons },
  );
// One message for a wrong secret and an unknown key id: the answer must not tell them apart.
const INVALID = 'the API key is not valid';

export function createAgentAuthenticator(deps: {
  repo: AgentsRepo;
  clock: { now(): number };
  logger: Logger;
  options: AgentAuthOptions;
  /** The invalidation feed's freshness (invalidation.ts): absent, entries expire after `cacheTtlMs`. */
  current?: () => boolean;
}) {
  const { repo, clock, logger, options } = deps;
  const cache = new Map<string, Entry>();
  /** agent id → when this process last wrote (or saw) its last_used_at. */
  const touched = new Map<string, number>();
  const pendingWrites = new Set<Promise<void>>();
  /** Bumped by every invalidation: a load that started before it must not fill the cache. */
  let epoch = 0;
  const current = deps.current;
  /** How old a cached entry may be served: 0 (read the store) while the feed is not current. */
  const maxAge = current ? () => (current() ? (options.cacheMaxAgeMs ?? 60_000) : 0) : () => options.cacheTtlMs;

  /** Key ids that exist in the store (as of the last look, plus those created here). */
  const known = new Set<string>();
  const looks = { full: false, lastStartedAt: -Infinity, lastOkAt: -Infinity, lastFullAt: -Infinity };
  let looking: Promise<void> | undefined;

  async function lookForNewIds(): Promise<void> {
    const startedAt = clock.now();
    looks.lastStartedAt = startedAt;
    const full = !looks.full || startedAt - looks.lastFullAt >= KNOWN_IDS_FULL_SYNC_MS;
    for (const id of await repo.keyIdsSince(full ? null : looks.lastOkAt - KNOWN_IDS_OVERLAP_MS)) known.add(id);
    looks.lastOkAt = startedAt;
    if (full) Object.assign(looks, { full: true, lastFullAt: startedAt });
  }

  /** Whether `keyId` may exist: true for a known id; for another, one look at most per interval. */
  async function mayExist(keyId: string): Promise<boolean> {
    if (known.has(keyId)) return true;
    const due = !looks.full || clock.now() - looks.lastStartedAt >= options.knownIdsSyncIntervalMs;
    if (!due && !looking) return false;
    looking ??= lookForNewIds().finally(() => {
      looking = undefined;
    });
    await looking; // a failed look fails the request as a failed query would (503)
    return known.has(keyId);
  }

  async function load(keyId: string): Promise<Entry | undefined> {
    const startedIn = epoch;
    const row = await repo.getByKeyId(keyId);
    if (!row) return undefined;
    known.add(keyId);
    const grants = (await repo.grantsOf([row.id])).get(row.id) ?? [];
    const entry: Entry = {
      keyHash: hashBytes(row.key_hash),
      status: row.status,
      suspendedReasons: row.status === 'suspended' ? scopeList(row.suspended_reasons ?? '[]') : [],
      expiresAt: row.expires_at,
      agent: authenticatedAgentOf(row, grants),
      loadedAt: clock.now(),
    };
    if (row.last_used_at !== null && (touched.get(row.id) ?? -Infinity) < row.last_used_at) touched.set(row.id, row.last_used_at);
    if (startedIn === epoch) {
      cache.delete(keyId);
      cache.set(keyId, entry);
      if (cache.size > options.cacheMaxEntries) cache.delete(cache.keys().next().value!);
    }
    return entry;
  }

  /** A burst of cold requests for one key makes one query. */
  const loading = singleFlight(load);


  /** Fire-and-forget: the request never waits for this write, and its failure is only logged. */
  function touch(agentId: string, now: number): void {
    if (now - (touched.get(agentId) ?? -Infinity) < options.touchIntervalMs) return;
    touched.set(agentId, now);
    const write: Promise<void> = repo
      .touch(agentId, now, options.touchIntervalMs)
      .catch((err: unknown) => logger.warn({ agent: agentId, err: (err as Error).message }, 'could not record the agent last use'))
      .finally(() => pendingWrites.delete(write));
    pendingWrites.add(write);
  }

  return {
    /**
     * Verifies an agent's API key (`wrt_…`, the bearer token) and returns the agent with its
     * grants. Missing, malformed, unknown, wrong, revoked or expired → `agent_unauthenticated`;
     * suspended → `agent_suspended` (403).
     * Whether an agent is revoked or expired is only told to a caller holding its right key.
     */
    async authenticate(bearer: string | undefined): Promise<AuthenticatedAgent> {
      if (!bearer) throw unauthenticated("send the agent's API key as Authorization: Bearer wrt_…");
      const key = parseApiKey(bearer);
      if (!key) throw unauthenticated('the API key is malformed');
      let entry = cache.get(key.keyId);
      if (!entry || clock.now() - entry.loadedAt >= maxAge()) entry = (await mayExist(key.keyId)) ? await loading.run(key.keyId) : undefined;
      const presented = Buffer.from(hashSecret(key.secret), 'base64url');
      if (!entry) {
        sameHash(presented, DUMMY_KEY_BYTES);
        throw unauthenticated(INVALID);
      }
      if (!sameHash(presented, entry.keyHash)) throw unauthenticated(INVALID);
      const now = clock.now();
      if (entry.status === 'revoked') throw unauthenticated('the agent is revoked');
      if (entry.status === 'suspended') throw suspended(entry.agent.id, entry.suspendedReasons);
      if (entry.expiresAt !== null && entry.expiresAt <= now) {
        throw unauthenticated(`the agent expired at ${new Date(entry.expiresAt).toISOString()}`);
      }
      touch(entry.agent.id, now);
      return entry.agent;
    },

    /** A key id just created by this process: usable at once, whatever the set of known ids says. */
    remember(keyId: string): void {
      known.add(keyId);
    },

    /** Drops a key (or every key) from the cache: its next use reads the store again. */
    invalidate(keyId?: string): void {
      epoch++;
      if (keyId === undefined) cache.clear();
      else cache.delete(keyId);
      loading.forget(keyId);
    },

    /** Waits for the last_used_at writes in flight (before closing the store; tests). */
    async settle(): Promise<void> {
      while (pendingWrites.size) await Promise.allSettled([...pendingWrites]);
    },
  };
}

export type AgentAuthenticator = ReturnType<typeof createAgentAuthenticator>;
