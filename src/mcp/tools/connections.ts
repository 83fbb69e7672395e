import { z } from 'zod';
import { WarrantError } from '../../errors/index.ts';
import { grantFor } from '../../agents/index.ts';
import type { ConnectionRow, Store } from '../../store/index.ts';
import { iso } from '../../util/time.ts';
import { MCP_SCOPES } from '../caller.ts';
import { defineTool, type ToolContext } from '../tool-kit.ts';

// list_connections and connection_status: what the calling agent may reach, never a token.

export const connectionId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { message: 'is a connection id (con_…)' });

const statusValue = z.enum(['active', 'reauth_required', 'revoked', 'error']);

export interface ConnectionToolDeps {
  store: Pick<Store, 'connections'>;
  /** Where an agent-facing problem points for a connection: its admin URL, never a re-connect link. */
  statusUrl(row: Pick<ConnectionRow, 'id'>): string;
}

/** The caller's grant on `id` and the row; a connection it holds no grant on is `policy_denied`, whether it exists or not. */
export async function grantedConnection(deps: Pick<ConnectionToolDeps, 'store'>, ctx: ToolContext, id: string) {
  const grant = grantFor(ctx.caller.agent, id);
  if (!grant) throw new WarrantError('policy_denied', `this agent has no grant for connection ${id}; list_connections names the ones it has`, { connection: id });
  const row = await deps.store.connections.get(id);
  // A grant on a connection deleted since: as good as none.
  if (!row) throw new WarrantError('policy_denied', `connection ${id} no longer exists`, { connection: id });
  return { grant, row };
}

export function connectionTools(deps: ConnectionToolDeps) {
  const listConnections = defineTool({
    name: 'list_connections',
    title: 'List my connections',
    description:
      'Lists the connections (authorized accounts at API providers such as GitHub or Google) this agent may call through Warrant, ' +
      'with each one\'s status and the scopes this agent may use on it. Use an `id` from here as `connection` in call_api and connection_status. ' +
      'A connection whose status is not `active` cannot be called until its owner fixes it (see connection_status). Tokens are never shown.',
    scope: MCP_SCOPES.read,
    input: z.strictObject({}),
    output: z.object({
      connections: z.array(
        z.object({
          id: z.string(),
          provider: z.string(),
          status: statusValue,
          scopes: z.array(z.string()).describe('the scopes this agent may use on the connection'),
          expires_at: z.string().nullable().describe('when the current access token expires (Warrant refreshes it ahead of time)'),
        }),
      ),
    }),
    annotations: { readOnlyHint: true, openWorldHint: false },
    async run(_args, ctx) {
      const connections = [];
      for (const g of ctx.caller.agent.grants) {
        const row = await deps.store.connections.get(g.connection_id);
        if (!row) continue;
        connections.push({ id: row.id, provider: row.provider, status: row.status, scopes: [...g.scopes], expires_at: iso(row.expires_at) });
      }
      return { connections };
    },
  });

  const connectionStatus = defineTool({
    name: 'connection_status',
    title: "A connection's status",
    description:
      'Tells whether a connection can be used now: its status, the last error Warrant saw, and whether it needs its owner to connect again. ' +
      'When `needs_reconnect` is true, calls fail with `reauth_required` until the owner re-connects: tell the user, and point them to `reauth_url`; ' +
      'the owner receives the re-connect link itself from Warrant (it is never given to agents).',
    scope: MCP_SCOPES.read,
    input: z.strictObject({ connection: connectionId.describe('the connection id, from list_connections') }),
    output: z.object({
      id: z.string(),
      provider: z.string(),
      status: statusValue,
      scopes: z.array(z.string()),
      expires_at: z.string().nullable(),
      last_refreshed_at: z.string().nullable(),
      last_error: z.string().nullable(),
      needs_reconnect: z.boolean(),
      /** The grant is announced to end soon (absolute lifetime): the owner should re-connect before it does. */
      expiring: z.boolean(),
      reauth_url: z.string().nullable().describe("the connection in Warrant's admin API, for the owner; null while nothing is to be done"),
    }),
    annotations: { readOnlyHint: true, openWorldHint: false },
    subjectOf: (a) => `connection:${a.connection}`,
    async run(args, ctx) {
      const { grant, row } = await grantedConnection(deps, ctx, args.connection);
      const needsReconnect = row.status === 'reauth_required';
      const expiring = row.expiry_notice !== null && row.status === 'active';
      return {
        id: row.id,
        provider: row.provider,
        status: row.status,
        scopes: [...grant.scopes],
        expires_at: iso(row.expires_at),
        last_refreshed_at: iso(row.last_refreshed_at),
        last_error: row.last_error,
        needs_reconnect: needsReconnect,
        expiring,
        reauth_url: needsReconnect || expiring ? deps.statusUrl(row) : null,
      };
    },
  });

  return [listConnections, connectionStatus];
}
