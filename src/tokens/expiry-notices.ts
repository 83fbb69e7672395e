import type { Logger } from 'pino';
import type { Provider } from '../providers/index.ts';
import type { ConnectionRow, ExpiryNotice, GrantLimits, Store } from '../store/index.ts';
import type { AuditLog, EventBus } from '../events/index.ts';
import type { Clock } from './service.ts';

// Grants that die for good whatever Warrant does: an absolute refresh-token lifetime counted from
// consent (Atlassian 365 days, Intuit 5 years), or an idle timeout where refreshing cannot keep the
// grant alive (no refresh token, or refreshes failing; otherwise the scheduler refreshes idle
// grants well before it). The owner must consent again before that day: a `credential.expiring`
// event (audit entry and webhook, whose delivery carries a re-connect link) and a warn line,
// 14 days and 2 days before. Which notice was sent is kept on the connection and claimed with a
// conditional update, so each is sent once across restarts and instances.
// The same notices announce a rotation schedule's deadline (WARRANT_ROTATE_REFRESH_TOKEN_DAYS)
// where the provider cannot rotate refresh tokens: only the owner's new consent replaces one
// (reason `rotation_due`; the grant keeps working past the date, the schedule is the operator's).

export const EXPIRING_EVENT = 'credential.expiring';

const DAY_MS = 86_400_000;
/** Each notice and how long before the grant's end it is due. */
const NOTICES: readonly { notice: ExpiryNotice; beforeMs: number }[] = [
  { notice: '2d', beforeMs: 2 * DAY_MS },
  { notice: '14d', beforeMs: 14 * DAY_MS },
];

/** How often the scheduler looks for grants near their end (they are days away: minutes are plenty). */
export const EXPIRY_CHECK_INTERVAL_MS = 5 * 60_000;

export type GrantEndReason = 'absolute_lifetime' | 'idle_timeout' | 'rotation_due';

export interface GrantEnd {
  /** Epoch ms. */
  diesAt: number;
  reason: GrantEndReason;
}

type GrantRow = Pick<ConnectionRow, 'status' | 'created_at' | 'grant_started_at' | 'last_refreshed_at' | 'failure_count'> & Partial<Pick<ConnectionRow, 'credential_issued_at'>>;
type GrantProvider = Pick<Provider, 'refresh_token_lifetime' | 'refresh_token_idle_timeout'> & Partial<Pick<Provider, 'auth' | 'refresh_token_rotation'>>;

/** A provider whose refresh tokens only a new consent replaces: a rotation schedule there is a notice to the owner. */
export const cannotRotateRefreshTokens = (p: Partial<Pick<Provider, 'auth' | 'refresh_token_rotation'>>) => p.auth === 'oauth2' && p.refresh_token_rotation !== true;

/**
 * When the grant dies for good, if its provider documents a limit that applies to it. The idle
 * timeout counts from the last refresh and applies only where refreshing cannot reset it.
 */
export function grantEndOf(row: GrantRow, provider: GrantProvider, hasRefreshToken: boolean, rotateRefreshTokenMs = 0): GrantEnd | undefined {
  const started = row.grant_started_at ?? row.created_at;
  const ends: GrantEnd[] = [];
  if (rotateRefreshTokenMs > 0 && hasRefreshToken && cannotRotateRefreshTokens(provider)) {
    ends.push({ diesAt: (row.credential_issued_at ?? started) + rotateRefreshTokenMs, reason: 'rotation_due' });
  }
  if (provider.refresh_token_lifetime) ends.push({ diesAt: started + provider.refresh_token_lifetime * 1000, reason: 'absolute_lifetime' });
  const refreshing = hasRefreshToken && row.status !== 'error' && row.failure_count === 0;
  if (provider.refresh_token_idle_timeout && !refreshing) {
    ends.push({ diesAt: (row.last_refreshed_at ?? started) + provider.refresh_token_idle_timeout * 1000, reason: 'idle_timeout' });
  }
  return ends.sort((a, b) => a.diesAt - b.diesAt)[0];
}

/** The notice due `now` for a grant ending at `diesAt` (the 2-day one also once it has ended), if any. */
export function noticeDue(diesAt: number, now: number): ExpiryNotice | undefined {
  return NOTICES.find((n) => diesAt - now <= n.beforeMs)?.notice;
}

/**
 * A re-connect link may be issued for the connection: its grant is dead (`reauth_required`) or
 * announced to die (a `credential.expiring` notice was sent and no re-connect has happened since).
 */
