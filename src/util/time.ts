/** Epoch milliseconds → ISO 8601 on the wire; null stays null ("never", "does not expire"). */
export function iso(ms: number): string;
export function iso(ms: number | null): string | null;
export function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}
