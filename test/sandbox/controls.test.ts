import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import * as oauth from 'oauth4webapi';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.ts';
import { sandboxCommand } from '../../src/cli/sandbox.ts';
import { runWarrant } from '../helpers/process.ts';

// The sandbox's controls for people (`warrant sandbox revoke|outage|expire-tokens|status` and
// /_sandbox/revoke, /outage, /expire-tokens, /status): each acts on real grants of a real IdP,
// seen through the token endpoint and the API exactly as a client sees them.

const insecure = { [oauth.allowInsecureRequests]: true } as const;
const redirectUri = 'http://127.0.0.1:7070/oauth/callback';
const client: oauth.Client = { client_id: 'warrant' };
const clientAuth = oauth.ClientSecretBasic('warrant-sandbox-secret');

let sb: Sandbox;
let as: oauth.AuthorizationServer;

before(async () => {
  sb = await startSandbox({ accessTokenTtl: 60 });
  const issuer = new URL(sb.issuer);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
});
after(() => sb.close());

interface Grant {
  access_token: string;
  refresh_token: string;
}

/** Authorization code + PKCE as `user` (the sandbox's `login_hint` picks the account). */
async function grantFor(user = 'sandbox-user'): Promise<Grant> {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const callback = new URL(
    await sb.authorize({
      redirect_uri: redirectUri,
      scope: 'items:read offline_access',
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      login_hint: user,
    }),
  );
  const params = oauth.validateAuthResponse(as, client, callback, state);
  const res = await oauth.authorizationCodeGrantRequest(as, client, clientAuth, params, redirectUri, verifier, insecure);
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, res);
  return { access_token: tokens.access_token, refresh_token: tokens.refresh_token! };
}

async function clientCredentialsToken(): Promise<string> {
  const res = await oauth.clientCredentialsGrantRequest(as, client, clientAuth, { scope: 'items:read' }, insecure);
  return (await oauth.processClientCredentialsResponse(as, client, res)).access_token;
}

const api = (token: string) => fetch(`${sb.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${token}` } });

/** The refresh's status and OAuth error (a 2xx answer also rotates the grant's refresh token). */
async function refreshAnswer(refreshToken: string): Promise<{ status: number; error?: string; tokens?: Grant }> {
  const res = await oauth.refreshTokenGrantRequest(as, client, clientAuth, refreshToken, insecure);
  const body = (await res.json()) as { error?: string; access_token?: string; refresh_token?: string };
  return { status: res.status, error: body.error, tokens: res.ok ? (body as Grant) : undefined };
}

function control(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Response> {
  return fetch(`${sb.controlUrl}${path}`, { method, body: body === undefined ? undefined : JSON.stringify(body) });
}

test('POST /_sandbox/revoke {user} kills every grant of that user and no one else’s', async () => {
  const [alice1, alice2, bob] = await Promise.all([grantFor(), grantFor(), grantFor('bob')]);
  const res = await control('POST', '/revoke', { user: 'sandbox-user' });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { revoked: 2, clientCredentials: 0 });
  for (const g of [alice1, alice2]) {
    assert.equal((await api(g.access_token)).status, 401, 'the access token died with its grant');
    assert.deepEqual(await refreshAnswer(g.refresh_token).then((r) => [r.status, r.error]), [400, 'invalid_grant']);
  }
  assert.equal((await api(bob.access_token)).status, 200, "another user's grant lives on");
  assert.equal((await refreshAnswer(bob.refresh_token)).status, 200);
  // Nothing left to revoke: not an error, a count of 0.
  assert.deepEqual(await (await control('POST', '/revoke', { user: 'sandbox-user' })).json(), { revoked: 0, clientCredentials: 0 });
});

test('POST /_sandbox/revoke {all:true} kills every grant and client-credentials token', async () => {
  const [a, b] = await Promise.all([grantFor(), grantFor('carol')]);
  const cc = await clientCredentialsToken();
  const res = await control('POST', '/revoke', { all: true });
  assert.equal(res.status, 200);
  const out = (await res.json()) as { revoked: number; clientCredentials: number };
  assert.ok(out.revoked >= 2, `at least the two new grants: ${out.revoked}`);
  assert.ok(out.clientCredentials >= 1);
  for (const g of [a, b]) {
    assert.equal((await api(g.access_token)).status, 401);
    assert.equal((await refreshAnswer(g.refresh_token)).error, 'invalid_grant');
  }
  assert.equal((await api(cc)).status, 401);
  const status = (await (await control('GET', '/status')).json()) as { live: { grants: number; accessTokens: number } };
  assert.deepEqual([status.live.grants, status.live.accessTokens], [0, 0]);
});

