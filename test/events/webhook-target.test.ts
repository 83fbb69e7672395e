import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { lookup as dnsLookup, LookupAddress } from 'node:dns';
import { ADMIN_TOKEN, captureLogger, startTestWarrant } from '../helpers/app.ts';
import { openTestStore, type TestStore } from '../helpers/stores.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { eventually, sleep } from '../helpers/lifecycle.ts';
import { createAuditLog, createEventBus, createWebhooks, type AuditLog, type Webhooks, type WebhooksOptions } from '../../src/events/index.ts';
import { isNonPublicAddress, parseNetworks } from '../../src/util/addresses.ts';
import { loadConfig, ConfigError } from '../../src/config/index.ts';
import { isWarrantError } from '../../src/errors/index.ts';

// Regression (security review, low 18): `POST /v1/webhooks` accepted any http(s) URL, so a webhook
// could make Warrant POST to cloud metadata (169.254.169.254), loopback services or the private
// network, from Warrant's own network position; and a name checked once could later resolve elsewhere.

const PUBLIC_V4 = '93.184.215.14';

describe('non-public addresses', () => {
  test('loopback, private, link-local, CGNAT, unspecified, reserved and their IPv6 forms are non-public', () => {
    const nonPublic = [
      '127.0.0.1', '127.255.255.254', '10.0.0.1', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254',
      '100.100.100.200', '0.0.0.0', '0.1.2.3', '192.0.0.192', '198.18.0.1', '224.0.0.1', '255.255.255.255', '240.0.0.1',
      '::', '::1', '[::1]', 'fe80::1', 'fe80::1%eth0', 'febf::1', 'fc00::1', 'fd12:3456::1', 'ff02::1', '2001:db8::1',
      '::ffff:127.0.0.1', '::ffff:a9fe:a9fe', '::ffff:10.0.0.1', '64:ff9b::a9fe:a9fe', '64:ff9b::10.1.1.1', '2002:a9fe:a9fe::1',
      '::127.0.0.1', 'not-an-ip',
    ];
    for (const a of nonPublic) assert.equal(isNonPublicAddress(a), true, a);
    const publicOnes = ['8.8.8.8', '1.1.1.1', PUBLIC_V4, '172.32.0.1', '172.15.255.255', '100.128.0.1', '169.255.0.1', '2606:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1', '2a00:1450::1'];
    for (const a of publicOnes) assert.equal(isNonPublicAddress(a), false, a);
  });

  test('allowed networks: CIDRs and bare addresses, matched in IPv4-mapped form too; bad entries refused by config', () => {
    const allowed = parseNetworks(['127.0.0.0/8', '::1', ' fd00::/8 ', '']);
    assert.equal(allowed.size, 3);
    for (const a of ['127.0.0.1', '::ffff:127.0.0.2', '::1', 'fd00::5']) assert.equal(allowed.has(a), true, a);
    for (const a of ['10.0.0.1', '169.254.169.254', '::2', 'fe80::1']) assert.equal(allowed.has(a), false, a);
    assert.deepEqual(loadConfig({ WARRANT_WEBHOOK_ALLOWED_NETWORKS: '10.0.0.0/8, 192.168.1.7' }).webhookAllowedNetworks, ['10.0.0.0/8', '192.168.1.7']);
    assert.deepEqual(loadConfig({}).webhookAllowedNetworks, []);
    for (const bad of ['10.0.0.0/33', 'intranet', '10.0.0.0/8/1', 'fd00::/129']) {
      assert.throws(() => loadConfig({ WARRANT_WEBHOOK_ALLOWED_NETWORKS: bad }), (err: unknown) => err instanceof ConfigError && /WARRANT_WEBHOOK_ALLOWED_NETWORKS/.test(err.message), bad);
    }
  });
});

