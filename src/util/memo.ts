/**
 * A pure function of a string, remembered: for values that repeat across calls (a catalog rule's
 * path, an API base URL, a caller's address) and cost more to compute than to look up. Bounded:
 * when `max` results are held, it starts over rather than track which are old.
 */
export function memoize<T>(max: number, compute: (key: string) => T): (key: string) => T {
  const results = new Map<string, T>();
  return (key) => {
    let value = results.get(key);
    if (value === undefined && !results.has(key)) {
      if (results.size >= max) results.clear();
      results.set(key, (value = compute(key)));
    }
    return value as T;
  };
}
