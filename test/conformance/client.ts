// The "client under test" the MCP conformance suite runs for its auth/* scenarios
// (`@modelcontextprotocol/conformance`, see run.ts): the suite starts a mock MCP server and a mock
// authorization server, then runs this with the server's URL as the last argument,
// MCP_CONFORMANCE_SCENARIO and, for some scenarios, MCP_CONFORMANCE_CONTEXT (JSON: a
// pre-registered client_id / client_secret, or client_id / private_key_pem for private_key_jwt).
//
// Here the client is Warrant's MCP gateway. This boots a Warrant in-process (embedded SQLite in a
// temp dir, loopback allowed to the gateway), registers the server (POST /v1/mcp-servers), plays the
// owner through the connect link (the mock authorization server authorizes without a page), then,
// as an agent holding a Warrant token for /mcp/conf, runs initialize, tools/list and tools/call
// through the gateway with the SDK client. A step-up (a tool result asking the owner to consent to
// more scopes) is followed once. Exit 0 when the tool call succeeded, 1 otherwise.
//
// The client-credentials scenarios (SEP-1046: auth/client-credentials-basic, -jwt) are an admin
// registering the server for a machine grant instead: `grant_type: client_credentials` with the
// context's client and the owner named, so Warrant asks for the token itself and there is no consent.
import pino from 'pino';
import * as oauth from 'oauth4webapi';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { Warrant } from '../../src/warrant.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { authorizationUrl, authorizeAsOwner, discover, insecure, registerPublicClient } from '../authz/helpers.ts';
import { playOwner, startGatewayWarrant } from '../mcp/mock-auth.ts';

/** The client id the suite's basic-cimd scenario expects of a client using a metadata document. */
export const CONFORMANCE_CLIENT_METADATA_URL = 'https://conformance-test.local/client-metadata.json';

const OWNER = 'owner@conformance.example';
const NAME = 'conf';
const REDIRECT = 'http://127.0.0.1:53682/callback';
/** The whole run's deadline: the suite's own timeout (run.ts passes 60 s) kills us later. */
const DEADLINE_MS = 50_000;

const log = (msg: string, extra?: unknown) => console.log(`[warrant-conformance] ${msg}${extra === undefined ? '' : ` ${JSON.stringify(extra)}`}`);

interface Context {
  client_id?: string;
  client_secret?: string;
  /** private_key_jwt (auth/client-credentials-jwt): a PKCS#8 PEM key and its alg (ES256). */
  private_key_pem?: string;
  signing_algorithm?: string;
}

/**
 * Whether the admin registers the server for a machine grant: a private key always means one; a
 * secret alone is as ambiguous as the context (auth/pre-registration gives the same shape for the
 * authorization code flow), so the scenario's name, which the suite passes, says which.
 */
const machineGrant = (context: Context) => !!context.private_key_pem || /^auth\/client-credentials-/.test(process.env.MCP_CONFORMANCE_SCENARIO ?? '');

