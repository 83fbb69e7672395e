import { randomUUID } from 'node:crypto';
import type { AuditInput, AuditLog, EventBus } from '../events/index.ts';
import type { Db, Store } from '../store/index.ts';
import { ScimError, scimNotFound } from './errors.ts';
import type { UserFilter } from './filter.ts';
import { changedAttributes, type UserInput, type UserProfile, type UserRecord, type UserState } from './resource.ts';

// SCIM Users over Warrant's owners. Every owner is a SCIM User (an owner named first by an agent
// or a connection gets its SCIM id the first time a client reads it), so a directory that looks a
// user up before creating it links to the owner Warrant already knows. `active: false` and DELETE
// offboard the owner through the offboarding service; `active: true` on an offboarded owner
// reactivates it without bringing back anything offboarding revoked (docs/governance.md).

/** The audit actor of every SCIM change. */
export const SCIM_ACTOR = 'scim';

export interface ScimUsersDeps {
  store: Store;
  audit: AuditLog;
  bus: EventBus;
  clock: { now(): number };
  /** Offboards the owner (agents/offboarding.ts): idempotent, revokes its agents and grants. */
  offboard(owner: string, actor: string): Promise<unknown>;
}

export interface Page {
  /** 1-based (RFC 7644 §3.4.2.4). */
  startIndex: number;
  count: number;
}

interface Joined {
  id: string;
  owner: string;
  external_id: string | null;
  attributes: string;
  updated_at: number;
  status: 'active' | 'offboarded';
  owner_created_at: number;
}

const recordOf = (r: Joined): UserRecord => ({
  id: r.id,
  userName: r.owner,
  externalId: r.external_id,
  active: r.status === 'active',
  profile: JSON.parse(r.attributes) as UserProfile,
  created: Number(r.owner_created_at),
  lastModified: Number(r.updated_at),
});

