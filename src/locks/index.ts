export { LockTimeoutError, LockServiceUnavailableError, pollDelay, sleep, steadyLease, type LockLease, type LockOptions, type Locks } from './types.ts';
export { createMemoryLocks } from './memory.ts';
export { createPostgresLocks } from './postgres.ts';
export { createRedisLocks } from './redis.ts';
export { withFallback } from './fallback.ts';