async function run(warrant: Warrant, base: string, serverUrl: string, context: Context): Promise<boolean> {
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

  // 1. The admin registers the server: Warrant discovers its auth and identifies itself there.
  const registered = await warrant.app.inject({
    method: 'POST',
    url: '/v1/mcp-servers',
    headers: admin,
    payload: {
      url: serverUrl,
      name: NAME,
      ...(context.client_id ? { client_id: context.client_id } : {}),
      ...(context.client_secret ? { client_secret: context.client_secret } : {}),
      ...(context.private_key_pem ? { private_key: context.private_key_pem } : {}),
      ...(machineGrant(context) ? { grant_type: 'client_credentials', owner: OWNER } : {}),
    },
  });
  if (registered.statusCode !== 201) {
    log(`registration refused (${registered.statusCode})`, registered.json());
    return false;
  }
  log('registered', registered.json());

  // 2. The owner consents through an ordinary connect session.
  async function connect(scopes: string[] = []): Promise<void> {
    const session = await warrant.app.inject({ method: 'POST', url: '/v1/connect-sessions', headers: admin, payload: { provider: `mcp-${NAME}`, owner: OWNER, scopes } });
    if (session.statusCode !== 201) throw new Error(`connect session refused: ${session.body}`);
    await followConnectLink(session.json().authorize_url as string, session.json().id as string);
  }
  async function followConnectLink(link: string, sessionId?: string): Promise<void> {
    await playOwner(link);
    const id = sessionId ?? /^\/connect\/([^/]+)/.exec(new URL(link).pathname)![1]!;
    const s = await warrant.connect.getSession(id);
    if (s.status !== 'completed') throw new Error(`the connect session ended ${s.status}${s.error ? ` (${s.error})` : ''}`);
    log('owner connected', { session: id, connection: s.connection_id });
  }
  // A machine grant's connection was made at registration, with no consent.
  if (!machineGrant(context)) await connect();

  // 3. An agent of the owner gets a Warrant token for /mcp/conf (authorization code + PKCE + resource).
  const as = await discover(base, base);
  const client = await registerPublicClient(as, REDIRECT);
  const verifier = oauth.generateRandomCodeVerifier();
  const url = await authorizationUrl(as, client, { redirectUri: REDIRECT, resource: `${base}/mcp/${NAME}`, verifier, state: 's', scope: 'mcp' });
  const { callback } = await authorizeAsOwner(base, url, OWNER);
  const params = oauth.validateAuthResponse(as, client, callback, 's');
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, insecure));

  // 4. The agent's MCP session through the gateway.
  const mcp = new Client({ name: 'warrant-conformance-agent', version: '1' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp/${NAME}`), { requestInit: { headers: { authorization: `Bearer ${tokens.access_token}` } } }));
  try {
    /** The link of a result that asks the owner to consent (again, or to more scopes), if it is one. */
    const ownerLinkOf = (text: string | undefined): string | undefined => {
      try {
        const problem = JSON.parse(text ?? '') as { connect_url?: string; reconnect_url?: string };
        return problem.connect_url ?? problem.reconnect_url;
      } catch {
        return undefined;
      }
    };
    let stepUps = 0;
    for (;;) {
      let link: string | undefined;
      try {
        const tools = await mcp.listTools();
        log('tools/list', tools.tools.map((t) => t.name));
        const result = (await mcp.callTool({ name: tools.tools[0]?.name ?? 'test-tool', arguments: {} })) as CallToolResult;
        const texts = result.content.map((c) => (c.type === 'text' ? c.text : undefined));
        log('tools/call', { isError: result.isError === true, content: texts.map((t) => t?.slice(0, 300)) });
        if (result.isError !== true) return true;
        link = texts.map(ownerLinkOf).find(Boolean);
      } catch (err) {
        log('MCP request failed', (err as Error).message.slice(0, 500));
        // A list has no tool result: the gateway puts the problem in the JSON-RPC error's data.
        const data = (err as { data?: { connect_url?: string; reconnect_url?: string } }).data;
        link = data?.connect_url ?? data?.reconnect_url;
      }
      // The owner follows the link once (a step-up or a re-connect); a second one is a loop.
      if (!link || stepUps++ >= 1) return false;
      log('following the owner link of the result');
      await followConnectLink(link);
    }
  } finally {
    await mcp.close().catch(() => undefined);
  }
}

async function main(): Promise<number> {
  const serverUrl = process.argv.at(-1);
  if (!serverUrl || !URL.canParse(serverUrl)) {
    console.error('usage: client.ts <mcp-server-url> (run by the conformance suite, see run.ts)');
    return 2;
  }
  const context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT ?? '{}') as Context;
  log(`scenario ${process.env.MCP_CONFORMANCE_SCENARIO ?? '?'} against ${serverUrl}`);
  const logger = pino({ level: process.env.WARRANT_CONFORMANCE_LOG ?? 'warn' }, pino.destination(2));
  // The suite's mock servers listen on localhost: the gateway may reach loopback (mock-auth.ts).
  const { warrant, base, cleanup } = await startGatewayWarrant({ WARRANT_CLIENT_METADATA_URL: CONFORMANCE_CLIENT_METADATA_URL }, logger);
  let ok = false;
  try {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no result within ${DEADLINE_MS} ms`)), DEADLINE_MS);
    });
    ok = await Promise.race([run(warrant, base, serverUrl, context), deadline]).finally(() => clearTimeout(timer));
  } catch (err) {
    log('failed', (err as Error).stack?.slice(0, 1000));
  } finally {
    await cleanup().catch(() => undefined);
  }
  log(ok ? 'done: the tool call went through the gateway' : 'done: the tool call did not succeed');
  return ok ? 0 : 1;
}

process.exitCode = await main();
// Nothing of Warrant may keep the process alive past its result.
setTimeout(() => process.exit(process.exitCode), 2000).unref();
