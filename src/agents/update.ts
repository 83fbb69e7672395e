import { WarrantError, invalidRequest, notFound } from '../errors/index.ts';
import type { AuditEntry, AuditInput, AuditLog, EventBus } from '../events/index.ts';
import type { AgentRow, Db, GrantRow, Store } from '../store/index.ts';
import type { AgentsRepo } from './repo.ts';
import { scopeList } from './view.ts';
import { tagColumns, tagPatchProblem, tagsOf, type TagPatch } from '../util/tags.ts';

// PATCH /v1/agents/{id}: an agent's grants are narrowed in place and its status switched between
// active and suspended, without a new key. Narrowing only: a grant's scopes may lose members, its
// token export may be turned off, a grant may be removed; anything that would give the agent more
// than it holds (a scope it lacks, a connection it has no grant on, token export turned on) is
// refused with `invalid_request` naming the field, since widening is a new decision that belongs
// to creating an agent (with its owner's consent to the connection). The agent row is locked for
// the change (PostgreSQL `FOR UPDATE`; SQLite transactions are serialized), so two concurrent
// narrowings cannot add up to a widening of either.

/** PATCH /v1/agents/{id}, wire names. */
export interface UpdateAgentInput {
  /**
   * The grants the agent keeps, each narrowed or as it is; a grant left out is removed.
   * `token_export` left out keeps the grant's value.
   */
  grants?: { connection: string; scopes: string[]; token_export?: boolean }[];
  /** `suspended`: its key is refused (`agent_suspended`); `active`: a suspended agent works again. */
  status?: 'active' | 'suspended';
  /** Tags: a member left out stays; `null` clears an id; `labels` replaces every label. */
  end_user?: string | null;
  organization?: string | null;
  labels?: Record<string, string>;
}

export interface AgentUpdateDeps {
  store: Store;
  audit: AuditLog;
  bus: EventBus;
  clock: { now(): number };
  repo: AgentsRepo;
  /** Drops the agent's cached key (and tells other instances, when the service can). */
  invalidate(keyId: string): void | Promise<void>;
}

interface GrantChange {
  connection: string;
  scopes: string[];
  removed_scopes: string[];
  token_export: boolean;
}

/** The grants after `wanted`, checked to narrow `current`; undefined when nothing changes. */
export function narrowGrants(current: GrantRow[], wanted: NonNullable<UpdateAgentInput['grants']>, oauthClient: boolean) {
  const byConnection = new Map(current.map((g) => [g.connection_id, g]));
  const seen = new Set<string>();
  const kept: { row: GrantRow; scopes: string[]; tokenExport: boolean }[] = [];
  for (const [i, g] of wanted.entries()) {
    const row = byConnection.get(g.connection);
    if (!row) {
      throw invalidRequest(
        `grants[${i}].connection`,
        `the agent has no grant on ${g.connection}: PATCH only narrows or removes grants; a new grant needs a new agent (POST /v1/agents)`,
      );
    }
    if (seen.has(g.connection)) throw invalidRequest(`grants[${i}].connection`, `connection ${g.connection} is listed twice`);
    seen.add(g.connection);
    const held = scopeList(row.scopes);
    const scopes = [...new Set(g.scopes)];
    const widening = scopes.filter((s) => !held.includes(s));
    if (widening.length) {
      throw invalidRequest(
        `grants[${i}].scopes`,
        `would widen the grant on ${g.connection} with ${widening.join(', ')} (it holds ${held.join(', ') || 'no scopes'}): PATCH only narrows; a wider grant needs a new agent`,
      );
    }
    const exported = Number(row.token_export) === 1;
    if (g.token_export === true && !exported) {
      throw invalidRequest(`grants[${i}].token_export`, `the grant on ${g.connection} does not allow token export; PATCH cannot turn it on`);
    }
    // Kept in the order the grant had them: the policy picks the first granted scope that matches.
    kept.push({ row, scopes: held.filter((s) => scopes.includes(s)), tokenExport: g.token_export ?? exported });
  }
  if (!kept.length && !oauthClient) {
    throw invalidRequest('grants', 'at least one grant must remain; to take every grant away revoke the agent (DELETE /v1/agents/{id})');
  }
  const removed = current.filter((g) => !seen.has(g.connection_id));
  const narrowed: GrantChange[] = [];
  for (const k of kept) {
    const held = scopeList(k.row.scopes);
    const exported = Number(k.row.token_export) === 1;
    if (k.scopes.length === held.length && k.tokenExport === exported) continue;
    narrowed.push({ connection: k.row.connection_id, scopes: k.scopes, removed_scopes: held.filter((s) => !k.scopes.includes(s)), token_export: k.tokenExport });
  }
  return { kept, removed, narrowed };
}