export function createScimUsers(deps: ScimUsersDeps) {
  const { store, audit, bus, clock } = deps;
  const db = store.db;

  const joined = (trx: Db) =>
    trx
      .selectFrom('scim_users')
      .innerJoin('owners', 'owners.id', 'scim_users.owner')
      .select(['scim_users.id', 'scim_users.owner', 'scim_users.external_id', 'scim_users.attributes', 'scim_users.updated_at', 'owners.status', 'owners.created_at as owner_created_at'])
      .where('scim_users.deleted_at', 'is', null);

  async function load(id: string, trx: Db): Promise<UserRecord> {
    const row = await joined(trx).where('scim_users.id', '=', id).executeTakeFirst();
    if (!row) throw scimNotFound();
    return recordOf(row as Joined);
  }

  /** Gives SCIM ids to owners that have none yet (owners named by agents or connections first). */
  async function adopt(owners: string[], now: number): Promise<void> {
    for (const owner of owners) {
      await db
        .insertInto('scim_users')
        .values({ id: randomUUID(), owner, external_id: null, attributes: '{}', created_at: now, updated_at: now, deleted_at: null })
        .onConflict((oc) => oc.column('owner').doNothing())
        .execute();
    }
  }

  async function setStatus(owner: string, active: boolean, trx: Db, now: number): Promise<AuditInput[]> {
    if (!active) return []; // offboarding sets it, after the commit (it calls identity providers)
    await store.owners.claim(owner, now, trx); // serialized with an offboarding of the same owner
    const r = await trx
      .updateTable('owners')
      .set({ status: 'active', offboarded_at: null })
      .where('id', '=', owner)
      .where('status', '=', 'offboarded')
      .executeTakeFirst();
    if (!Number(r.numUpdatedRows)) return [];
    // Agents and grants revoked by the offboarding stay revoked: the owner starts over.
    return [{ type: 'owner.reactivated', actor: SCIM_ACTOR, subject: `owner:${owner}`, data: { via: 'scim', at: new Date(now).toISOString() } }];
  }

  /**
   * Writes `next` over `before` in `trx`; returns the audit entries and whether the owner must now
   * be offboarded (done after the commit by the caller).
   */
  async function write(id: string, before: UserState, next: UserState, trx: Db, now: number) {
    const changed = changedAttributes(before, next);
    const entries: AuditInput[] = [];
    if (changed.some((c) => c !== 'active')) {
      await trx
        .updateTable('scim_users')
        .set({ external_id: next.externalId, attributes: JSON.stringify(next.profile), updated_at: now })
        .where('id', '=', id)
        .execute();
      entries.push({ type: 'owner.updated', actor: SCIM_ACTOR, subject: `owner:${next.userName}`, data: { scim_id: id, attributes: changed.filter((c) => c !== 'active') } });
    } else if (before.active !== next.active) {
      await trx.updateTable('scim_users').set({ updated_at: now }).where('id', '=', id).execute();
    }
    if (next.active && !before.active) entries.push(...(await setStatus(next.userName, true, trx, now)));
    // Offboarded already, but a revocation failed for a transient reason (its connection is kept):
    // the IdP's next inactive update runs the offboarding again, which retries it.
    return { entries, offboard: !next.active && (before.active || (await leftovers(next.userName, trx))) };
  }

  /** Does the owner still hold a connection or an agent not revoked? */
  async function leftovers(owner: string, trx: Db): Promise<boolean> {
    const connection = await trx.selectFrom('connections').select('id').where('owner', '=', owner).limit(1).executeTakeFirst();
    if (connection) return true;
    return !!(await trx.selectFrom('agents').select('id').where('owner', '=', owner).where('status', '!=', 'revoked').limit(1).executeTakeFirst());
  }

  async function commit<T>(fn: (trx: Db, now: number) => Promise<{ entries: AuditInput[]; offboard?: string; result: T }>): Promise<T> {
    const now = clock.now();
    const { published, offboard, result } = await store.transaction(async (trx) => {
      const out = await fn(trx, now);
      return { published: await audit.append(out.entries, trx), offboard: out.offboard, result: out.result };
    });
    bus.publish(published);
    if (offboard !== undefined) await deps.offboard(offboard, SCIM_ACTOR);
    return result;
  }

  return {
    /** POST /Users (RFC 7644 §3.3): 409 uniqueness when the owner is a SCIM User already. */
    async create(input: UserInput): Promise<UserRecord> {
      const id = await commit(async (trx, now) => {
        const owner = await trx.selectFrom('owners').select(['status']).where('id', '=', input.userName).executeTakeFirst();
        const existing = await trx.selectFrom('scim_users').select(['id', 'deleted_at']).where('owner', '=', input.userName).executeTakeFirst();
        if (existing && existing.deleted_at === null) throw new ScimError(409, 'uniqueness', 'userName: a User with this userName exists');
        if (!existing && owner) throw new ScimError(409, 'uniqueness', 'userName: a User with this userName exists');
        // A User deleted through SCIM is provisioned anew: a new id, the owner active again.
        if (existing) await trx.deleteFrom('scim_users').where('id', '=', existing.id).execute();
        const id = randomUUID();
        const claimed = await store.owners.claim(input.userName, now, trx); // created active when new
        const inserted = await trx
          .insertInto('scim_users')
          .values({ id, owner: input.userName, external_id: input.externalId, attributes: JSON.stringify(input.profile), created_at: now, updated_at: now, deleted_at: null })
          .onConflict((oc) => oc.column('owner').doNothing())
          .executeTakeFirst();
        if (!Number(inserted.numInsertedOrUpdatedRows ?? 0)) throw new ScimError(409, 'uniqueness', 'userName: a User with this userName exists');
        const entries: AuditInput[] = [
          { type: 'owner.provisioned', actor: SCIM_ACTOR, subject: `owner:${input.userName}`, data: { scim_id: id, external_id: input.externalId, reprovisioned: !!existing } },
        ];
        const active = input.active ?? true;
        if (active && claimed.status === 'offboarded') entries.push(...(await setStatus(input.userName, true, trx, now)));
        return { entries, result: id, ...(!active ? { offboard: input.userName } : {}) };
      });
      return load(id, db);
    },

    async get(id: string): Promise<UserRecord> {
      return load(id, db);
    },

    /** GET /Users with an optional filter and paging; `total` is over all matches. */
    async list(filter: UserFilter | undefined, page: Page): Promise<{ total: number; users: UserRecord[] }> {
      const now = clock.now();
      if (filter) {
        if (filter.attribute === 'userName') {
          const owner = await store.owners.get(filter.value);
          if (owner) await adopt([owner.id], now);
        }
        const column = filter.attribute === 'userName' ? 'scim_users.owner' : filter.attribute === 'externalId' ? 'scim_users.external_id' : 'scim_users.id';
        const rows = await joined(db).where(column, '=', filter.value).orderBy('scim_users.id').execute();
        return { total: rows.length, users: rows.slice(page.startIndex - 1, page.startIndex - 1 + page.count).map((r) => recordOf(r as Joined)) };
      }
      // Owners in creation order; those deleted through SCIM are not Users any more.
      const visible = db
        .selectFrom('owners')
        .leftJoin('scim_users', 'scim_users.owner', 'owners.id')
        .where((eb) => eb.or([eb('scim_users.id', 'is', null), eb('scim_users.deleted_at', 'is', null)]));
      const { total } = await visible.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow();
      if (!page.count) return { total: Number(total), users: [] };
      const owners = await visible.select('owners.id').orderBy('owners.created_at').orderBy('owners.id').offset(page.startIndex - 1).limit(page.count).execute();
      const ids = owners.map((o) => o.id);
      if (!ids.length) return { total: Number(total), users: [] };
      await adopt(ids, now);
      const rows = await joined(db).where('scim_users.owner', 'in', ids).execute();
      const byOwner = new Map(rows.map((r) => [r.owner, recordOf(r as Joined)]));
      return { total: Number(total), users: ids.map((o) => byOwner.get(o)).filter((u): u is UserRecord => !!u) };
    },

    /**
     * PUT /Users/{id} (RFC 7644 §3.5.1): the profile and externalId replaced; userName must stay
     * (it is the owner id); `active` absent leaves the status as it is.
     */
    async replace(id: string, input: UserInput): Promise<UserRecord> {
      await commit(async (trx, now) => {
        const before = await load(id, trx);
        if (input.userName !== before.userName) throw new ScimError(400, 'mutability', 'userName: is the owner id and cannot change');
        const next: UserState = { userName: before.userName, externalId: input.externalId, active: input.active ?? before.active, profile: input.profile };
        const { entries, offboard } = await write(id, before, next, trx, now);
        return { entries, result: undefined, ...(offboard ? { offboard: before.userName } : {}) };
      });
      return load(id, db);
    },

    /** PATCH /Users/{id}: `apply` maps the current state to the new one (resource.ts applyPatch). */
    async patch(id: string, apply: (state: UserState) => UserState): Promise<UserRecord> {
      await commit(async (trx, now) => {
        const before = await load(id, trx);
        const next = apply({ userName: before.userName, externalId: before.externalId, active: before.active, profile: before.profile });
        const { entries, offboard } = await write(id, before, next, trx, now);
        return { entries, result: undefined, ...(offboard ? { offboard: before.userName } : {}) };
      });
      return load(id, db);
    },

    /**
     * DELETE /Users/{id}: offboards the owner first (idempotent: a retried DELETE after a failure
     * finds the User still there and offboards again), then the User answers 404 from then on.
     */
    async remove(id: string): Promise<void> {
      const user = await load(id, db);
      await deps.offboard(user.userName, SCIM_ACTOR);
      await commit(async (trx, now) => {
        const r = await trx.updateTable('scim_users').set({ deleted_at: now, updated_at: now }).where('id', '=', id).where('deleted_at', 'is', null).executeTakeFirst();
        if (!Number(r.numUpdatedRows)) throw scimNotFound();
        return { entries: [{ type: 'owner.deprovisioned', actor: SCIM_ACTOR, subject: `owner:${user.userName}`, data: { scim_id: id } }], result: undefined };
      });
    },
  };
}

export type ScimUsers = ReturnType<typeof createScimUsers>;
