import { sql } from 'kysely';
import type { AgentService } from '../agents/index.ts';
import type { AuditLog, AuditVerification } from '../events/index.ts';
import type { ConnectionStatus, Db } from '../store/index.ts';

// GET /v1/status (`warrant status`): what an operator looks at first. A handful of aggregate
// queries whose cost does not grow with the number of healthy connections beyond an index scan:
// counts by status read the (status, updated_at) index; the next refreshes walk the partial
// refresh_due_at index with a LIMIT; the failing connections are a range of the status index.
// The audit chain's full walk is cached and bounded in time: a status call never waits for it longer
// than `auditWaitMs` (a large log answers `verifying` until the walk is done).

export const CONNECTION_STATUSES: readonly ConnectionStatus[] = ['active', 'reauth_required', 'revoked', 'error'];
export const AGENT_STATUSES = ['active', 'expired', 'suspended', 'revoked'] as const;
type AgentStatus = (typeof AGENT_STATUSES)[number];

export const statusDefaults = {
  /** A verification of the audit chain is reused this long. */
  auditVerifyTtlMs: 60_000,
  /** How long a status call waits for a verification in progress. */
  auditWaitMs: 3_000,
  /** Orphans are counted up to this many (`orphans_capped` beyond). */
  orphanCountCap: 1000,
};

export interface StatusReport {
  generated_at: string;
  connections: { total: number; by_status: Record<ConnectionStatus, number> };
  /** Active connections whose next refresh is due soonest (the refresh-ahead schedule). */
  upcoming_expiries: { id: string; provider: string; owner: string; expires_at: string | null; refresh_due_at: string }[];
  /** reauth_required or error, most recently changed first. */
  failing: { id: string; provider: string; owner: string; status: ConnectionStatus; last_error: string | null; since: string }[];
  agents: { total: number; by_status: Record<AgentStatus, number>; orphans: number; orphans_capped: boolean };
  audit: {
    head_seq: number;
    /** `verifying`: the chain is being walked and no earlier result is at hand; ask again shortly. */
    chain: 'ok' | 'broken' | 'verifying';
    entries?: number;
    first_bad?: number;
    reason?: string;
    verified_at?: string;
  };
}

export interface StatusDeps {
  db: Db;
  agents: Pick<AgentService, 'orphaned'>;
  audit: Pick<AuditLog, 'head' | 'verify'>;
  now: () => number;
  options?: Partial<typeof statusDefaults>;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

export function createStatus(deps: StatusDeps) {
  const { db, now } = deps;
  const o = { ...statusDefaults, ...deps.options };
  let verified: { result: AuditVerification; at: number } | undefined;
  let walking: Promise<void> | undefined;

  function verifyAudit(): Promise<void> {
    walking ??= deps.audit
      .verify()
      .then(
        (result) => {
          verified = { result, at: now() };
        },
        // The store failing mid-walk: the next status call tries again (the report says `verifying` meanwhile).
        () => undefined,
      )
      .finally(() => {
        walking = undefined;
      });
    return walking;
  }

  async function auditStatus(): Promise<StatusReport['audit']> {
    const head = await deps.audit.head();
    if (!verified || now() - verified.at > o.auditVerifyTtlMs) {
      const walk = verifyAudit();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([walk, new Promise((r) => (timer = setTimeout(r, o.auditWaitMs)))]).finally(() => clearTimeout(timer));
    }
    if (!verified) return { head_seq: head.seq, chain: 'verifying' };
    const v = verified.result;
    return {
      head_seq: head.seq,
      chain: v.ok ? 'ok' : 'broken',
      entries: v.entries,
      ...(v.first_bad !== undefined ? { first_bad: v.first_bad } : {}),
      ...(v.reason ? { reason: v.reason } : {}),
      verified_at: iso(verified.at)!,
    };
  }

  return {
    async report(limit = 10): Promise<StatusReport> {
      const at = now();
      const [byStatus, upcoming, failing, agentCounts, orphans, audit] = await Promise.all([
        db.selectFrom('connections').select(['status', db.fn.countAll<number | string>().as('n')]).groupBy('status').execute(),
        db
          .selectFrom('connections')
          .select(['id', 'provider', 'owner', 'expires_at', 'refresh_due_at'])
          .where('refresh_due_at', 'is not', null)
          .where('status', '=', 'active')
          .orderBy('refresh_due_at')
          .limit(limit)
          .execute(),
        db
          .selectFrom('connections')
          .select(['id', 'provider', 'owner', 'status', 'last_error', 'updated_at'])
          .where('status', 'in', ['reauth_required', 'error'])
          .orderBy('updated_at', 'desc')
          .limit(limit)
          .execute(),
        sql<{ status: string; expired: number | string; n: number | string }>`
          select status, case when status = 'active' and expires_at is not null and expires_at <= ${at} then 1 else 0 end as expired, count(*) as n
          from agents group by 1, 2`.execute(db),
        deps.agents.orphaned({ limit: o.orphanCountCap }),
        auditStatus(),
      ]);
      const connections = Object.fromEntries(CONNECTION_STATUSES.map((s) => [s, 0])) as Record<ConnectionStatus, number>;
      for (const row of byStatus) connections[row.status] = Number(row.n);
      const agents = Object.fromEntries(AGENT_STATUSES.map((s) => [s, 0])) as Record<AgentStatus, number>;
      for (const row of agentCounts.rows) {
        const status = Number(row.expired) === 1 ? 'expired' : (row.status as AgentStatus);
        agents[status] = (agents[status] ?? 0) + Number(row.n);
      }
      const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
      return {
        generated_at: iso(at)!,
        connections: { total: sum(connections), by_status: connections },
        upcoming_expiries: upcoming.map((c) => ({ id: c.id, provider: c.provider, owner: c.owner, expires_at: iso(c.expires_at), refresh_due_at: iso(c.refresh_due_at)! })),
        failing: failing.map((c) => ({ id: c.id, provider: c.provider, owner: c.owner, status: c.status, last_error: c.last_error, since: iso(c.updated_at)! })),
        agents: { total: sum(agents), by_status: agents, orphans: orphans.length, orphans_capped: orphans.length >= o.orphanCountCap },
        audit,
      };
    },
  };
}

export type Status = ReturnType<typeof createStatus>;
