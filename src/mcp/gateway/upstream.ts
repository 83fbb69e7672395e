import type { Logger } from 'pino';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult, ListToolsResult } from '@modelcontextprotocol/sdk/types.js';
import { WarrantError, isWarrantError } from '../../errors/index.ts';
import type { TokenService } from '../../tokens/index.ts';
import { bearerParams, scopesOf, type GuardedFetch } from './discovery.ts';

// Warrant as an MCP client of a remote server, one per connection (the owner's upstream grant).
// Every request asks the token service for the access token (refresh ahead, single flight across
// instances); an upstream 401 refreshes once (`rejectedToken`: many callers, one refresh) and
// retries; a second 401 is `upstream_auth_failed`, never a loop. Only Warrant's upstream token goes
// upstream; nothing of the upstream's auth comes back down (answers are relayed as MCP results).

/** Deadline of one upstream MCP request, in ms. */
export const UPSTREAM_REQUEST_MS = 30_000;

export function createUpstreamClients(deps: { tokens: TokenService; guard: GuardedFetch; logger: Logger }) {
  const clients = new Map<string, Promise<Client>>();

  function authedFetch(connectionId: string): typeof fetch {
    return (async (input: string | URL | Request, init: RequestInit = {}) => {
      const send = (token: string) => {
        const headers = new Headers(init.headers);
        headers.set('authorization', `Bearer ${token}`);
        return deps.guard.fetch(input, { ...init, headers });
      };
      const first = await deps.tokens.getFreshToken(connectionId);
      const res = await send(first.accessToken);
      if (res.status === 403) {
        // RFC 6750 §3.1 insufficient_scope: no refresh helps; the owner must consent to more (relay, step-up.ts).
        const challenge = res.headers.get('www-authenticate');
        if (bearerParams(challenge).error === 'insufficient_scope') {
          await res.body?.cancel().catch(() => undefined);
          throw new WarrantError('scope_insufficient', 'the MCP server refused the call for a missing scope', { required_scope: scopesOf(challenge) ?? [] });
        }
      }
      if (res.status !== 401) return res;
      await res.body?.cancel().catch(() => undefined);
      // RFC 6750 §3.1 invalid_token: refresh once (joined by every caller that saw the same token), retry once.
      const second = await deps.tokens.getFreshToken(connectionId, { rejectedToken: first.accessToken, actor: 'mcp-gateway' });
      const again = await send(second.accessToken);
      if (again.status === 401) {
        await again.body?.cancel().catch(() => undefined);
        throw new WarrantError('upstream_auth_failed', 'the MCP server refused a freshly refreshed token', { connection: connectionId });
      }
      return again;
    }) as typeof fetch;
  }

  async function open(connectionId: string, url: string): Promise<Client> {
    const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: authedFetch(connectionId) });
    const client = new Client({ name: 'warrant-gateway', version: '1' });
    await client.connect(transport, { timeout: UPSTREAM_REQUEST_MS });
    return client;
  }

  function clientFor(connectionId: string, url: string): Promise<Client> {
    let c = clients.get(connectionId);
    if (!c) {
      const opening = open(connectionId, url);
      c = opening;
      clients.set(connectionId, opening);
      const drop = () => {
        if (clients.get(connectionId) === opening) clients.delete(connectionId);
      };
      opening.then((client) => void (client.onclose = drop), drop);
    }
    return c;
  }

  /** Runs `work` on the connection's client; a session the upstream lost is opened again once. */
  async function withClient<T>(connectionId: string, url: string, work: (c: Client) => Promise<T>): Promise<T> {
    const client = await clientFor(connectionId, url);
    try {
      return await work(client);
    } catch (err) {
      if (isWarrantError(err)) throw err;
      // The upstream may have dropped the session (404, restart): one fresh session, then give up.
      deps.logger.info({ connection: connectionId, err: (err as Error).message?.slice(0, 200) }, 'mcp upstream call failed; opening a new session once');
      if (clients.get(connectionId)) {
        clients.delete(connectionId);
        void client.close().catch(() => undefined);
      }
      return work(await clientFor(connectionId, url));
    }
  }

  return {
    listTools: (connectionId: string, url: string, cursor?: string): Promise<ListToolsResult> =>
      withClient(connectionId, url, (c) => c.listTools(cursor ? { cursor } : undefined, { timeout: UPSTREAM_REQUEST_MS })),
    callTool: (connectionId: string, url: string, name: string, args: Record<string, unknown> | undefined): Promise<CallToolResult> =>
      withClient(connectionId, url, async (c) => (await c.callTool({ name, arguments: args }, undefined, { timeout: UPSTREAM_REQUEST_MS })) as CallToolResult),
    /** Drops the connection's client (its grant changed, the server was deleted). */
    forget(connectionId: string): void {
      const c = clients.get(connectionId);
      clients.delete(connectionId);
      void c?.then((x) => x.close()).catch(() => undefined);
    },
    async close(): Promise<void> {
      const all = [...clients.values()];
      clients.clear();
      await Promise.all(all.map((c) => c.then((x) => x.close()).catch(() => undefined)));
    },
  };
}

export type UpstreamClients = ReturnType<typeof createUpstreamClients>;
