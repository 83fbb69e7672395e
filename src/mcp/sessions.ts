import { randomBytes } from 'node:crypto';

// Sessions of the 2025 session-based Streamable HTTP era: an `initialize` without `Mcp-Session-Id`
// opens one; its id (256 random bits) then names it on every request. A session is bound to the
// agent that opened it: the same id presented with another agent's credential is answered as an
// unknown session (404), so the id alone is worth nothing and no answer tells that it exists.
// Bounded in number (per instance and per agent) and in idle time.

export interface SessionEntry<T> {
  readonly id: string;
  readonly agentId: string;
  readonly value: T;
  lastUsedAt: number;
}

export interface SessionTableOptions {
  maxSessions: number;
  maxSessionsPerAgent: number;
  idleMs: number;
  now?: () => number;
  /** Called once for every session that leaves the table (closed, idle, evicted). */
  onClose(value: unknown, reason: 'closed' | 'idle' | 'evicted' | 'shutdown'): void;
}

export const newSessionId = () => randomBytes(32).toString('base64url');

export function createSessionTable<T>(opts: SessionTableOptions) {
  const now = opts.now ?? Date.now;
  const sessions = new Map<string, SessionEntry<T>>();

  function remove(id: string, reason: 'closed' | 'idle' | 'evicted' | 'shutdown'): void {
    const s = sessions.get(id);
    if (!s) return;
    sessions.delete(id);
    opts.onClose(s.value, reason);
  }

  function sweep(): void {
    const cutoff = now() - opts.idleMs;
    for (const s of sessions.values()) if (s.lastUsedAt <= cutoff) remove(s.id, 'idle');
  }

  // Idle sessions are closed within a quarter of the idle time; the timer never holds the process.
  const timer = setInterval(sweep, Math.max(1_000, Math.floor(opts.idleMs / 4)));
  timer.unref();

  return {
    /**
     * Room for one more session of `agentId`: false when the instance is full (after closing idle
     * ones); at the agent's own cap its least recently used session is closed to make room.
     */
    makeRoom(agentId: string): boolean {
      sweep();
      const own = [...sessions.values()].filter((s) => s.agentId === agentId).sort((a, b) => a.lastUsedAt - b.lastUsedAt);
      while (own.length >= opts.maxSessionsPerAgent) remove(own.shift()!.id, 'evicted');
      return sessions.size < opts.maxSessions;
    },

    add(id: string, agentId: string, value: T): void {
      sessions.set(id, { id, agentId, value, lastUsedAt: now() });
    },

    /** The session, only for the agent that opened it and while it is not idle past its time. */
    get(id: string, agentId: string): SessionEntry<T> | undefined {
      const s = sessions.get(id);
      if (!s || s.agentId !== agentId) return undefined;
      if (now() - s.lastUsedAt >= opts.idleMs) {
        remove(id, 'idle');
        return undefined;
      }
      s.lastUsedAt = now();
      return s;
    },

    /** Whether an id names a live session of another agent (for the audit of a refused use; never told to the caller). */
    heldByOther: (id: string, agentId: string) => {
      const s = sessions.get(id);
      return s !== undefined && s.agentId !== agentId;
    },

    /** Whom a live session belongs to (for the audit of a refused use; never told to the caller). */
    ownerOf: (id: string): string | undefined => sessions.get(id)?.agentId,

    remove: (id: string) => remove(id, 'closed'),
    size: () => sessions.size,

    close(): void {
      clearInterval(timer);
      for (const id of [...sessions.keys()]) remove(id, 'shutdown');
    },
  };
}

export type SessionTable<T> = ReturnType<typeof createSessionTable<T>>;
