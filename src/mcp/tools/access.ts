import { z } from 'zod';
import { WarrantError, invalidRequest } from '../../errors/index.ts';
import type { AuditInput } from '../../events/index.ts';
import type { ConnectFlow } from '../../tokens/index.ts';
import type { Provider } from '../../providers/index.ts';
import type { Store } from '../../store/index.ts';
import { MCP_SCOPES } from '../caller.ts';
import { defineTool } from '../tool-kit.ts';
import { connectionId, grantedConnection } from './connections.ts';

// request_access: the agent asks; a person decides. It starts a connect session (the single-use,
// browser-bound start URL of tokens/connect-start.ts) for the owner to open: a new connection to a
// provider, or the same provider account with more scopes (a step-up). Nothing is approved here:
// the grant is the owner's consent at the IdP, and the agent's use of the new connection is an
// admin's grant (POST /v1/agents/{id}/grants), as for any connection. A re-connect of a dead grant
// is not started here: its link reaches the owner only (tokens/reconnect.ts).

const scopeName = z.string().min(1).max(200).regex(/^[\x21-\x7e]+$/, { message: 'is a scope name, without spaces' });

export interface AccessToolDeps {
  store: Pick<Store, 'connections'>;
  connect: Pick<ConnectFlow, 'createSession'>;
  catalog: Map<string, Provider>;
  /** Written with the session, in one go with the tool's own audit entry (webhooks tell the owner). */
  audit(entry: AuditInput): Promise<unknown>;
}

const scopesOf = (json: string): string[] => {
  try {
    const v: unknown = JSON.parse(json);
    return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : [];
  } catch {
    return [];
  }
};

export function accessTool(deps: AccessToolDeps) {
  return defineTool({
    name: 'request_access',
    title: 'Ask the owner for access',
    description:
      'Asks the owner (the person this agent works for) to grant access: to a provider not connected yet (give `provider` and `scopes`), ' +
      'or more scopes on an existing connection, e.g. after a `scope_insufficient` answer (give `connection` and the missing `scopes`). ' +
      'Returns a link for the owner to open in their browser: show it to the user and wait; nothing is granted until they consent, ' +
      'and an admin must then let this agent use the new connection. The link works once and expires at `expires_at`. ' +
      'For a connection whose status is reauth_required, do not call this: the owner already received a re-connect link from Warrant.',
    scope: MCP_SCOPES.request,
    input: z
      .strictObject({
        provider: z.string().regex(/^[a-z0-9-]{1,64}$/, { message: 'is a provider id' }).optional().describe('a provider id (provider_detail), for a new connection'),
        connection: connectionId.optional().describe('an existing connection id, to add scopes to it'),
        scopes: z.array(scopeName).min(1).max(50).describe('the scopes to ask for; for a step-up, the missing ones (those held are kept)'),
        reason: z.string().max(500).optional().describe('one sentence for the owner: why the access is needed'),
      })
      .refine((a) => (a.provider === undefined) !== (a.connection === undefined), { message: 'give either provider (a new connection) or connection (a step-up), not both', path: ['provider'] }),
    output: z.object({
      kind: z.enum(['new_connection', 'step_up']),
      provider: z.string(),
      owner: z.string().describe('who must open the link'),
      scopes: z.array(z.string()).describe('every scope the consent asks for'),
      link: z.string().describe('for the owner to open in a browser; single use'),
      expires_at: z.string(),
      session: z.string().describe('the connect session id'),
    }),
    annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    subjectOf: (a) => (a.connection ? `connection:${a.connection}` : undefined),
    async run(args, ctx) {
      const { agent } = ctx.caller;
      let provider: string;
      let environment: string | undefined;
      let owner = agent.owner;
      let scopes = args.scopes;
      let params: Record<string, string> | undefined;
      if (args.connection) {
        const { row } = await grantedConnection(deps, ctx, args.connection);
        if (row.status === 'reauth_required') {
          throw new WarrantError('conflict', `connection ${row.id} needs a re-connect; its owner has been sent the link (connection_status tells more)`, { connection: row.id });
        }
        if (row.status === 'revoked') throw new WarrantError('conflict', `connection ${row.id} is revoked; ask for a new connection with provider`, { connection: row.id });
        const held = scopesOf(row.requested_scopes);
        provider = row.provider;
        environment = row.environment;
        // The connection's owner consents (a shared connection's owner may not be the agent's).
        owner = row.owner;
        scopes = [...new Set([...held, ...args.scopes])];
        params = JSON.parse(row.params) as Record<string, string>;
      } else {
        provider = args.provider!;
        if (!deps.catalog.has(provider)) throw invalidRequest('arguments.provider', `no provider ${provider}; provider_detail and list_connections name known ones`);
      }
      const session = await deps.connect.createSession({ provider, ...(environment ? { environment } : {}), owner, scopes, ...(params ? { params } : {}) });
      await deps.audit({
        type: 'access.requested',
        actor: `agent:${agent.id}`,
        subject: args.connection ? `connection:${args.connection}` : `owner:${owner}`,
        // The link is a capability: never in the audit log (its session id is enough to follow it).
        data: { provider, owner, scopes, session: session.id, kind: args.connection ? 'step_up' : 'new_connection', ...(args.reason ? { reason: args.reason } : {}) },
      });
      return {
        kind: args.connection ? ('step_up' as const) : ('new_connection' as const),
        provider,
        owner,
        scopes,
        link: session.connect_url,
        expires_at: session.expires_at,
        session: session.id,
      };
    },
  });
}
