import { sql } from 'kysely';
import { invalidRequest } from '../errors/index.ts';
import type { AgentRow, Db, Dialect, GrantRow } from '../store/index.ts';
import { iso } from '../util/time.ts';
import type { AgentsRepo } from './repo.ts';
import { scopeList, viewOf } from './view.ts';

// Scope review (issue 11, item 3): per agent and grant, the scopes granted against the scopes its
// proxied calls used over a window, and the narrower grant that would have served every one of
// them. "Used" is what the policy recorded on each `proxy.call` audit entry: the first granted scope
// whose rule allowed the call (proxy/policy.ts), so keeping exactly the used scopes, in their order,
// keeps every observed call allowed. A grant with no use in the window is suggested for removal; an
// agent none of whose grants was used, for revocation.
// Token export (`GET /v1/connections/{id}/token`, a lease that returns the token) hands the token
// itself to the agent: what it does with it outside the proxy is not seen, so such a grant is never
// suggested narrower (`action: keep`, with a note).
// Cost: one grouped query per page of agents over the window's audit rows of those agents (index
// audit_events(type, actor, at)): the pages together read each of the window's relevant rows once,
// and the answer holds one row per (agent, connection, scope), bounded by the page size.

const DAY_MS = 86_400_000;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS, w: 7 * DAY_MS };
/** The longest window looked at. */
const MAX_WINDOW_MS = 3650 * DAY_MS;

export const reviewDefaults = {
  /** Window when `since` is not given. */
  windowMs: 30 * DAY_MS,
  /** Agents per page. */
  limit: 200,
  maxLimit: 1000,
};

/**
 * `since` as epoch ms: an ISO 8601 date-time (`2025-01-31T00:00:00Z`), a duration back from now
 * (`30d`, `12h`, `90m`, `2w`, `45s`) or an ISO 8601 duration (`P30D`, `PT12H`, `P1DT6H`, `P2W`).
 * Undefined: the default window. A time in the future, or a window past 10 years, is refused.
 */
export function parseSince(value: string | undefined, now: number, field = 'since'): number {
  if (value === undefined || value === '') return now - reviewDefaults.windowMs;
  const v = value.trim();
  let back: number | undefined;
  const short = /^(\d{1,7})([smhdw])$/.exec(v);
  const isoDuration = /^P(?:(\d{1,5})W)?(?:(\d{1,5})D)?(?:T(?:(\d{1,7})H)?(?:(\d{1,9})M)?(?:(\d{1,10})S)?)?$/.exec(v);
  if (short) back = Number(short[1]) * UNIT_MS[short[2]!]!;
  else if (isoDuration && v !== 'P' && !v.endsWith('T')) {
    const [, w, d, h, m, s] = isoDuration.map((x) => Number(x ?? 0));
    back = w! * 7 * DAY_MS + d! * DAY_MS + h! * 3_600_000 + m! * 60_000 + s! * 1000;
  } else if (/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/.test(v)) {
    const at = Date.parse(v);
    if (Number.isNaN(at)) throw invalidRequest(field, 'is not a valid date-time');
    if (at > now) throw invalidRequest(field, 'is in the future');
    back = now - at;
  } else {
    throw invalidRequest(field, 'must be an ISO 8601 date-time (2025-01-31T00:00:00Z) or a duration (30d, 12h, P30D)');
  }
  if (back <= 0) throw invalidRequest(field, 'must reach back in time');
  if (back > MAX_WINDOW_MS) throw invalidRequest(field, 'reaches back more than 10 years');
  return now - back;
}

export interface GrantReview {
  connection: string;
  provider: string | null;
  /** The grant's scopes now, in its order. */
  granted: string[];
  /** Granted scopes that allowed at least one proxied call in the window. */
  used: string[];
  /** Granted scopes no proxied call needed in the window: `granted` minus `used`. */
  unused: string[];
  /** The suggested narrower grant's scopes (⊆ granted); empty: remove the grant. */
  suggested: string[];
  /** What the suggestion amounts to. */
  action: 'keep' | 'narrow' | 'remove';
  /** Proxied calls allowed through this grant in the window, per scope that allowed them. */
  uses: Record<string, number>;
  /** Proxied calls on this connection the policy refused (no granted scope allowed them). */
  denied_calls: number;
  last_call_at: string | null;
  /** Tokens handed to the agent in the window (token export; leases that returned the token). */
  token_exports: number;
  note?: string;
}