export function createAgentUpdate(deps: AgentUpdateDeps) {
  const { store, audit, bus, clock, repo } = deps;

  async function lockedRow(id: string, trx: Db): Promise<AgentRow> {
    let q = trx.selectFrom('agents').selectAll().where('id', '=', id);
    if (store.dialect === 'postgres') q = q.forUpdate();
    const row = await q.executeTakeFirst();
    if (!row) throw notFound(`agent ${id}`);
    return row;
  }

  return {
    /**
     * Narrows grants and/or switches status, in one transaction with its audit entries
     * (`agent.narrowed`, `agent.suspended`, `agent.reactivated`). Nothing to change: no entry.
     * The key keeps working for what is left, at once on this instance and within the key cache
     * bound on the others.
     */
    async update(id: string, input: UpdateAgentInput, actor = 'admin'): Promise<AgentRow> {
      const tagPatch: TagPatch = {
        ...(input.end_user !== undefined ? { end_user: input.end_user } : {}),
        ...(input.organization !== undefined ? { organization: input.organization } : {}),
        ...(input.labels !== undefined ? { labels: input.labels } : {}),
      };
      const retag = Object.keys(tagPatch).length > 0;
      if (input.grants === undefined && input.status === undefined && !retag) throw invalidRequest('body', 'give grants, status, tags (end_user, organization, labels), or several');
      const tagProblem = tagPatchProblem(tagPatch);
      if (tagProblem) throw invalidRequest(tagProblem.field, tagProblem.detail);
      const now = clock.now();
      const { row, entries } = await store.transaction(async (trx) => {
        const row = await lockedRow(id, trx);
        if (row.status === 'revoked') throw new WarrantError('conflict', `agent ${id} is revoked; a revoked agent cannot be changed`, { agent: id });
        const inputs: AuditInput[] = [];
        const subject = `agent:${id}`;
        if (input.grants !== undefined) {
          const current = (await repo.grantsOf([id], trx)).get(id) ?? [];
          const { kept, removed, narrowed } = narrowGrants(current, input.grants, row.oauth_client !== null);
          for (const k of kept) {
            if (narrowed.some((n) => n.connection === k.row.connection_id)) await repo.updateGrant(k.row.id, k.scopes, k.tokenExport, trx);
          }
          await repo.deleteGrants(
            removed.map((g) => g.id),
            trx,
          );
          if (narrowed.length || removed.length) {
            inputs.push({
              type: 'agent.narrowed',
              actor,
              subject,
              data: { name: row.name, owner: row.owner, narrowed, grants_removed: removed.map((g) => ({ connection: g.connection_id, scopes: scopeList(g.scopes) })) },
            });
          }
        }
        let status = row.status;
        if (input.status === 'suspended' && row.status === 'active' && (await repo.markSuspended(id, now, ['admin'], trx))) {
          status = 'suspended';
          inputs.push({ type: 'agent.suspended', actor, subject, data: { name: row.name, owner: row.owner, reasons: ['admin'] } });
        } else if (input.status === 'active' && row.status === 'suspended' && (await repo.markReactivated(id, trx))) {
          status = 'active';
          inputs.push({
            type: 'agent.reactivated',
            actor,
            subject,
            data: { name: row.name, owner: row.owner, was_suspended_for: scopeList(row.suspended_reasons ?? '[]'), suspended_at: row.suspended_at === null ? null : new Date(Number(row.suspended_at)).toISOString() },
          });
        }
        if (retag) {
          const before = tagsOf(row);
          const after = tagsOf({ ...row, ...tagColumns({ ...before, ...tagPatch }) });
          if (JSON.stringify(tagColumns(before)) !== JSON.stringify(tagColumns(after))) {
            await store.tags.set('agents', id, tagPatch, trx);
            inputs.push({ type: 'agent.tags_updated', actor, subject, data: { name: row.name, owner: row.owner, ...after, previous: before } });
          }
        }
        const entries: AuditEntry[] = await audit.append(inputs, trx);
        // Read back inside the transaction: what this change committed, not a later one.
        return { row: inputs.length ? await lockedRow(id, trx) : { ...row, status }, entries };
      });
      if (entries.length) {
        await deps.invalidate(row.key_id);
        bus.publish(entries);
      }
      return row;
    },
  };
}

