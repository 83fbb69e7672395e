import { visit } from './browser.ts';
import type { Rig } from './rig.ts';

// The set-up a real deployment goes through, over Warrant's HTTP API: an alert webhook, an owner
// connecting the sandbox provider in a browser, an agent with a narrow grant.

export const DEMO_OWNER = 'alice@example.com';
/** What the owner consents to; the agent gets less. */
const CONNECT_SCOPES = ['items:read', 'items:write'];
const AGENT_SCOPES = ['items:read'];
/** Incidents an on-call tool wants: the grant is gone, the IdP is failing, it recovered. */
export const ALERT_EVENTS = ['connection.reauth_required', 'connection.refresh_failing', 'connection.recovered'];

type Say = (line: string) => void;

export async function subscribeAlerts(rig: Rig, say: Say): Promise<void> {
  const hook = await rig.admin<{ id: string; secret: string }>('POST', '/v1/webhooks', { url: `${rig.alerts.url}/alerts`, events: ALERT_EVENTS });
  rig.alerts.setSecret(hook.secret);
  say(`webhook ${hook.id} → the demo's alert receiver, for ${ALERT_EVENTS.join(', ')}`);
}

/** Where a hop went, in words. */
function describeHop(rig: Rig, where: string): string {
  const url = new URL(where);
  const site = url.origin === rig.warrantUrl ? 'Warrant' : url.origin === rig.sandboxOrigin ? 'sandbox IdP' : url.origin;
  const path = url.pathname;
  const what =
    site === 'Warrant' && path.startsWith('/connect/')
      ? 'the connect link: binds the session to this browser, sends it on to the IdP (PKCE S256, state)'
      : site === 'sandbox IdP' && path.startsWith('/oauth/interaction/')
        ? 'login + consent as sandbox-user (approved)'
        : site === 'sandbox IdP' && path.startsWith('/oauth/auth')
          ? 'the authorization endpoint'
          : site === 'Warrant' && path.startsWith('/oauth/callback')
            ? 'Warrant checks the state and exchanges the code'
            : '';
  return `${site} ${path}${what ? `: ${what}` : ''}`;
}

/** The owner opens the connect link; answers the new connection's id. */
export async function connectOwner(rig: Rig, say: Say): Promise<string> {
  const session = await rig.admin<{ id: string; authorize_url: string }>('POST', '/v1/connect-sessions', {
    provider: 'sandbox',
    owner: DEMO_OWNER,
    scopes: CONNECT_SCOPES,
  });
  say(`connect session ${session.id} for ${DEMO_OWNER}, scopes ${CONNECT_SCOPES.join(' ')}; the owner opens its link:`);
  const page = await visit(session.authorize_url, (hop) => say(`  ${String(hop.status).padEnd(3)} ${describeHop(rig, hop.where)}`));
  const state = await rig.admin<{ status: string; connection_id?: string; error?: string }>('GET', `/v1/connect-sessions/${session.id}`);
  if (state.status !== 'completed' || !state.connection_id) {
    throw new Error(`the connect flow did not complete: session ${state.status}${state.error ? ` (${state.error})` : ''}; last page ${page.status}: ${page.text.slice(0, 200)}`);
  }
  const seen = page.text.length > 160 ? `${page.text.slice(0, 160).replace(/\s+\S*$/, '')} …` : page.text;
  say(`  the owner's browser shows: "${seen}"`);
  const conn = await rig.admin<{ id: string; status: string; expires_at: string | null; scopes: string[] }>('GET', `/v1/connections/${state.connection_id}`);
  const ttl = conn.expires_at ? `${Math.max(0, Math.round((Date.parse(conn.expires_at) - Date.now()) / 1000))} s` : 'no expiry';
  say(`connection ${conn.id}: ${conn.status}, scopes ${conn.scopes.join(' ')}, access token expires in ${ttl} (Warrant keeps it fresh)`);
  return conn.id;
}

/** An agent allowed to read through the proxy, nothing else; answers its key (kept in memory, never printed). */
export async function createAgent(rig: Rig, connection: string, say: Say): Promise<{ id: string; key: string }> {
  const agent = await rig.admin<{ id: string; api_key: string }>('POST', '/v1/agents', {
    name: 'overnight-batch',
    owner: DEMO_OWNER,
    grants: [{ connection, scopes: AGENT_SCOPES }],
  });
  say(`agent ${agent.id} "overnight-batch": grant ${AGENT_SCOPES.join(' ')} on ${connection} (its key is shown once; the demo keeps it in memory)`);
  // The grant is narrower than the connection: a write is refused before the upstream is called.
  const write = await fetch(`${rig.warrantUrl}/v1/proxy/${connection}/items`, {
    method: 'POST',
    headers: { authorization: `Bearer ${agent.api_key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'not allowed' }),
    signal: AbortSignal.timeout(15_000),
  });
  const problem = (await write.json().catch(() => ({}))) as { code?: string };
  say(`  POST /items through the proxy → ${write.status} ${problem.code ?? ''} (the grant is read-only)`);
  return { id: agent.id, key: agent.api_key };
}
