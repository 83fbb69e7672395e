import type { Logger } from 'pino';
import { WarrantError, invalidRequest, notFound } from '../errors/index.ts';
import type { Provider } from '../providers/index.ts';
import type { AuditEventRow, ConnectionRow, Store } from '../store/index.ts';
import type { AuditLog, EventBus } from '../events/index.ts';
import type { ConnectFlow } from './connect.ts';
import { lifetimeOf, type Clock } from './service.ts';
import { refreshDueAt, type TimingSettings } from './timing.ts';
import { EXPIRING_EVENT, reconnectable } from './expiry-notices.ts';
import { tagsOf } from '../util/tags.ts';

// Re-connect links: how the owner of a `reauth_required` connection grants access again. A link
// is a connect session for that connection (connect.ts): opened once, in one browser, only while
// the connection is `reauth_required` or its grant is announced to die (`credential.expiring`),
// and it revives the connection only with the same account. Links are handed to the owner, never
// to agents and never to the audit log: through the `connection.reauth_required` and
// `credential.expiring` webhooks (minted as they are sent) or POST
// /v1/connections/{id}/reconnect-link. Agent-facing problems carry the connection's admin URL.

/** How long an unopened link stays valid: long enough to travel in an alert. */
export const RECONNECT_LINK_TTL_SECONDS = 7 * 86_400;

export interface ReconnectLink {
  /** The start URL (a session's `authorize_url`): its first open binds the browser and goes to the IdP. */
  url: string;
  /** The hosted connect page on the same token: shows the owner what is re-connected before going on. */
  connect_url: string;
  expires_at: string;
  session: string;
}

