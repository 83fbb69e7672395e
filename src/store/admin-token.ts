import { performance } from 'node:perf_hooks';
import { hashSecret, randomToken, safeEqual } from '../crypto/index.ts';
import type { SettingsRepo } from './settings.ts';

const NAME = 'admin_token_hash';

export interface AdminTokensDeps {
  settings: SettingsRepo;
  /**
   * WARRANT_ADMIN_TOKEN: when set it is the only token this server accepts, and `ensure()` stores
   * its hash over any generated one, so unsetting the variable later never re-enables an old token.
   */
  configured?: string;
  /** Stamps `updated_at`. The cache runs on the monotonic clock: it is about another process's writes, not lifecycle time. */
  now: () => number;
  /** How long a read of the stored hash is trusted: a reset elsewhere is seen within this (default 1 s). */
  cacheMs?: number;
  /** On a mismatch the store is read again, but not more often than this (default 100 ms). */
  missRefreshMs?: number;
}

export type EnsureResult =
  | { kind: 'configured' }
  | { kind: 'stored' }
  /** Shown this once; only its hash is stored. */
  | { kind: 'generated'; token: string };

/**
 * The admin token: configured (WARRANT_ADMIN_TOKEN) or generated once and stored hashed; never
 * shown again after it is made. Running servers re-read the stored hash, so `warrant admin-token
 * rotate` takes effect without a restart: the new token at once (a miss re-reads), the old one
 * within `cacheMs`.
 */
export function createAdminTokens(deps: AdminTokensDeps) {
  const { settings, now } = deps;
  const cacheMs = deps.cacheMs ?? 1_000;
  const missRefreshMs = deps.missRefreshMs ?? 100;
  const configuredHash = deps.configured ? hashSecret(deps.configured) : undefined;
  let cached: string | undefined;
  let readAt = -Infinity;
  let reading: Promise<string | undefined> | undefined;

  function read(): Promise<string | undefined> {
    reading ??= settings
      .get(NAME)
      .then((hash) => {
        cached = hash;
        readAt = performance.now();
        return hash;
      })
      .finally(() => (reading = undefined));
    return reading;
  }

  const newToken = () => randomToken(32, 'wat_');

  return {
    /** Is `token` the admin token? Constant-time on the hash. */
    async verify(token: string): Promise<boolean> {
      const hash = hashSecret(token);
      if (configuredHash) return safeEqual(hash, configuredHash);
      const expected = performance.now() - readAt < cacheMs ? cached : await read();
      if (expected && safeEqual(hash, expected)) return true;
      if (performance.now() - readAt < missRefreshMs) return false;
      const fresh = await read();
      return !!fresh && safeEqual(hash, fresh);
    },

    /**
     * Called once the listener is bound: generates and stores a token on the first start. Among
     * instances starting together the first insert wins; the others report `stored`. A configured
     * token replaces the stored hash: the token it was set to replace must not come back when the
     * variable is removed.
     */
    async ensure(): Promise<EnsureResult> {
      if (configuredHash) {
        if ((await read()) !== configuredHash) {
          await settings.set(NAME, configuredHash, now());
          await read();
        }
        return { kind: 'configured' };
      }
      if (await read()) return { kind: 'stored' };
      const token = newToken();
      if (await settings.setIfAbsent(NAME, hashSecret(token), now())) {
        await read();
        return { kind: 'generated', token };
      }
      await read();
      return { kind: 'stored' };
    },

    /** Stores the hash of a new token and returns the token (shown once by the caller). */
    rotate,
    /** The name `warrant admin-token reset` had first. */
    reset: rotate,
  };

  async function rotate(): Promise<string> {
    const token = newToken();
    await settings.set(NAME, hashSecret(token), now());
    await read();
    return token;
  }
}

export type AdminTokens = ReturnType<typeof createAdminTokens>;
