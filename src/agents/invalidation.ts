import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Store } from '../store/index.ts';

// What the proxy's hot path reads is served from memory (agent keys: auth.ts; connection
// metadata: proxy/forward.ts; access tokens: tokens/service.ts). A change made on one instance
// (an agent revoked, a connection revoked or needing re-auth …) must reach every instance's
// caches within a second, not when an entry ages out. This feed carries "drop these" for two
// topics, agent keys and connections:
//
// - Always through the store: one generation value per topic (a random token in `settings`)
//   replaced on every change. Each instance reads both every `pollIntervalMs` in one
//   primary-key query (whatever the number of agents and connections), on a pool of its own
//   where there is one, so a saturated work pool does not delay it; a changed generation drops
//   every cached entry of its topic. A random token rather than a counter: any write changes it,
//   no read-modify-write, both dialects.
// - With Redis (REDIS_URL) also at once, with the ids: a channel per topic. Pub/sub keeps nothing
//   for a subscriber that was away, so a subscriber that (re)connects drops everything.
// - Fail safe (`current()`): the caches are trusted only while the generations were read by a
//   poll that started less than `staleAfterMs` ago. Past it (store slow or away) every call reads
//   the store, so a change is never missed for longer than about a second.
//
// Publishing never fails the change it follows (that is committed): a failure is logged, and the
// other instances' caches age out (`cacheMaxAgeMs`) or stop being trusted.

export const keyInvalidationDefaults = {
  /** How often each instance reads the generations, in ms: the bound on a change reaching it without Redis. */
  pollIntervalMs: 250,
  /** Caches are not trusted once the last successful read of the generations started this long ago, in ms. */
  staleAfterMs: 800,
  /** Longest wait for Redis or the store when publishing, and for one read of the generations, in ms. */
  publishTimeoutMs: 1_000,
  settingName: 'agent_keys_generation',
  channel: 'warrant:agent-keys:invalidate',
  connectionsSettingName: 'connections_generation',
  connectionsChannel: 'warrant:connections:invalidate',
};

/** Most ids one message carries; more (or a malformed message) drops every entry. */
const MAX_IDS_PER_MESSAGE = 1_000;

export interface KeyInvalidationsDeps {
  store: Pick<Store, 'settings' | 'db'> & { sidePool?: Store['sidePool'] };
  redisUrl?: string;
  logger: Logger;
  now: () => number;
  options?: Partial<typeof keyInvalidationDefaults>;
}

/** `undefined`: every entry. */
export type InvalidationHandler = (ids: string[] | undefined) => void;

/** One topic of the feed, as its consumers see it. */
export interface ChangeTopic {
  /** Called with the ids another instance (or this one) invalidated; `undefined` = all. */
  subscribe(handler: InvalidationHandler): () => void;
  /** Tells every instance to drop these ids (this one included). Never throws. */
  publish(ids: string[]): Promise<void>;
  /** Whether cached entries may be served: the feed has been read recently enough. */
  current(): boolean;
}

async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function parseIds(message: string): string[] | undefined {
  let ids: unknown;
  try {
    ids = JSON.parse(message);
  } catch {
    return undefined;
  }
  const ok = Array.isArray(ids) && ids.length <= MAX_IDS_PER_MESSAGE && ids.every((k) => typeof k === 'string' && k.length <= 64);
  return ok ? (ids as string[]) : undefined;
}

