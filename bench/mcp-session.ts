// A long MCP session through the gateway, with the official SDK client's own OAuth: the same scene as
// test/mcp/sdk-oauth.test.ts (an SDK MCP server behind the sandbox IdP with 5 s rotating tokens,
// registered at /mcp/up; the SDK client registers with Warrant, gets its token with PKCE and
// `resource`, the owner approves once), then tool calls for --minutes. Warrant's own access tokens
// live --downstream-ttl seconds, so the client refreshes them by itself along the way.
//
//   node --import tsx bench/mcp-session.ts [--minutes 2] [--interval-ms 200] [--downstream-ttl 15]
//                                          [--upstream-ttl 5] [--json]
//
// Everything runs on loopback in this process (SQLite in a temporary directory). Prints tool calls
// made, auth failures (must be 0), client re-authentications (0), upstream refreshes against
// expiries, downstream refreshes. Exit code 1 when a failure or a re-authentication happened.
import { parseArgs } from 'node:util';
import { connectWithOwnOAuth, LoopbackOAuthClient, runSession, startScene, type SessionReport } from '../test/mcp/sdk-oauth-harness.ts';

const usage = 'usage: node --import tsx bench/mcp-session.ts [--minutes 2] [--interval-ms 200] [--downstream-ttl 15] [--upstream-ttl 5] [--json]';
const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '2' },
    'interval-ms': { type: 'string', default: '200' },
    'downstream-ttl': { type: 'string', default: '15' },
    'upstream-ttl': { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
  },
});
const num = (name: string, v: string | undefined, min: number): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) {
    console.error(`--${name} must be a number ≥ ${min}\n${usage}`);
    process.exit(2);
  }
  return n;
};
const minutes = num('minutes', values.minutes, 0.1);
const intervalMs = num('interval-ms', values['interval-ms'], 0);
const downstreamTtl = num('downstream-ttl', values['downstream-ttl'], 2);
const upstreamTtl = num('upstream-ttl', values['upstream-ttl'], 2);

function format(r: SessionReport, registrations: number): string {
  return [
    `session                ${r.seconds} s, upstream tokens ${upstreamTtl} s (rotating), Warrant tokens ${downstreamTtl} s`,
    `tool calls             ${r.toolCalls}`,
    `auth failures          ${r.authFailures}${r.failures.length ? `  (${r.failures.join(' | ')})` : ''}`,
    `client re-auths        ${r.clientReauthentications}  (registrations in all: ${registrations})`,
    `upstream refreshes     ${r.upstreamRefreshes} for ${r.upstreamExpiries} expiries, ${r.upstreamRefreshesDue} due refreshing ahead  (failed ${r.upstreamRefreshFailures}, reuse detected ${r.upstreamReuseDetected})`,
    `downstream refreshes   ${r.downstreamRefreshes} for ${r.downstreamExpiries} expiries  (failed ${r.downstreamRefreshFailures}, 401s seen by the client ${r.endpoint401})`,
  ].join('\n');
}

const scene = await startScene({ downstreamAccessTokenTtl: downstreamTtl, upstreamAccessTokenTtl: upstreamTtl });
const oauthClient = await LoopbackOAuthClient.start();
let exitCode = 0;
try {
  const { client } = await connectWithOwnOAuth(scene, oauthClient);
  console.error(`connected: ${oauthClient.counters.registrations} registration, ${oauthClient.counters.authorizationRedirects} authorization; calling tools for ${minutes} min`);
  const report = await runSession(scene, oauthClient, client, {
    durationMs: minutes * 60_000,
    intervalMs,
    upstreamTtlSeconds: upstreamTtl,
    downstreamTtlSeconds: downstreamTtl,
    onProgress: (r) => console.error(`  ${r.seconds} s: ${r.toolCalls} calls, ${r.authFailures} failures, ${r.upstreamRefreshes} upstream / ${r.downstreamRefreshes} downstream refreshes`),
  });
  await client.close();
  console.log(values.json ? JSON.stringify({ ...report, registrations: oauthClient.counters.registrations }) : format(report, oauthClient.counters.registrations));
  if (report.authFailures > 0 || report.clientReauthentications > 0 || report.downstreamRefreshFailures > 0 || report.upstreamRefreshFailures > 0) exitCode = 1;
} finally {
  await oauthClient.close();
  await scene.close();
}
process.exit(exitCode);
