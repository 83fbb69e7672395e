/**
 * One load per key at a time: callers that ask while it runs share its promise, so a burst of
 * cold requests for the same key makes one read. `forget` lets a caller's invalidation drop a
 * load under way, so the next caller starts a fresh one.
 */
export function singleFlight<K, V>(load: (key: K) => Promise<V>) {
  const running = new Map<K, Promise<V>>();
  return {
    run(key: K): Promise<V> {
      let p = running.get(key);
      if (!p) {
        p = load(key).finally(() => {
          if (running.get(key) === p) running.delete(key);
        });
        running.set(key, p);
      }
      return p;
    },
    /** Forgets the load under way for `key` (every key without one); it still settles for its callers. */
    forget(key?: K): void {
      if (key === undefined) running.clear();
      else running.delete(key);
    },
  };
}
