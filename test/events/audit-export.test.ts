import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Command } from 'commander';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { auditCommand } from '../../src/cli/audit.ts';
import { createAuditHmac, readChainKey, type AuditInput } from '../../src/events/index.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { eventually, startLifecycle, sleep, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { storeKinds } from '../helpers/stores.ts';

// Issue 11 item 5: sensitive values are keyed HMACs, never plaintext; the log exports as JSON Lines
// and as OCSF events that validate against the OCSF schema of their class (generated from the OCSF
// repository: test/fixtures/ocsf/); a cursor resumes an export without gaps or duplicates while
// entries are being written.

const require = createRequire(import.meta.url);
const schemas: Record<number, object> = {
  6003: require('../fixtures/ocsf/api_activity.schema.json') as object,
  3001: require('../fixtures/ocsf/account_change.schema.json') as object,
};
const ajv = new Ajv2020({ allErrors: true, strict: false });
const validators = Object.fromEntries(Object.entries(schemas).map(([k, s]) => [k, ajv.compile(s)]));

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** Every event type Warrant writes (docs/audit.md, docs/webhooks.md), with data of its shape. */
const SAMPLES: AuditInput[] = [
  { type: 'agent.created', actor: 'admin', subject: 'agent:agt_1', data: { name: 'bot', owner: 'alice@example.com', key_id: 'k1', grants: [] } },
  { type: 'agent.revoked', actor: 'admin', subject: 'agent:agt_1', data: { name: 'bot', owner: 'alice@example.com', key_id: 'k1' } },
  { type: 'agent.suspended', actor: 'scheduler', subject: 'agent:agt_1', data: { reasons: ['idle'] } },
  { type: 'agent.reactivated', actor: 'admin', subject: 'agent:agt_1' },
  { type: 'agent.narrowed', actor: 'admin', subject: 'agent:agt_1', data: { removed: ['items:write'] } },
  { type: 'agent.orphaned', actor: 'scheduler', subject: 'agent:agt_1', data: { reasons: ['owner_offboarded'] } },
  { type: 'owner.offboarded', actor: 'admin', subject: 'owner:alice@example.com', data: { agents: 3 } },
  { type: 'owner.provisioned', actor: 'scim', subject: 'owner:bob@example.com' },
  { type: 'owner.deprovisioned', actor: 'scim', subject: 'owner:bob@example.com' },
  { type: 'connection.revoked', actor: 'admin', subject: 'connection:con_1', data: { owner: 'alice@example.com', revoked: true, verified: false, verification: 'unsupported' } },
  { type: 'connection.revocation_unverified', actor: 'admin', subject: 'connection:con_1', data: { owner: 'alice@example.com' } },
  { type: 'connection.reauth_required', actor: 'scheduler', subject: 'connection:con_1', data: { provider: 'sandbox', owner: 'alice@example.com', error: 'invalid_grant' } },
  { type: 'connection.refreshed', actor: 'scheduler', subject: 'connection:con_1', data: { provider: 'sandbox', rotated: true } },
  { type: 'connection.shared', actor: 'admin', subject: 'connection:con_1', data: { owner: 'alice@example.com', shared_with: 'bob@example.com' } },
  { type: 'credential.expiring', actor: 'scheduler', subject: 'connection:con_1', data: { owner: 'alice@example.com', days_left: 2 } },
  { type: 'rotation.completed', actor: 'scheduler', subject: 'connection:con_1', data: { kind: 'refresh_token' } },
  { type: 'rotation.failed', actor: 'scheduler', subject: 'connection:con_1', data: { kind: 'private_key', reason: 'idp_refused' } },
  { type: 'admin_key.created', actor: 'admin', subject: 'admin_key:ak_1', data: { role: 'read' } },
  { type: 'webhook.created', actor: 'admin', subject: 'webhook:wh_1', data: { origin: 'https://siem.example', events: ['*'] } },
  { type: 'mcp.tool_call', actor: 'agent:agt_1', subject: 'connection:con_1', data: { tool: 'call_api', arguments_hash: 'hmac-sha256:x', outcome: 'error', code: 'policy_denied', duration_ms: 3.2, request_id: 'req_1' } },
  { type: 'mcp.token_refused', actor: 'anonymous', data: { endpoint: '/mcp/warrant', status: 401, reason: 'invalid_credential', request_id: 'req_2' } },
  { type: 'authz.token_exchanged', actor: 'agent:agt_2', subject: 'agent:agt_1', data: { owner: 'alice@example.com', client_id: 'c1', jti: 'j1', scopes: ['a'] } },
  { type: 'authz.token_exchange_refused', actor: 'client:c1', data: { client_id: 'c1', error: 'invalid_target' } },
  { type: 'authz.enterprise_grant', actor: 'idp:https://idp.example', subject: 'agent:agt_1', data: { client_id: 'c1', owner: 'alice@example.com' } },
  { type: 'some.future_event', actor: 'system' },
];

