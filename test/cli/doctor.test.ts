import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startSandbox } from '../../src/sandbox/index.ts';
import { startLifecycle } from '../helpers/lifecycle.ts';
import { runWarrant } from '../helpers/process.ts';

// `warrant doctor` against the real sandbox, each fault planted in a definition (or the sandbox's
// clock) and found in the CLI's own output.

interface Report {
  ok: boolean;
  checks: { check: string; subject: string; verdict: string; detail: string; fix: string }[];
}

const YEAR = 365 * 24 * 3600;
const PROD_SECRET = 'prod-client-secret-never-printed';

/** The table line for a check and subject (columns are aligned, so matched by words). */
function line(stdout: string, verdict: string, check: string, subject: string): string | undefined {
  return stdout.split('\n').find((l) => new RegExp(`^${verdict}\\s+${check}\\s+${subject}\\s`).test(l));
}

test('warrant doctor: a clean sandbox configuration is all ok (exit 0); a wrong token_url, a production client on sandbox endpoints and a catalog lifetime longer than the IdP gives are errors (exit 1)', { timeout: 240_000 }, async () => {
  const life = await startLifecycle({
    // The IdP issues 60 s tokens; its grants live a year, so nothing is about to die.
    sandbox: { accessTokenTtl: 60, refreshTokenTtl: YEAR },
    providers: [{ extends: 'sandbox', id: 'sandbox-hour', token_lifetime: 3600 }],
  });
  try {
    // The faulty definitions, for the CLI only (the server read the file at start): the wrong
    // endpoint needs the sandbox's own URLs, known only now.
    const wrongTokenUrl = `${life.sandbox.issuer}/token-v0`;
    writeFileSync(
      life.providersFile,
      stringify([
        life.sandbox.providerDefinition('sandbox'),
        { extends: 'sandbox', id: 'sandbox-hour', token_lifetime: 3600 },
        { extends: 'sandbox', id: 'wrong-token-url', environments: { production: { token_url: wrongTokenUrl } } },
        { extends: 'sandbox', id: 'prod-client', client_id: 'prod-app', client_secret: '${env:PROD_SECRET}' },
      ]),
    );
    const clean = await life.connect();
    const hourly = await life.connectTo('sandbox-hour');

    const ok = runWarrant(['doctor', '--provider', 'sandbox'], life.env);
    assert.equal(await ok.exit(), 0, `${ok.stdout()}\n${ok.stderr()}`);
    const rows = ok.stdout().split('\n').slice(1).filter((l) => /^(ok|warn|error)\s/.test(l));
    for (const check of ['discovery', 'client', 'clock']) assert.ok(line(ok.stdout(), 'ok', check, 'sandbox/production'), `${check} ok:\n${ok.stdout()}`);
    for (const check of ['status', 'scopes', 'token-lifetime', 'grant-lifetime']) assert.ok(line(ok.stdout(), 'ok', check, `sandbox/production/${clean}`), `${check} ok:\n${ok.stdout()}`);
    assert.ok(rows.length >= 7 && rows.every((l) => l.startsWith('ok ')), ok.stdout());
    assert.match(ok.stdout(), /^0 error\(s\), 0 warning\(s\), \d+ ok$/m);

    const all = runWarrant(['doctor'], { ...life.env, PROD_SECRET });
    assert.equal(await all.exit(), 1, all.stderr());
    const out = all.stdout();
    assert.match(line(out, 'error', 'discovery', 'wrong-token-url/production') ?? '', /token_url .*\/oauth\/token-v0 differs from the IdP's token_endpoint .*\/oauth\/token\s+set environments\.production\.token_url to /, out);
    assert.match(line(out, 'error', 'client', 'prod-client/production') ?? '', /does not know client prod-app \(401 invalid_client\): client of another environment\?/, out);
    assert.match(line(out, 'error', 'token-lifetime', `sandbox-hour/production/${hourly}`) ?? '', /access tokens live 60 s but the catalog says 3600 s/, out);
    assert.ok(line(out, 'ok', 'client', 'sandbox/production'), 'the clean entry stays ok beside the faulty ones');
    assert.ok(!out.includes(PROD_SECRET) && !all.stderr().includes(PROD_SECRET), 'the client secret is never printed');
    assert.ok(!out.includes('warrant-sandbox-secret'), "the sandbox client's secret is never printed");

    const one = runWarrant(['doctor', '--connection', hourly, '--json'], life.env);
    assert.equal(await one.exit(), 1, one.stderr());
    const report = JSON.parse(one.stdout()) as Report;
    assert.equal(report.ok, false);
    const lifetime = report.checks.find((c) => c.check === 'token-lifetime');
    assert.deepEqual(
      lifetime && { subject: lifetime.subject, verdict: lifetime.verdict, fix: lifetime.fix },
      { subject: `sandbox-hour/production/${hourly}`, verdict: 'error', fix: "set token_lifetime: 60 in sandbox-hour's definition" },
    );
    assert.ok(report.checks.every((c) => c.subject.startsWith('sandbox-hour/')), 'only that connection and its provider');
  } finally {
    await life.cleanup();
  }
});

test('warrant doctor: an IdP clock 300 s ahead is an error (--json, exit 1)', { timeout: 120_000 }, async () => {
  const sandbox = await startSandbox({ clockSkewSeconds: 300 });
  const dir = mkdtempSync(join(tmpdir(), 'warrant-doctor-'));
  try {
    const providers = join(dir, 'sandbox.yaml');
    writeFileSync(providers, stringify(sandbox.providerDefinition('sandbox')));
    const p = runWarrant(['doctor', '--provider', 'sandbox', '--json'], { WARRANT_PROVIDERS: providers, WARRANT_DATA_DIR: join(dir, 'data') });
    assert.equal(await p.exit(), 1, p.stderr());
    const report = JSON.parse(p.stdout()) as Report;
    assert.equal(report.ok, false);
    const clock = report.checks.find((c) => c.check === 'clock');
    assert.equal(clock?.verdict, 'error', p.stdout());
    assert.equal(clock.subject, 'sandbox/production');
    assert.match(clock.detail, /clock is 30\d s ahead of this machine's \(Date header\): tokens look expired or not yet valid/);
    assert.match(clock.fix, /NTP/);
    // Everything else about this sandbox is right.
    assert.deepEqual(report.checks.filter((c) => c.verdict !== 'ok').map((c) => c.check), ['clock']);
  } finally {
    await sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('warrant sandbox --clock-skew moves the time of its Date header (what the clock check reads); a bad value is refused', { timeout: 120_000 }, async () => {
  const p = runWarrant(['sandbox', '--port', '0', '--clock-skew', '-120'], {});
  try {
    const [, issuer] = await p.waitFor(/^# Warrant sandbox: IdP (\S+)/m);
    const res = await fetch(`${issuer}/.well-known/openid-configuration`);
    await res.body?.cancel();
    const skew = (Date.parse(res.headers.get('date')!) - Date.now()) / 1000;
    assert.ok(skew > -123 && skew < -117, `Date is about 120 s behind: ${skew}`);
  } finally {
    await p.kill('SIGKILL');
  }
  const bad = runWarrant(['sandbox', '--port', '0', '--clock-skew', '5m'], {});
  assert.equal(await bad.exit(), 1);
  assert.match(bad.stderr(), /warrant: --clock-skew: a whole number of seconds/);
});

test('warrant doctor against personas: the real google-drive and xero entries pointed at `sandbox --persona` are ok; a wrong token_url and a client of another environment are errors', { timeout: 120_000 }, async () => {
  const google = await startSandbox({ persona: 'google' });
  const xero = await startSandbox({ persona: 'xero' });
  const dir = mkdtempSync(join(tmpdir(), 'warrant-doctor-'));
  try {
    const drive = google.persona!.providerDefinition({ id: 'google-drive' });
    const providers = join(dir, 'personas.yaml');
    const env = { WARRANT_PROVIDERS: providers, WARRANT_DATA_DIR: join(dir, 'data') };
    writeFileSync(providers, stringify([drive, xero.persona!.providerDefinition()]));
    const ok = runWarrant(['doctor'], env);
    assert.equal(await ok.exit(), 0, `${ok.stdout()}\n${ok.stderr()}`);
    for (const subject of ['google-drive/production', 'xero/production']) {
      for (const check of ['discovery', 'client', 'clock']) assert.ok(line(ok.stdout(), 'ok', check, subject), `${check} ${subject} ok:\n${ok.stdout()}`);
    }

    const production = drive.environments.production!;
    writeFileSync(
      providers,
      stringify([
        { ...drive, environments: { production: { ...production, token_url: `${production.token_url}-v3` } } },
        { ...xero.persona!.providerDefinition(), client_id: 'xero-production-app' },
      ]),
    );
    const bad = runWarrant(['doctor'], env);
    assert.equal(await bad.exit(), 1, bad.stderr());
    const out = bad.stdout();
    assert.match(line(out, 'error', 'discovery', 'google-drive/production') ?? '', /token_url .*-v3 differs from the IdP's token_endpoint/, out);
    assert.match(line(out, 'error', 'client', 'xero/production') ?? '', /does not know client xero-production-app .*client of another environment\?/, out);
  } finally {
    await google.close();
    await xero.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