test('POST /_sandbox/revoke refuses a body that names no one, or both', async () => {
  for (const body of [undefined, {}, { all: false }, { user: 'Not A User' }, { user: 'x', all: true }, { token: 'x' }]) {
    const res = await control('POST', '/revoke', body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(((await res.json()) as { error: string }).error, 'invalid_request');
  }
});

test('POST /_sandbox/outage: the token endpoint answers 503 with Retry-After for N seconds, then heals by itself', async () => {
  const g = await grantFor();
  const res = await control('POST', '/outage', { seconds: 2 });
  assert.equal(res.status, 200);
  const view = (await res.json()) as { tokenEndpointUntil: string | null; apiUntil: string | null };
  assert.ok(view.tokenEndpointUntil && Date.parse(view.tokenEndpointUntil) > Date.now());
  assert.equal(view.apiUntil, null, 'the API stays up without `api`');

  const failuresBefore = sb.stats().refreshFailures;
  const down = await oauth.refreshTokenGrantRequest(as, client, clientAuth, g.refresh_token, insecure);
  assert.equal(down.status, 503);
  assert.ok(Number(down.headers.get('retry-after')) >= 1);
  assert.equal(((await down.json()) as { error: string }).error, 'temporarily_unavailable');
  assert.equal(sb.stats().refreshFailures, failuresBefore + 1, 'counted as a refused refresh');
  assert.equal((await api(g.access_token)).status, 200);
  const status = (await (await control('GET', '/status')).json()) as { outage: { tokenEndpointUntil: string | null } };
  assert.equal(status.outage.tokenEndpointUntil, view.tokenEndpointUntil);

  await sleep(Date.parse(view.tokenEndpointUntil) - Date.now() + 100);
  const healed = await refreshAnswer(g.refresh_token);
  assert.equal(healed.status, 200, 'the refresh token was not consumed by the refused request');
  const after = (await (await control('GET', '/status')).json()) as { outage: { tokenEndpointUntil: string | null } };
  assert.equal(after.outage.tokenEndpointUntil, null);
});

test('POST /_sandbox/outage with api takes the API down too; seconds 0 ends it at once', async () => {
  const g = await grantFor();
  const view = (await (await control('POST', '/outage', { seconds: 600, api: true })).json()) as { apiUntil: string | null };
  assert.ok(view.apiUntil);
  const res = await api(g.access_token);
  assert.equal(res.status, 503);
  assert.ok(res.headers.get('retry-after'));
  assert.equal((await refreshAnswer(g.refresh_token)).status, 503);
  assert.deepEqual(await (await control('POST', '/outage', { seconds: 0 })).json(), { tokenEndpointUntil: null, apiUntil: null });
  assert.equal((await api(g.access_token)).status, 200);
  for (const body of [{}, { seconds: -1 }, { seconds: 1.5 }, { seconds: 3601 }, { seconds: 1, api: 'yes' }]) {
    assert.equal((await control('POST', '/outage', body)).status, 400, JSON.stringify(body));
  }
});

test('POST /_sandbox/expire-tokens: every access token answers 401 "expired" at once; refresh still works', async () => {
  const [a, b] = await Promise.all([grantFor(), grantFor('dave')]);
  const cc = await clientCredentialsToken();
  const res = await control('POST', '/expire-tokens');
  assert.equal(res.status, 200);
  const { expired } = (await res.json()) as { expired: number };
  assert.ok(expired >= 3, `the two grants' and the client-credentials token: ${expired}`);
  for (const token of [a.access_token, b.access_token, cc]) {
    const refused = await api(token);
    assert.equal(refused.status, 401);
    assert.match(refused.headers.get('www-authenticate') ?? '', /error="invalid_token", error_description="the access token expired"/);
  }
  const fresh = await refreshAnswer(a.refresh_token);
  assert.equal(fresh.status, 200, 'the grant is untouched');
  assert.equal((await api(fresh.tokens!.access_token)).status, 200);
  assert.deepEqual(await (await control('POST', '/expire-tokens')).json(), { expired: 1 }, 'only the newly issued one is left to expire');
});

test('GET /_sandbox/status: lifetime, outage, faults, live grants and tokens, stats', async () => {
  await control('POST', '/revoke', { all: true });
  await grantFor();
  await control('POST', '/expire-tokens');
  const g = await grantFor();
  const s = (await (await control('GET', '/status')).json()) as Record<string, unknown>;
  assert.deepEqual(Object.keys(s).sort(), ['accessTokenTtl', 'faults', 'live', 'outage', 'stats']);
  assert.equal(s.accessTokenTtl, 60);
  assert.deepEqual(s.live, { grants: 2, accessTokens: 1, refreshTokens: 2 });
  assert.deepEqual(s.outage, { tokenEndpointUntil: null, apiUntil: null });
  assert.deepEqual(s.faults, {});
  assert.equal((s.stats as { apiRequests: number }).apiRequests, sb.stats().apiRequests);
  assert.ok(g.access_token);
});

test('warrant sandbox revoke|outage|expire-tokens|status call a running sandbox', { timeout: 90_000 }, async () => {
  await control('POST', '/revoke', { all: true });
  const [alice, erin] = await Promise.all([grantFor(), grantFor('erin')]);
  const url = new URL(sb.issuer).origin;
  const cli = (...args: string[]) => runWarrant(['sandbox', ...args, '--sandbox-url', url], {});
  // Side by side (each is a Node start-up): none of them changes what another one reports.
  const [revoke, expire, outage, status] = [
    cli('revoke', '--user', 'erin', '--json'),
    cli('expire-tokens', '--json'),
    cli('outage', '--seconds', '600', '--api'),
    cli('status'),
  ];
  assert.equal(await revoke.exit(), 0, revoke.stderr());
  assert.deepEqual(JSON.parse(revoke.stdout()), { revoked: 1, clientCredentials: 0 });
  assert.equal(await expire.exit(), 0, expire.stderr());
  assert.ok((JSON.parse(expire.stdout()) as { expired: number }).expired >= 1);
  assert.equal(await outage.exit(), 0, outage.stderr());
  assert.match(outage.stdout(), /^The token endpoint answers 503 until .* \(600 s\), then heals by itself\.$/m);
  assert.match(outage.stdout(), /^The API answers 503 until /m);
  assert.equal(await status.exit(), 0, status.stderr());
  assert.match(status.stdout(), /^access-token lifetime\s+60 s$/m);
  assert.match(status.stdout(), /^token endpoint\s+(up|OUTAGE until .+)$/m);
  assert.match(status.stdout(), /^refreshRequests\s+\d+$/m);

  assert.equal((await refreshAnswer(alice.refresh_token)).status, 503, 'outage: the token endpoint is down');
  assert.equal((await api(alice.access_token)).status, 503, 'outage --api: the API is down');
  await control('POST', '/outage', { seconds: 0 });
  assert.equal((await refreshAnswer(erin.refresh_token)).error, 'invalid_grant', 'revoke --user erin');
  assert.match((await api(alice.access_token)).headers.get('www-authenticate') ?? '', /the access token expired/, 'expire-tokens');

});

/** Runs `warrant sandbox …` in this process (the same code as the command line, without a Node
 *  start-up); answers what it printed. */
async function cliOutput(args: string[]): Promise<string> {
  let out = '';
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stdout.write;
  try {
    await sandboxCommand().parseAsync(args, { from: 'user' });
  } finally {
    process.stdout.write = write;
  }
  return out;
}

test('warrant sandbox revoke --all and outage --seconds 0 --json', async () => {
  const url = new URL(sb.issuer).origin;
  const g = await grantFor();
  await control('POST', '/outage', { seconds: 600 });
  assert.deepEqual(JSON.parse(await cliOutput(['outage', '--seconds', '0', '--json', '--sandbox-url', url])), { tokenEndpointUntil: null, apiUntil: null });
  assert.match(await cliOutput(['revoke', '--all', '--sandbox-url', url]), /^Revoked [1-9]\d* grant\(s\) of every user and \d+ client-credentials token\(s\)/m);
  assert.equal((await refreshAnswer(g.refresh_token)).error, 'invalid_grant');
});

/** Runs `warrant sandbox …` in this process; answers the error it ends with. */
async function cliError(args: string[]): Promise<string> {
  const cmd = sandboxCommand().exitOverride();
  for (const sub of cmd.commands) sub.exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  try {
    await cmd.parseAsync(args, { from: 'user' });
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail(`warrant sandbox ${args.join(' ')} succeeded`);
}

test('the control commands refuse what they cannot send, and say when no sandbox answers', async () => {
  const url = new URL(sb.issuer).origin;
  assert.match(await cliError(['revoke', '--sandbox-url', url]), /either --user <account> or --all/);
  assert.match(await cliError(['revoke', '--user', 'x', '--all', '--sandbox-url', url]), /either --user <account> or --all/);
  assert.match(await cliError(['revoke', '--user', 'Bad User', '--sandbox-url', url]), /--user: a sandbox user id/);
  assert.match(await cliError(['outage', '--seconds', '1e3', '--sandbox-url', url]), /--seconds: a whole number of seconds from 0 to 3600/);
  assert.match(await cliError(['outage', '--sandbox-url', url]), /required option '--seconds <n>'/);
  assert.match(await cliError(['status', '--sandbox-url', 'ftp://x']), /must be an http\(s\) URL/);
  // A port nothing listens on (the sandbox's own, once closed).
  const gone = await startSandbox();
  const goneUrl = new URL(gone.issuer).origin;
  await gone.close();
  assert.match(await cliError(['status', '--sandbox-url', goneUrl]), /could not reach the sandbox at .*ECONNREFUSED.*is `warrant sandbox` running there\?/);
});