for (const kind of storeKinds) {
  describe(`audit export and keyed values (${kind.name})`, { skip: kind.skip }, () => {
    let env: LifecycleEnv;
    let base: string;
    let agentKey: string;
    let sampleFrom: number;
    const dir = mkdtempSync(join(tmpdir(), 'warrant-audit-export-'));

    const get = (path: string, headers: Record<string, string> = admin) => fetch(`${base}${path}`, { headers, signal: AbortSignal.timeout(20_000) });
    async function page(query: string) {
      const res = await get(`/v1/audit/export?${query}`);
      assert.equal(res.status, 200, await res.clone().text());
      const lines = (await res.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
      assert.equal(Number(res.headers.get('warrant-export-count')), lines.length);
      return { lines, next: res.headers.get('warrant-next-cursor') ?? undefined, caughtUp: res.headers.get('warrant-export-caught-up') === 'true', res };
    }
    async function cli(...args: string[]) {
      let err = '';
      const program = new Command('warrant').exitOverride();
      program.addCommand(auditCommand({ stdout: () => {}, stderr: (t) => void (err += t) }));
      process.exitCode = undefined;
      await program.parseAsync(['node', 'warrant', 'audit', ...args, '--url', base, '--token', ADMIN_TOKEN]);
      const code = Number(process.exitCode ?? 0);
      process.exitCode = undefined;
      return { code, err };
    }
    const allSeqs = async () => (await env.warrant.store.db.selectFrom('audit_events').select('seq').orderBy('seq').execute()).map((r) => Number(r.seq));

    before(async () => {
      env = await startLifecycle({ store: kind.name });
      base = `http://127.0.0.1:${(env.warrant.app.server.address() as { port: number }).port}`;
      const conn = await env.connect();
      const created = await env.warrant.app.inject({ method: 'POST', url: '/v1/agents', headers: admin, payload: { name: 'exporter-test', owner: 'alice@example.com', grants: [{ connection: conn, scopes: ['items:read'] }] } });
      assert.equal(created.statusCode, 201, created.body);
      agentKey = created.json().api_key;
      // Two proxied calls over loopback: one through, one refused by policy.
      for (const path of ['/items', '/nope']) {
        const res = await fetch(`${base}/v1/proxy/${conn}${path}`, { method: path === '/items' ? 'GET' : 'DELETE', headers: { authorization: `Bearer ${agentKey}` } });
        await res.arrayBuffer();
      }
      // Proxied calls are written in batches off the request path (audit-queue.ts).
      await eventually(async () => (await env.warrant.audit.query({ type: 'proxy.call' })).length >= 2 || undefined);
      sampleFrom = (await env.warrant.audit.append(SAMPLES))[0]!.seq;
    });
    after(async () => {
      await env?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('client IPs are keyed HMACs in the entry and in both exports, never the address; the key is the store’s (same value on every instance)', async () => {
      const chain = (await readChainKey(env.warrant.store.vault))!;
      const hmac = createAuditHmac(chain.key);
      const calls = await env.warrant.audit.query({ type: 'proxy.call' });
      assert.ok(calls.length >= 2);
      for (const c of calls) {
        assert.match(String(c.data.client_ip), /^hmac-sha256:[A-Za-z0-9_-]{43}$/);
        // Whoever holds the key ring can still ask "was it this address?"
        assert.equal(c.data.client_ip, hmac('client_ip', '127.0.0.1'));
        assert.equal(hmac('client_ip', '::ffff:127.0.0.1'), c.data.client_ip, 'an IPv4-mapped address is the same client');
      }
      assert.notEqual(hmac('token', '127.0.0.1'), hmac('client_ip', '127.0.0.1'), 'one key per kind: values of one kind do not match another');
      const other = createAuditHmac((await import('node:crypto')).createSecretKey(randomBytes(32)));
      assert.notEqual(other('client_ip', '127.0.0.1'), hmac('client_ip', '127.0.0.1'), 'keyed: another store hashes it otherwise');
      for (const format of ['jsonl', 'ocsf']) {
        const text = await (await get(`/v1/audit/export?format=${format}&limit=100000`)).text();
        assert.ok(!text.includes('127.0.0.1'), `${format}: no client address`);
        assert.ok(!text.includes(agentKey) && !text.includes(agentKey.slice(-20)), `${format}: no agent key`);
        assert.ok(text.includes(String(calls[0]!.data.client_ip)));
      }
    });

    test('OCSF export: every event validates against the JSON Schema of its class (API Activity 6003, Account Change 3001)', async () => {
      const { lines } = await page('format=ocsf&limit=100000');
      const entries = await env.warrant.audit.query({ limit: 1000 });
      assert.equal(lines.length, entries.length);
      const seen = new Set<string>();
      for (const [i, ev] of lines.entries()) {
        const validate = validators[ev.class_uid];
        assert.ok(validate, `class ${ev.class_uid} of ${ev.metadata?.event_code}`);
        assert.ok(validate(ev), `${ev.metadata.event_code}: ${ajv.errorsText(validate.errors)}`);
        const e = entries[i]!;
        assert.equal(ev.type_uid, ev.class_uid * 100 + ev.activity_id);
        assert.deepEqual([ev.metadata.uid, ev.metadata.sequence, ev.time, ev.metadata.version], [e.id, e.seq, e.at, '1.8.0']);
        assert.deepEqual(ev.metadata.product, { name: 'Warrant', vendor_name: 'Warrant' });
        assert.deepEqual(ev.unmapped.data, e.data);
        seen.add(e.type);
      }
      for (const s of SAMPLES) assert.ok(seen.has(s.type), s.type);
      // The schemas refuse what OCSF does not allow: a missing required object, an attribute it does not define.
      const call = lines.find((ev) => ev.class_uid === 6003)!;
      assert.equal(validators[6003]!({ ...call, api: undefined }), false);
      assert.equal(validators[6003]!({ ...call, src_endpoint: { ip: 'hmac-sha256:x' } }), false, 'an HMAC is no ip');
      assert.equal(validators[3001]!({ ...lines.find((ev) => ev.class_uid === 3001)!, user: { uid: 'u', typo: 1 } }), false);
      const byType = (type: string, where: (ev: Record<string, any>) => boolean = (ev) => ev.metadata.sequence >= sampleFrom) =>
        lines.find((ev) => ev.metadata.event_code === type && where(ev))!;
      const pick = (ev: Record<string, any>) => [ev.class_uid, ev.activity_id, ev.status_id, ev.severity_id];
      assert.deepEqual(pick(byType('agent.created')), [3001, 1, 1, 1]);
      assert.deepEqual(byType('agent.created').user, { uid: 'agt_1', type_id: 4, type: 'Service', name: 'bot' });
      assert.deepEqual(pick(byType('owner.offboarded')), [3001, 5, 1, 1]);
      assert.deepEqual(pick(byType('connection.revoked', (ev) => ev.unmapped.data.verified === false)), [3001, 6, 2, 4]);
      assert.deepEqual(byType('connection.revoked', (ev) => ev.unmapped.data.verified === false).user, { uid: 'alice@example.com', type_id: 1, type: 'User', credential_uid: 'con_1' });
      assert.deepEqual(pick(byType('rotation.failed')), [3001, 3, 2, 3]);
      assert.deepEqual(pick(byType('connection.refreshed', (ev) => ev.unmapped.data.rotated === true)), [3001, 3, 1, 1]);
      assert.deepEqual(pick(byType('proxy.call', (ev) => ev.http_request.http_method === 'GET')), [6003, 2, 1, 1]);
      const refused = byType('proxy.call', (ev) => ev.http_request.http_method === 'DELETE');
      assert.deepEqual(pick(refused), [6003, 4, 2, 2]);
      assert.equal(refused.http_response.code, 403);
      assert.match(refused.src_endpoint.uid, /^hmac-sha256:/);
      assert.equal(refused.metadata.correlation_uid, refused.unmapped.data.request_id);
      assert.deepEqual(pick(byType('mcp.token_refused')), [6003, 99, 2, 2]);
      assert.deepEqual(pick(byType('some.future_event')), [6003, 99, 1, 1]);
    });

    test('a cursor resumes without gaps or duplicates while entries are being written', async () => {
      let writing = true;
      let written = 0;
      const writer = (async () => {
        while (written < 2000) {
          const n = 1 + Math.floor(Math.random() * 25);
          await env.warrant.audit.append(Array.from({ length: n }, (_, i) => ({ type: 'proxy.call', actor: 'agent:agt_w', data: { method: 'GET', path: '/w', status: 200, n: written + i } })));
          written += n;
          if (written % 5 === 0) await sleep(1);
        }
        writing = false;
      })();
      const got: number[] = [];
      let cursor: string | undefined;
      const deadline = Date.now() + 120_000;
      for (;;) {
        assert.ok(Date.now() < deadline, 'the exporter caught up in time');
        const wasWriting = writing;
        const p = await page(`limit=97${cursor ? `&cursor=${cursor}` : ''}`);
        got.push(...p.lines.map((l) => l.seq as number));
        cursor = p.next ?? cursor;
        if (!wasWriting && p.caughtUp) break;
      }
      await writer;
      assert.deepEqual(got, await allSeqs(), 'every entry once, in order');

      // An exporter that lost its connection mid-page resumes from its last line's seq and hash.
      const whole = (await page('limit=100000')).lines;
      const mid = whole[Math.floor(whole.length / 2)]!;
      const rest = await page(`limit=100000&cursor=${mid.seq}-${String(mid.hash).slice(0, 16)}`);
      assert.deepEqual(rest.lines.map((l) => l.id), whole.slice(whole.indexOf(mid) + 1).map((l) => l.id));
      assert.ok(rest.caughtUp);
      // Caught up: the same cursor again answers nothing new, and keeps its place.
      const again = await page(`cursor=${rest.next}`);
      assert.deepEqual([again.lines.length, again.next, again.caughtUp], [0, rest.next, true]);
    });

    test('since, the jsonl record, and refusals: bad cursor or time (invalid_request naming the field), a cursor whose entry changed (conflict), no credential', async () => {
      const whole = (await page('limit=100000')).lines;
      const mid = whole[Math.floor(whole.length / 3)]!;
      assert.deepEqual(Object.keys(mid), ['seq', 'id', 'at', 'type', 'actor', 'subject', 'data', 'prev_hash', 'hash']);
      const since = Date.parse(mid.at);
      for (const q of [`since=${since}`, `since=${encodeURIComponent(new Date(since).toISOString())}`]) {
        const p = await page(`${q}&limit=100000`);
        assert.deepEqual(p.lines.map((l) => l.id), whole.filter((l) => Date.parse(l.at) >= since).map((l) => l.id));
      }
      for (const [q, field] of [['cursor=abc', 'query.cursor'], ['cursor=12-zz', 'query.cursor'], ['since=yesterday', 'query.since'], ['format=csv', 'query.format'], ['limit=0', 'query.limit']] as const) {
        const res = await get(`/v1/audit/export?${q}`);
        assert.equal(res.status, 400, q);
        const body = await res.json();
        assert.deepEqual([body.code, body.field], ['invalid_request', field], q);
      }
      const res = await get(`/v1/audit/export?cursor=${mid.seq}-${'0'.repeat(16)}`);
      assert.equal(res.status, 409);
      assert.equal((await res.json()).code, 'conflict');
      assert.equal((await get('/v1/audit/export', {})).status, 401);
      const { paths } = await (await get('/openapi.json')).json();
      assert.ok(paths['/v1/audit/export'].get, 'documented in the OpenAPI document');
    });

    test('warrant audit export: --out and --cursor-file resume exactly after the last event written; the cursor goes to stderr', async () => {
      const out = join(dir, `${kind.name}.jsonl`);
      const cursorFile = join(dir, `${kind.name}.cursor`);
      const first = await cli('export', '--out', out, '--cursor-file', cursorFile, '--limit', '250');
      assert.equal(first.code, 0, first.err);
      const cursor = readFileSync(cursorFile, 'utf8').trim();
      assert.match(first.err, new RegExp(`next cursor: ${cursor}`));
      await env.warrant.audit.append(Array.from({ length: 40 }, (_, i) => ({ type: 'agent.created', actor: 'admin', subject: `agent:agt_late${i}` })));
      const second = await cli('export', '--out', out, '--cursor-file', cursorFile, '--limit', '7');
      assert.equal(second.code, 0, second.err);
      assert.match(second.err, /exported 40 entries/);
      const lines = readFileSync(out, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { seq: number });
      assert.deepEqual(lines.map((l) => l.seq), await allSeqs());
      const ocsf = join(dir, `${kind.name}.ocsf.jsonl`);
      assert.equal((await cli('export', '--format', 'ocsf', '--out', ocsf, '--cursor', cursor)).code, 0);
      const events = readFileSync(ocsf, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
      assert.equal(events.length, 40);
      for (const ev of events) assert.ok(validators[ev.class_uid]!(ev), ajv.errorsText(validators[ev.class_uid]!.errors));
      const bad = await cli('export', '--cursor', 'nonsense');
      assert.equal(bad.code, 1);
    });
  });
}