export function createKeyInvalidations(deps: KeyInvalidationsDeps) {
  const options = { ...keyInvalidationDefaults, ...deps.options };
  const topics = [
    { setting: options.settingName, channel: options.channel, handlers: new Set<InvalidationHandler>(), seen: undefined as string | undefined },
    { setting: options.connectionsSettingName, channel: options.connectionsChannel, handlers: new Set<InvalidationHandler>(), seen: undefined as string | undefined },
  ];
  const emit = (t: (typeof topics)[number], ids: string[] | undefined) => {
    for (const h of t.handlers) h(ids);
  };
  /** performance.now() when the last successful read of the generations started. */
  let lastOkStartedAt = -Infinity;
  let running = false;
  let timer: NodeJS.Timeout | undefined;
  let polling: Promise<void> | undefined;
  let pool: pg.Pool | undefined;
  let publisher: Redis | undefined;
  let subscriber: Redis | undefined;

  async function readGenerations(): Promise<Map<string, string>> {
    const names = topics.map((t) => t.setting);
    const rows = pool
      ? (await pool.query<{ name: string; value: string }>('select name, value from settings where name = any($1)', [names])).rows
      : await deps.store.db.selectFrom('settings').select(['name', 'value']).where('name', 'in', names).execute();
    return new Map(rows.map((r) => [r.name, r.value]));
  }

  async function poll(): Promise<void> {
    const startedAt = performance.now();
    try {
      const values = await withDeadline(readGenerations(), options.publishTimeoutMs, 'the store');
      for (const t of topics) {
        const value = values.get(t.setting);
        if (value !== t.seen) {
          t.seen = value;
          emit(t, undefined);
        }
      }
      if (running) lastOkStartedAt = Math.max(lastOkStartedAt, startedAt);
    } catch (err) {
      deps.logger.warn({ err: (err as Error).message }, 'could not read the cache invalidation generations; caches are not trusted until it can');
    }
  }

  function subscribe(url: string): void {
    subscriber = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: true, lazyConnect: false });
    let connectedBefore = false;
    subscriber.on('error', () => {
      // ioredis reconnects by itself; the store path covers the gap.
    });
    subscriber.on('ready', () => {
      // Messages published while this subscriber was away are lost: forget everything instead.
      if (connectedBefore) for (const t of topics) emit(t, undefined);
      connectedBefore = true;
    });
    subscriber.on('message', (channel: string, message: string) => {
      const t = topics.find((x) => x.channel === channel);
      if (t) emit(t, parseIds(message));
    });
    subscriber.subscribe(...topics.map((t) => t.channel)).catch((err: Error) => deps.logger.warn({ err: err.message }, 'could not subscribe to cache invalidations; the store carries them'));
  }

  async function publish(t: (typeof topics)[number], ids: string[]): Promise<void> {
    if (!ids.length) return;
    emit(t, ids); // this instance at once, whatever happens to the announcement
    const writes: Promise<unknown>[] = [
      withDeadline(deps.store.settings.set(t.setting, randomBytes(12).toString('base64url'), deps.now()), options.publishTimeoutMs, 'the store'),
    ];
    if (publisher) {
      for (let i = 0; i < ids.length; i += MAX_IDS_PER_MESSAGE) {
        writes.push(withDeadline(publisher.publish(t.channel, JSON.stringify(ids.slice(i, i + MAX_IDS_PER_MESSAGE))), options.publishTimeoutMs, 'Redis'));
      }
    }
    for (const r of await Promise.allSettled(writes)) {
      if (r.status === 'rejected') deps.logger.warn({ err: (r.reason as Error).message }, 'could not announce a cache invalidation to other instances; their caches age out or stop being trusted');
    }
  }

  const current = () => running && performance.now() - lastOkStartedAt < options.staleAfterMs;
  const topic = (t: (typeof topics)[number]): ChangeTopic => ({
    subscribe(handler) {
      t.handlers.add(handler);
      return () => t.handlers.delete(handler);
    },
    publish: (ids) => publish(t, ids),
    current,
  });
  const keys = topic(topics[0]!);

  return {
    /** Agent keys (key ids): the original interface of this feed. */
    subscribe: keys.subscribe,
    publish: keys.publish,
    /** Connections (connection ids): metadata and token caches. */
    connections: topic(topics[1]!),
    /** Whether caches fed by this may be served (see `staleAfterMs`); false before start and after stop. */
    current,

    /** Starts reading the generations (and subscribing, with Redis). */
    async start(): Promise<void> {
      if (timer) return;
      running = true;
      if (deps.store.sidePool) pool = deps.store.sidePool(1);
      await poll();
      timer = setInterval(() => {
        polling ??= poll().finally(() => (polling = undefined));
      }, options.pollIntervalMs);
      timer.unref();
      if (deps.redisUrl) {
        publisher = new Redis(deps.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: true, lazyConnect: false });
        publisher.on('error', () => {});
        subscribe(deps.redisUrl);
      }
    },

    async stop(): Promise<void> {
      running = false;
      if (timer) clearInterval(timer);
      timer = undefined;
      await polling;
      const clients = [publisher, subscriber].filter((c): c is Redis => c !== undefined);
      publisher = subscriber = undefined;
      // Nothing worth waiting for is in flight: no quit handshake with a Redis that may be away.
      for (const c of clients) c.disconnect();
      const p = pool;
      pool = undefined;
      await p?.end().catch(() => undefined);
    },
  };
}

export type KeyInvalidations = ReturnType<typeof createKeyInvalidations>;