export function createReconnects(deps: {
  store: Store;
  flow: ConnectFlow;
  catalog: Map<string, Provider>;
  audit: AuditLog;
  bus: EventBus;
  clock: Clock;
  logger: Logger;
  timing: TimingSettings;
  linkTtlSeconds?: number;
  /** Drops the connections' cached tokens and metadata on every instance (TokenService.invalidate). */
  invalidate?: (...ids: string[]) => Promise<void>;
}) {
  const { store, clock } = deps;
  const ttl = deps.linkTtlSeconds ?? RECONNECT_LINK_TTL_SECONDS;

  async function link(connectionId: string): Promise<ReconnectLink> {
    const row = await store.connections.get(connectionId);
    if (!row) throw notFound(`connection ${connectionId}`);
    if (!reconnectable(row)) {
      throw new WarrantError('conflict', `connection ${connectionId} is ${row.status}: re-connect links are issued only while it is reauth_required or its grant is about to expire`);
    }
    const s = await deps.flow.createReconnectSession(row, ttl);
    return { url: s.authorize_url, connect_url: s.connect_url, expires_at: s.expires_at, session: s.id };
  }

  /**
   * The owner confirms that `candidate`, the new connection a re-connect made because the
   * account could not be shown to be the same, replaces `connectionId`: its grant moves into
   * the old connection (which keeps its id, owner and agents' grants) and the candidate is deleted.
   */
  async function confirm(connectionId: string, candidateId: string, actor: string): Promise<ConnectionRow> {
    const session = await store.db
      .selectFrom('connect_sessions')
      .selectAll()
      .where('reconnect_of', '=', connectionId)
      .where('connection_id', '=', candidateId)
      .where('status', '=', 'completed')
      .executeTakeFirst();
    if (!session) throw invalidRequest('connection', `${candidateId} is not a pending re-connect of ${connectionId}`);
    const [target, candidate] = await Promise.all([store.connections.get(connectionId), store.connections.get(candidateId)]);
    if (!target) throw notFound(`connection ${connectionId}`);
    if (!candidate) throw invalidRequest('connection', `${candidateId} no longer exists`);
    if (!reconnectable(target)) throw new WarrantError('conflict', `connection ${connectionId} is ${target.status}; nothing to replace`);
    const grants = await store.db.selectFrom('grants').select('id').where('connection_id', '=', candidateId).limit(1).execute();
    if (grants.length) throw new WarrantError('conflict', `connection ${candidateId} is in use by agents; revoke their grants on it first`);
    const provider = deps.catalog.get(target.provider);
    const secrets = await store.vault.getAll('connection', candidateId);
    const now = clock.now();
    const entries = await store.transaction(async (trx) => {
      const moved = await store.connections.updateIfVersion(
        connectionId,
        target.version,
        {
          status: 'active',
          scopes: candidate.scopes,
          requested_scopes: candidate.requested_scopes,
          params: candidate.params,
          subject: candidate.subject,
          expires_at: candidate.expires_at,
          refresh_due_at: refreshDueAt(now, candidate.expires_at, lifetimeOf(candidate), deps.timing, provider?.refresh_token_idle_timeout),
          last_refreshed_at: candidate.last_refreshed_at,
          grant_started_at: candidate.grant_started_at ?? candidate.created_at,
          expiry_notice: null,
          last_error: null,
          failure_count: 0,
          next_attempt_at: null,
          updated_at: now,
        },
        trx,
      );
      // The candidate must be as read: a refresh that rotated its tokens meanwhile wins, try again.
      const gone = await trx.deleteFrom('connections').where('id', '=', candidateId).where('version', '=', candidate.version).executeTakeFirst();
      if (!moved || Number(gone.numDeletedRows) !== 1) throw new WarrantError('conflict', 'a connection changed during the confirmation; try again');
      await store.vault.delete({ scope: 'connection', ref: connectionId }, trx);
      for (const [field, value] of Object.entries(secrets)) await store.vault.put({ scope: 'connection', ref: connectionId, field }, value, trx);
      await store.vault.delete({ scope: 'connection', ref: candidateId }, trx);
      await trx.updateTable('connect_sessions').set({ connection_id: connectionId }).where('id', '=', session.id).execute();
      return deps.audit.append(
        {
          type: 'connection.reconnected',
          actor,
          subject: `connection:${connectionId}`,
          data: { provider: target.provider, owner: target.owner, confirmed: true, replaced_by: candidateId, scopes: JSON.parse(candidate.scopes) as string[], ...tagsOf(target) },
        },
        trx,
      );
    });
    deps.bus.publish(entries);
    await deps.invalidate?.(connectionId, candidateId);
    return (await store.connections.get(connectionId))!;
  }

  return {
    link,
    confirm,

    /**
     * Members added to a webhook's payload as it is sent: a `connection.reauth_required` or
     * `credential.expiring` event carries a fresh link while the connection still needs one.
     * Minted per delivery attempt, so the link exists only in the delivery, never in the audit
     * entry the payload is made from.
     */
    async webhookExtras(event: Pick<AuditEventRow, 'type' | 'subject'>): Promise<Record<string, unknown> | undefined> {
      if ((event.type !== 'connection.reauth_required' && event.type !== EXPIRING_EVENT) || !event.subject?.startsWith('connection:')) return undefined;
      try {
        const l = await link(event.subject.slice('connection:'.length));
        return { reconnect_url: l.url, reconnect_expires_at: l.expires_at };
      } catch (err) {
        if (err instanceof WarrantError && (err.code === 'conflict' || err.code === 'not_found')) return undefined;
        deps.logger.warn({ subject: event.subject, err: (err as Error).message }, 'could not make a re-connect link for a webhook');
        return undefined;
      }
    },

    /** A pending re-connect, as the session view shows it. */
    pendingOf: (s: { reconnect_of: string | null; connection_id: string | null; status: string }) =>
      s.reconnect_of && s.status === 'completed' && s.connection_id && s.connection_id !== s.reconnect_of ? s.connection_id : undefined,
  };
}

export type Reconnects = ReturnType<typeof createReconnects>;