export interface AgentReview {
  id: string;
  name: string;
  owner: string;
  status: string;
  last_used_at: string | null;
  grants: GrantReview[];
  /** `revoke`: no grant was used in the window; `narrow`: `suggested_patch` applies the suggestions. */
  action: 'keep' | 'narrow' | 'revoke';
  /** Body for `PATCH /v1/agents/{id}` that applies the suggestions (when `action` is `narrow`). */
  suggested_patch?: { grants: { connection: string; scopes: string[] }[] };
}

export interface ScopeReviewReport {
  since: string;
  until: string;
  agents: AgentReview[];
  /** More agents: pass as `after` for the next page. */
  next_after?: string;
}

/** What the audit says about one grant in the window. */
export interface GrantUsage {
  /** Calls per scope that allowed them (scopes not granted any more may appear: ignored). */
  uses: ReadonlyMap<string, number>;
  deniedCalls?: number;
  lastCallAt?: number | null;
  tokenExports?: number;
}

/** The review of one grant: pure, so its laws are tested on their own (suggested ⊆ granted, used ∪ unused = granted). */
export function reviewGrant(granted: readonly string[], usage: GrantUsage, meta: { connection: string; provider?: string | null }): GrantReview {
  const scopes = [...new Set(granted)];
  const used = scopes.filter((s) => (usage.uses.get(s) ?? 0) > 0);
  const unused = scopes.filter((s) => !used.includes(s));
  const tokenExports = usage.tokenExports ?? 0;
  const base = {
    connection: meta.connection,
    provider: meta.provider ?? null,
    granted: scopes,
    used,
    unused,
    uses: Object.fromEntries(used.map((s) => [s, usage.uses.get(s)!])),
    denied_calls: usage.deniedCalls ?? 0,
    last_call_at: usage.lastCallAt === undefined || usage.lastCallAt === null ? null : new Date(usage.lastCallAt).toISOString(),
    token_exports: tokenExports,
  };
  if (tokenExports > 0) {
    return { ...base, suggested: scopes, action: 'keep', note: 'the token itself was handed to the agent: its use outside the proxy is not seen, so no narrower grant is suggested' };
  }
  if (!used.length) return { ...base, suggested: [], action: 'remove' };
  return { ...base, suggested: used, action: unused.length ? 'narrow' : 'keep' };
}

/** The agent's verdict from its grants' reviews. */
export function reviewAgent(grants: GrantReview[]): Pick<AgentReview, 'action' | 'suggested_patch'> {
  if (!grants.length || grants.every((g) => g.action === 'keep')) return { action: 'keep' };
  if (grants.every((g) => g.action === 'remove')) return { action: 'revoke' };
  return { action: 'narrow', suggested_patch: { grants: grants.filter((g) => g.suggested.length).map((g) => ({ connection: g.connection, scopes: g.suggested })) } };
}

interface UsageRow {
  type: string;
  actor: string;
  subject: string | null;
  scope: string | null;
  n: number | string;
  last_at: number | string | null;
}

const USAGE_TYPES = ['proxy.call', 'token.exported', 'token.leased'];

