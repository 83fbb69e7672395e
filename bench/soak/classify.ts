// Which failed calls a fault explains, and which events can eat a refresh answer.
import type { FaultKind, FaultWindow } from './faults.ts';
import type { CallRecord } from './load.ts';
import type { PassOutcome } from './pass.ts';

export interface Death {
  label: string;
  at: number;
}

/** What can eat a refresh answer: an instance dying (killed, crashed, stopped) or its store sessions killed. */
export function deathsOf(p: PassOutcome, earlierPass = false): Death[] {
  const suffix = earlierPass ? ' (previous pass)' : '';
  return [
    ...p.crashes.map((c) => ({ label: `crash${suffix}`, at: c.at })),
    ...p.windows.filter((w) => w.kind === 'kill').map((w) => ({ label: `SIGKILL${suffix}`, at: w.start })),
    ...p.windows.filter((w) => w.kind === 'pg_terminate').map((w) => ({ label: `pg_terminate${suffix}`, at: w.start })),
    ...(earlierPass ? [{ label: 'SIGTERM at the end of the previous pass', at: p.stopAt }] : []),
  ];
}

/**
 * How long after a kill a 503 is still the kill's doing: the token requests the IdP holds around
 * the kill (3 s), the dead holder's lock and refresh claim (6 s each, src/tokens/service.ts), and a
 * waiter's own deadline (2 × the IdP timeout + 5 s) for a refresh that started before it lapsed.
 */
const lockTtlMs = 25_000;

/** Why a failed call was expected, or undefined when nothing the soak did explains it. */
export function expectedReason(r: CallRecord, windows: FaultWindow[], revoked: PassOutcome['revoked'], lostBefore: Set<number>): string | undefined {
  const during = (kind: FaultKind, inst?: number) =>
    windows.some((w) => w.kind === kind && (inst === undefined || w.instance === inst) && r.t1 >= w.start && r.t0 <= w.end + w.graceMs);
  // A killed instance drops what it had in flight and refuses calls until it is back.
  if (r.code.startsWith('net_') && during('kill', r.inst)) return 'instance killed';
  // DESIGN.md: the IdP failing transiently and no valid token left.
  if (r.code === 'refresh_unavailable' && during('idp_outage')) return 'IdP outage';
  // DESIGN.md: `unavailable` when the store (or its locks) cannot serve safely right now.
  if (r.code === 'unavailable' && (during('pg_terminate') || during('redis_down'))) return 'store fault';
  // The locks and refresh claims a killed process held are waited out: they lapse at most one TTL
  // after it died, whenever it is back, and a call that waited that long may give up with a 503.
  const killLocks = windows.some((w) => w.kind === 'kill' && r.t1 >= w.start && r.t0 <= w.start + lockTtlMs);
  if ((r.code === 'unavailable' || r.code === 'refresh_unavailable') && killLocks) return 'instance killed (its locks)';
  const idp = revoked.idp.get(r.conn);
  if (idp !== undefined && r.t1 >= idp && (r.code === 'reauth_required' || r.code.startsWith('exported_token_'))) return 'grant revoked at the IdP';
  const del = revoked.deleted.get(r.conn);
  if (del !== undefined && r.t1 >= del && ['not_found', 'policy_denied', 'conflict', 'reauth_required'].includes(r.code)) return 'connection deleted';
  if (del !== undefined && r.t1 >= del && r.code.startsWith('exported_token_')) return 'connection deleted';
  const agent = revoked.agents.get(r.agent);
  if (agent !== undefined && r.t1 >= agent && r.code === 'agent_unauthenticated') return 'agent revoked';
  // Already counted as a lost grant (a failed invariant) in the pass that lost it.
  if (lostBefore.has(r.conn) && (r.code === 'reauth_required' || r.code.startsWith('exported_token_'))) return 'grant lost in an earlier pass';
  return undefined;
}

