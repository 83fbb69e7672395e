import { createHash, randomUUID } from 'node:crypto';

// The audit log's hash chain, shared by the main thread and the embedded audit writer thread:
// each entry's hash covers its content and the previous entry's hash, so an edited, removed or
// reordered entry breaks every hash after it.

export const GENESIS = '0'.repeat(64);

export interface ChainInput {
  type: string;
  actor: string;
  subject?: string;
  data?: Record<string, unknown>;
}

export interface ChainRow {
  id: string;
  at: number;
  type: string;
  actor: string;
  subject: string | null;
  /** Canonical JSON (sorted keys): hashed exactly as stored. */
  data: string;
  prev_hash: string;
  hash: string;
}

export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

export function hashOf(prev: string, e: Pick<ChainRow, 'id' | 'at' | 'type' | 'actor' | 'subject' | 'data'>): string {
  return createHash('sha256').update(JSON.stringify([prev, e.id, e.at, e.type, e.actor, e.subject, e.data])).digest('hex');
}

/** The rows that extend a chain whose head hash is `prev`, in order. */
export function chainRows(prev: string, inputs: ChainInput[], now: () => number): ChainRow[] {
  const rows: ChainRow[] = [];
  for (const input of inputs) {
    const row: ChainRow = {
      id: `evt_${randomUUID().replaceAll('-', '')}`,
      at: now(),
      type: input.type,
      actor: input.actor,
      subject: input.subject ?? null,
      data: canonical(input.data ?? {}),
      prev_hash: prev,
      hash: '',
    };
    row.hash = hashOf(prev, row);
    prev = row.hash;
    rows.push(row);
  }
  return rows;
}