export function createScopeReview(deps: { db: Db; dialect: Dialect; repo: AgentsRepo; clock: { now(): number } }) {
  const { db, dialect, repo, clock } = deps;
  const scopeOf = dialect === 'postgres' ? sql<string | null>`(data::json ->> 'scope')` : sql<string | null>`json_extract(data, '$.scope')`;

  /** One grouped pass over the window's usage entries of these agents. */
  async function usageOf(agentIds: string[], since: number, until: number): Promise<UsageRow[]> {
    if (!agentIds.length) return [];
    const rows = await db
      .selectFrom('audit_events')
      .select(['type', 'actor', 'subject', scopeOf.as('scope'), sql<number>`count(*)`.as('n'), sql<number>`max(at)`.as('last_at')])
      .where('type', 'in', USAGE_TYPES)
      .where(
        'actor',
        'in',
        agentIds.map((id) => `agent:${id}`),
      )
      .where('at', '>=', since)
      .where('at', '<=', until)
      .groupBy(['type', 'actor', 'subject', scopeOf])
      .execute();
    return rows as UsageRow[];
  }

  async function agentsPage(filter: { owner?: string; agent?: string; after?: string; limit: number }): Promise<AgentRow[]> {
    let q = db.selectFrom('agents').selectAll().where('status', 'in', ['active', 'suspended']);
    if (filter.owner) q = q.where('owner', '=', filter.owner);
    if (filter.agent) q = q.where('id', '=', filter.agent);
    if (filter.after) q = q.where('id', '>', filter.after);
    return q.orderBy('id').limit(filter.limit).execute();
  }

  return {
    /** GET /v1/review/scopes: one page of agents (not revoked) with a review of each grant. */
    async review(q: { since?: string; owner?: string; agent?: string; after?: string; limit?: number } = {}): Promise<ScopeReviewReport> {
      const until = clock.now();
      const since = parseSince(q.since, until);
      const limit = Math.min(Math.max(1, q.limit ?? reviewDefaults.limit), reviewDefaults.maxLimit);
      const page = await agentsPage({ owner: q.owner, agent: q.agent, after: q.after, limit });
      const grants = await repo.grantsOf(
        page.map((a) => a.id),
        db,
      );
      const usage = new Map<string, { uses: Map<string, number>; denied: number; last: number | null; exported: number; leased: number }>();
      const at = (agentId: string, connection: string) => {
        const k = `${agentId}\u0000${connection}`;
        let u = usage.get(k);
        if (!u) usage.set(k, (u = { uses: new Map(), denied: 0, last: null, exported: 0, leased: 0 }));
        return u;
      };
      for (const r of await usageOf(
        page.map((a) => a.id),
        since,
        until,
      )) {
        if (!r.subject?.startsWith('connection:')) continue;
        const u = at(r.actor.slice('agent:'.length), r.subject.slice('connection:'.length));
        const n = Number(r.n);
        if (r.type === 'token.exported') u.exported += n;
        else if (r.type === 'token.leased') u.leased += n;
        else if (r.scope === null || r.scope === undefined) u.denied += n;
        else u.uses.set(r.scope, (u.uses.get(r.scope) ?? 0) + n);
        if (r.type === 'proxy.call' && r.last_at !== null) u.last = Math.max(u.last ?? 0, Number(r.last_at));
      }
      const connectionIds = [...new Set([...grants.values()].flat().map((g) => g.connection_id))];
      const providers = new Map(
        connectionIds.length ? (await db.selectFrom('connections').select(['id', 'provider']).where('id', 'in', connectionIds).execute()).map((c) => [c.id, c.provider]) : [],
      );
      const agents = page
        .map((a) => {
          const reviews = (grants.get(a.id) ?? []).map((g: GrantRow) => {
            const u = usage.get(`${a.id}\u0000${g.connection_id}`);
            const exportable = Number(g.token_export) === 1;
            return reviewGrant(
              scopeList(g.scopes),
              { uses: u?.uses ?? new Map(), deniedCalls: u?.denied, lastCallAt: u?.last, tokenExports: (u?.exported ?? 0) + (exportable ? (u?.leased ?? 0) : 0) },
              { connection: g.connection_id, provider: providers.get(g.connection_id) ?? null },
            );
          });
          const view = viewOf(a, [], until);
          return { id: a.id, name: a.name, owner: a.owner, status: view.status, last_used_at: iso(a.last_used_at), grants: reviews, ...reviewAgent(reviews) };
        })
        // An OAuth client's agent holds no connection grant: nothing to review.
        .filter((a) => a.grants.length > 0);
      return {
        since: new Date(since).toISOString(),
        until: new Date(until).toISOString(),
        agents,
        ...(page.length === limit ? { next_after: page[page.length - 1]!.id } : {}),
      };
    },
  };
}

export type ScopeReview = ReturnType<typeof createScopeReview>;