export function reconnectable(row: Pick<ConnectionRow, 'status' | 'expiry_notice'>): boolean {
  return row.status === 'reauth_required' || ((row.status === 'active' || row.status === 'error') && row.expiry_notice != null);
}

export function createExpiryNotices(deps: {
  store: Store;
  catalog: Map<string, Provider>;
  audit: AuditLog;
  bus: EventBus;
  clock: Clock;
  logger: Logger;
  batchSize?: number;
  /** WARRANT_ROTATE_REFRESH_TOKEN_DAYS in ms (0: no schedule): its deadline is announced where the provider cannot rotate. */
  rotateRefreshTokenMs?: number;
}) {
  const { store, clock, logger } = deps;
  const batchSize = deps.batchSize ?? 500;
  const rotateMs = deps.rotateRefreshTokenMs ?? 0;

  const limitsOf = (): GrantLimits[] =>
    [...deps.catalog.values()]
      // Only consented grants end this way: client credentials and JWT bearer mint anew without anyone.
      .map((p) => ({
        provider: p.id,
        lifetimeMs: p.auth === 'oauth2' ? p.refresh_token_lifetime && p.refresh_token_lifetime * 1000 : undefined,
        idleMs: p.auth === 'oauth2' ? p.refresh_token_idle_timeout && p.refresh_token_idle_timeout * 1000 : undefined,
        rotationMs: rotateMs > 0 && cannotRotateRefreshTokens(p) ? rotateMs : undefined,
      }))
      .filter((l) => l.lifetimeMs || l.idleMs || l.rotationMs);

  /** Sends `notice` for `row` unless another instance (or an earlier run) did; true when this call sent it. */
  async function announce(row: ConnectionRow, end: GrantEnd, notice: ExpiryNotice, now: number): Promise<boolean> {
    const diesAt = new Date(end.diesAt).toISOString();
    const daysLeft = Math.max(0, Math.ceil((end.diesAt - now) / DAY_MS));
    const entries = await store.transaction(async (trx) => {
      if (!(await store.connections.claimExpiryNotice(row.id, notice, row, trx))) return [];
      // The re-connect link is added to the webhook as it is delivered (reconnect.ts), never stored.
      return deps.audit.append(
        {
          type: EXPIRING_EVENT,
          actor: 'scheduler',
          subject: `connection:${row.id}`,
          data: {
            connection: row.id,
            provider: row.provider,
            environment: row.environment,
            owner: row.owner,
            dies_at: diesAt,
            reason: end.reason,
            days_left: daysLeft,
            notice,
            ...(end.reason === 'rotation_due' ? { kind: 'refresh_token' } : {}),
          },
        },
        trx,
      );
    });
    if (!entries.length) return false;
    deps.bus.publish(entries);
    logger.warn(
      { connection: row.id, provider: row.provider, owner: row.owner, dies_at: diesAt, reason: end.reason, days_left: daysLeft },
      end.reason === 'rotation_due'
        ? `refresh token due for rotation in ${daysLeft} day(s) and the provider cannot rotate it: its owner must re-connect before then`
        : `grant dies for good in ${daysLeft} day(s) (${end.reason}): its owner must re-connect before then`,
    );
    return true;
  }

  return {
    /**
     * One pass: every live grant whose next notice is due gets it. Grants with no notice yet are
     * looked for within 14 days of their end, those with the 14-day one within 2 days.
     * Returns how many notices this call sent.
     */
    async check(): Promise<number> {
      const limits = limitsOf();
      if (!limits.length) return 0;
      const now = clock.now();
      let sent = 0;
      for (const previous of [null, '14d'] as const) {
        const window = previous === null ? 14 * DAY_MS : 2 * DAY_MS;
        for (let after: string | undefined; ; ) {
          const rows = await store.connections.grantsNearingEnd(limits, now + window, batchSize, { previous, after });
          for (const row of rows) {
            const provider = deps.catalog.get(row.provider);
            const end = provider && grantEndOf(row, provider, row.has_refresh_token, rotateMs);
            const notice = end && noticeDue(end.diesAt, now);
            if (end && notice && notice !== row.expiry_notice && (await announce(row, end, notice, now))) sent++;
          }
          if (rows.length < batchSize) break;
          after = rows[rows.length - 1]!.id;
        }
      }
      return sent;
    },
  };
}

export type ExpiryNotices = ReturnType<typeof createExpiryNotices>;