describe('POST /v1/webhooks refuses non-public targets unless their network is allowed', () => {
  const refusedUrls = [
    'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
    'http://127.0.0.1:7070/v1/agents',
    'http://0x7f.1/hook', // 127.0.0.1 spelled otherwise
    'http://2130706433/hook',
    'http://0.0.0.0:8080/',
    'http://10.0.0.5/hook',
    'http://172.20.1.1/hook',
    'https://192.168.0.10/hook',
    'http://100.100.100.200/latest/meta-data/',
    'http://[::1]:8080/',
    'http://[fe80::1]/',
    'http://[fd00::1]/',
    'http://[::ffff:169.254.169.254]/',
    'http://[::]:80/',
    'http://localhost:9/hook', // a name that resolves to loopback (the system resolver, /etc/hosts)
  ];

  async function post(w: Awaited<ReturnType<typeof startTestWarrant>>, url: string) {
    return w.warrant.app.inject({ method: 'POST', url: '/v1/webhooks', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, payload: { url, events: ['*'] } });
  }

  test('by default every private, loopback, link-local, unspecified address and name resolving to one is invalid_request naming url', async () => {
    const w = await startTestWarrant();
    try {
      for (const url of refusedUrls) {
        const res = await post(w, url);
        assert.equal(res.statusCode, 400, `${url} → ${res.body}`);
        assert.equal(res.json().code, 'invalid_request');
        assert.equal(res.json().field, 'url', res.body);
        assert.match(res.json().detail, /private, loopback, link-local or reserved/);
        assert.match(res.json().detail, /WARRANT_WEBHOOK_ALLOWED_NETWORKS/);
      }
      assert.equal((await w.warrant.webhooks.list()).length, 0, 'a refused webhook leaves nothing behind');
      const ok = await post(w, `https://${PUBLIC_V4}/hook`);
      assert.equal(ok.statusCode, 201, ok.body);
    } finally {
      await w.cleanup();
    }
  });

  test('WARRANT_WEBHOOK_ALLOWED_NETWORKS lets exactly the listed networks through', async () => {
    const w = await startTestWarrant({ WARRANT_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.0/8,::1/128,10.0.0.0/8' });
    try {
      for (const url of ['http://127.0.0.1:7070/hook', 'http://0x7f.1/hook', 'http://[::1]:8080/', 'http://10.0.0.5/hook', 'http://localhost:9/hook']) {
        const res = await post(w, url);
        assert.equal(res.statusCode, 201, `${url} → ${res.body}`);
      }
      for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://192.168.0.10/', 'http://[fe80::1]/']) {
        const res = await post(w, url);
        assert.equal(res.statusCode, 400, `${url} → ${res.body}`);
        assert.equal(res.json().field, 'url');
      }
    } finally {
      await w.cleanup();
    }
  });
});

describe('the delivery worker checks the address it connects to', () => {
  let ts: TestStore;
  let receiver: Receiver;
  let audit: AuditLog;
  const running: Webhooks[] = [];
  const logs = captureLogger('debug');
  /** A resolver under the test's control: what `rebind.test` and `metadata.test` resolve to right now. */
  const dns = new Map<string, string>();
  const lookup = ((host: string, options: { all?: boolean }, cb: (err: Error | null, addresses: LookupAddress[] | string, family?: number) => void) => {
    const address = dns.get(host);
    if (!address) return cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }), []);
    const family = address.includes(':') ? 6 : 4;
    return options.all ? cb(null, [{ address, family }]) : cb(null, address, family);
  }) as unknown as typeof dnsLookup;

  const start = (extra: Partial<WebhooksOptions> = {}) => {
    const w = createWebhooks({ store: ts.store, bus: createEventBus(), audit, logger: logs.logger, lookup, retry: { baseMs: 50, factor: 1, capMs: 50, maxAttempts: 2 }, pollIntervalMs: 20, fetchTimeoutMs: 2_000, ...extra });
    running.push(w);
    return w;
  };
  const rows = (id: string) => ts.store.db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', id).execute();
  const settled = (id: string) => eventually(async () => ((await rows(id))[0]?.status !== 'pending' ? (await rows(id))[0] : undefined), 10_000, 20);

  before(async () => {
    ts = await openTestStore('sqlite');
    audit = createAuditLog({ db: ts.store.db, dialect: ts.store.dialect, now: Date.now });
    receiver = await startReceiver();
  });
  afterEach(async () => {
    for (const w of running.splice(0)) await w.stop();
  });
  after(async () => {
    await receiver?.close();
    await ts?.cleanup();
  });

  test('a name resolving to cloud metadata is refused at creation', async () => {
    dns.set('metadata.test', '169.254.169.254');
    await assert.rejects(start().create('http://metadata.test/latest/meta-data/', ['*']), (err) => isWarrantError(err, 'invalid_request') && err.members.field === 'url' && /169\.254\.169\.254/.test(err.detail ?? ''));
  });

  test('DNS rebinding: public at creation, loopback at delivery → refused at connect time, nothing reaches the receiver', async () => {
    const port = new URL(receiver.url).port;
    dns.set('rebind.test', PUBLIC_V4);
    const w = start();
    const hook = await w.create(`http://rebind.test:${port}/rebound`, ['agent.created']);
    dns.set('rebind.test', '127.0.0.1');
    w.start();
    await audit.append({ type: 'agent.created', actor: 'admin', subject: 'agent:agt_x' });
    const row = await settled(hook.id);
    assert.equal(row!.status, 'failed');
    assert.equal(row!.last_error, 'address not allowed (not public)');
    assert.equal(row!.last_status, null);
    assert.equal(receiver.at('/rebound').length, 0, 'the request reached a loopback receiver');
    assert.ok(!logs.text().includes('/rebound'), 'logs carry the origin only');
  });

  test('an IP literal allowed when the webhook was made is refused by a worker whose allowance no longer covers it', async () => {
    const made = start({ allowedNetworks: ['127.0.0.0/8'] });
    const hook = await made.create(`${receiver.url}/literal`, ['agent.created']);
    await made.stop();
    const strict = start();
    strict.start();
    await audit.append({ type: 'agent.created', actor: 'admin', subject: 'agent:agt_y' });
    const row = await settled(hook.id);
    assert.equal(row!.last_error, 'address not allowed (not public)');
    assert.equal(receiver.at('/literal').length, 0);
  });

  test('with the network allowed, the same name and literal are delivered (the guarded connector still connects)', async () => {
    const port = new URL(receiver.url).port;
    dns.set('rebind.test', '127.0.0.1');
    const w = start({ allowedNetworks: ['127.0.0.0/8'] });
    const byName = await w.create(`http://rebind.test:${port}/allowed-name`, ['agent.revoked']);
    const byLiteral = await w.create(`${receiver.url}/allowed-literal`, ['agent.revoked']);
    w.start();
    await audit.append({ type: 'agent.revoked', actor: 'admin', subject: 'agent:agt_z' });
    for (const id of [byName.id, byLiteral.id]) assert.equal((await settled(id))!.status, 'delivered');
    await sleep(50);
    assert.equal(receiver.at('/allowed-name').length, 1);
    assert.equal(receiver.at('/allowed-literal').length, 1);
  });
});
