import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Store } from '../store/index.ts';

// Agent keys are verified from an in-process cache (auth.ts, `cacheTtlMs`). A revocation made on
// one instance must stop the key on every instance at once, not when the entry ages out. This
// carries "drop these keys" from the instance that revoked to all the others:
//
// - Always through the store: a generation value (a random token in `settings`) replaced on every
//   invalidation. Each instance reads it every `pollIntervalMs` (one primary-key read, whatever
//   the number of agents) and, when it changed, drops every cached key: the next request of each
//   agent reads its row again. A revocation bites everywhere within pollIntervalMs + one read.
//   A random token rather than a counter: any write changes it, no read-modify-write, both dialects.
// - With Redis (REDIS_URL) also at once: the key ids are published on a channel every instance
//   subscribes to, and dropped on receipt. Pub/sub keeps nothing for a subscriber that was away,
//   so a subscriber that (re)connects drops every cached key; the store path stays the backstop.
//
// Publishing never fails the revocation it follows (that is committed): a failure is logged and
// the cache TTL remains the bound.

export const keyInvalidationDefaults = {
  /** How often each instance reads the generation, in ms: the bound on a revocation reaching it without Redis. */
  pollIntervalMs: 500,
  /** Longest wait for Redis or the store when publishing, in ms. */
  publishTimeoutMs: 1_000,
  settingName: 'agent_keys_generation',
  channel: 'warrant:agent-keys:invalidate',
};

/** Most key ids one message carries; more (or a malformed message) drops every key. */
const MAX_IDS_PER_MESSAGE = 1_000;

export interface KeyInvalidationsDeps {
  store: Pick<Store, 'settings'>;
  redisUrl?: string;
  logger: Logger;
  now: () => number;
  options?: Partial<typeof keyInvalidationDefaults>;
}

/** `undefined`: every key. */
export type InvalidationHandler = (keyIds: string[] | undefined) => void;

async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export function createKeyInvalidations(deps: KeyInvalidationsDeps) {
  const options = { ...keyInvalidationDefaults, ...deps.options };
  const handlers = new Set<InvalidationHandler>();
  const emit = (keyIds: string[] | undefined) => {
    for (const h of handlers) h(keyIds);
  };
  let seen: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let polling: Promise<void> | undefined;
  let publisher: Redis | undefined;
  let subscriber: Redis | undefined;

  async function poll(): Promise<void> {
    try {
      const current = await deps.store.settings.get(options.settingName);
      if (current !== seen) {
        if (seen !== undefined || current !== undefined) emit(undefined);
        seen = current;
      }
    } catch (err) {
      deps.logger.warn({ err: (err as Error).message }, 'could not read the agent key generation; retried');
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
      if (connectedBefore) emit(undefined);
      connectedBefore = true;
    });
    subscriber.on('message', (_channel: string, message: string) => {
      let ids: unknown;
      try {
        ids = JSON.parse(message);
      } catch {
        ids = undefined;
      }
      const ok = Array.isArray(ids) && ids.length <= MAX_IDS_PER_MESSAGE && ids.every((k) => typeof k === 'string' && k.length <= 64);
      emit(ok ? (ids as string[]) : undefined);
    });
    subscriber.subscribe(options.channel).catch((err: Error) => deps.logger.warn({ err: err.message }, 'could not subscribe to agent key invalidations; the store carries them'));
  }

  return {
    /** Called with the key ids another instance (or this one) invalidated; `undefined` = all. */
    subscribe(handler: InvalidationHandler): () => void {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },

    /** Tells every instance to drop these keys from its cache (this one included). Never throws. */
    async publish(keyIds: string[]): Promise<void> {
      if (!keyIds.length) return;
      const writes: Promise<unknown>[] = [
        withDeadline(deps.store.settings.set(options.settingName, randomBytes(12).toString('base64url'), deps.now()), options.publishTimeoutMs, 'the store'),
      ];
      if (publisher) {
        for (let i = 0; i < keyIds.length; i += MAX_IDS_PER_MESSAGE) {
          writes.push(withDeadline(publisher.publish(options.channel, JSON.stringify(keyIds.slice(i, i + MAX_IDS_PER_MESSAGE))), options.publishTimeoutMs, 'Redis'));
        }
      }
      for (const r of await Promise.allSettled(writes)) {
        if (r.status === 'rejected') deps.logger.warn({ err: (r.reason as Error).message }, 'could not announce an agent key revocation to other instances; their cache TTL bounds it');
      }
    },

    /** Starts reading the generation (and subscribing, with Redis). */
    async start(): Promise<void> {
      if (timer) return;
      seen = await deps.store.settings.get(options.settingName).catch(() => undefined);
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
      if (timer) clearInterval(timer);
      timer = undefined;
      await polling;
      const clients = [publisher, subscriber].filter((c): c is Redis => c !== undefined);
      publisher = subscriber = undefined;
      // Nothing worth waiting for is in flight: no quit handshake with a Redis that may be away.
      for (const c of clients) c.disconnect();
    },
  };
}

export type KeyInvalidations = ReturnType<typeof createKeyInvalidations>;
