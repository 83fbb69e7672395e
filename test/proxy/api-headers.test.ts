import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { providerSchema } from '../../src/providers/index.ts';
import { apiHeaderValues } from '../../src/tokens/index.ts';
import { isWarrantError } from '../../src/errors/index.ts';
import { startLocalApi, startWithProviders, type LocalApi, type ProvidersInstance } from './local-api.ts';

const TENANT = '0f8fad5b-d9cb-469f-a165-70867728950e';

/** Xero-like: a tenant header from the connection, a static version header, an untyped param. */
const xeroLike = (api: string) => ({
  id: 'xero-like',
  auth: 'api_key',
  environments: { production: { api_base_url: `${api}/api.xro/2.0` } },
  api_headers: { 'Xero-tenant-id': '{tenant_id}', 'Notion-Version': '2022-06-28', 'X-Org': 'org={org};tenant={tenant_id}' },
  connection_params: {
    tenant_id: { from: 'connection', type: 'uuid' },
    org: { from: 'connection' },
  },
  scopes: { all: [{ method: '*', path: '/**' }], invoices: [{ method: 'GET', path: '/Invoices' }] },
});

const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(isWarrantError(err), String(err));
    return err;
  }
  assert.fail('expected a refusal');
};

test('apiHeaderValues: static and templated values, names lower-cased', () => {
  const p = providerSchema.parse(xeroLike('http://127.0.0.1:1'));
  assert.deepEqual(apiHeaderValues(p, { tenant_id: TENANT, org: 'acme' }), {
    'xero-tenant-id': TENANT,
    'notion-version': '2022-06-28',
    'x-org': `org=acme;tenant=${TENANT}`,
  });
  assert.deepEqual(apiHeaderValues({ id: 'none' }, {}), {}, 'a provider without api_headers adds nothing');
});

test('apiHeaderValues: a missing param is a conflict naming it and the header, telling to connect again', () => {
  const p = providerSchema.parse(xeroLike('http://127.0.0.1:1'));
  for (const params of [{ org: 'acme' }, { org: 'acme', tenant_id: '' }] as Record<string, string>[]) {
    const err = refusal(() => apiHeaderValues(p, params));
    assert.equal(err.code, 'conflict');
    assert.equal(err.members.param, 'tenant_id');
    assert.equal(err.members.header, 'Xero-tenant-id');
    assert.match(err.detail!, /connect it again/);
  }
  const inherited = refusal(() => apiHeaderValues({ id: 'x', api_headers: { 'X-A': '{constructor}' } }, {}));
  assert.equal(inherited.members.param, 'constructor', 'an inherited member is not a param');
});

test('apiHeaderValues: a value that could split the header block, or does not fit its type, is refused', () => {
  const p = providerSchema.parse(xeroLike('http://127.0.0.1:1'));
  for (const org of ['acme\r\nX-Injected: 1', 'acme\nx', 'a\u0000b', 'tab\there', 'arrow\u2192']) {
    const err = refusal(() => apiHeaderValues(p, { tenant_id: TENANT, org }));
    assert.equal(err.code, 'conflict', JSON.stringify(org));
    assert.equal(err.members.param, 'org');
    assert.ok(!err.detail!.includes(org), 'the value is not echoed');
  }
  const typed = refusal(() => apiHeaderValues(p, { tenant_id: 'not-a-uuid', org: 'acme' }));
  assert.equal(typed.members.param, 'tenant_id');
  assert.match(typed.detail!, /UUID/);
});

test('the format: header values without line breaks, placeholders only for declared params', () => {
  const base = xeroLike('http://127.0.0.1:1');
  assert.equal(providerSchema.safeParse({ ...base, api_headers: { 'X-A': 'a\r\nb' } }).success, false);
  assert.equal(providerSchema.safeParse({ ...base, api_headers: { 'X-A': '{nobody}' } }).success, false);
  assert.equal(providerSchema.safeParse({ ...base, api_headers: { 'Bad Name': 'x' } }).success, false);
  assert.equal(providerSchema.safeParse(base).success, true);
});

describe('api_headers on proxied calls', () => {
  let api: LocalApi;
  let w: ProvidersInstance;
  let conn: string;
  let key: string;

  before(async () => {
    api = await startLocalApi();
    w = await startWithProviders([xeroLike(api.url)]);
    conn = await w.importConnection('xero-like', { tenant_id: TENANT, org: 'acme' });
    key = await w.agentKey(conn, ['all']);
  });
  after(async () => {
    await w?.close();
    await api?.close();
  });

  /** Puts `params` in the store as an older Warrant might have, and drops the proxy's cached copy. */
  async function storeParams(params: Record<string, string>) {
    await w.warrant.store.connections.update(conn, { params: JSON.stringify(params) });
    await w.warrant.tokens.invalidate(conn);
  }

  test('every call carries the definition headers, replacing the agent headers of the same name', async () => {
    api.seen.length = 0;
    for (const method of ['GET', 'POST', 'HEAD']) {
      const res = await w.call(key, conn, '/Invoices', {
        method,
        headers: { 'xero-tenant-id': 'agent-chosen-tenant', 'NOTION-VERSION': '1999-01-01', 'x-agent': 'kept' },
        ...(method === 'POST' ? { body: '{}' } : {}),
      });
      assert.equal(res.status, 200, method);
      await res.arrayBuffer();
    }
    assert.equal(api.seen.length, 3);
    for (const seen of api.seen) {
      assert.equal(seen.headers['xero-tenant-id'], TENANT, seen.method);
      assert.equal(seen.headers['notion-version'], '2022-06-28');
      assert.equal(seen.headers['x-org'], `org=acme;tenant=${TENANT}`);
      assert.equal(seen.headers['x-agent'], 'kept', 'other agent headers still pass');
      assert.equal(seen.headers.authorization, 'Bearer local_access_token_0123456789', 'the token is injected as before');
    }
  });

  test('a missing param: conflict naming it and the header, after the policy check, and nothing is sent', async () => {
    const invoicesOnly = await w.agentKey(conn, ['invoices']);
    await storeParams({ org: 'acme' });
    try {
      api.seen.length = 0;
      const res = await w.call(key, conn, '/Invoices');
      const body = (await res.json()) as { code: string; param: string; header: string; detail: string };
      assert.equal(res.status, 409, JSON.stringify(body));
      assert.equal(body.code, 'conflict');
      assert.equal(body.param, 'tenant_id');
      assert.equal(body.header, 'Xero-tenant-id');
      assert.match(body.detail, /connect it again/);
      const denied = await w.call(invoicesOnly, conn, '/Contacts');
      assert.equal(denied.status, 403, 'a call the policy refuses is refused for that first');
      assert.equal(((await denied.json()) as { code: string }).code, 'policy_denied');
      assert.equal(api.seen.length, 0, 'no upstream call with a literal {tenant_id} or none at all');
    } finally {
      await storeParams({ tenant_id: TENANT, org: 'acme' });
    }
  });

  test('a stored param with a line break or a control character is refused, never sent', async () => {
    try {
      for (const org of ['acme\r\nX-Injected: yes', 'acme\u0007']) {
        await storeParams({ tenant_id: TENANT, org });
        api.seen.length = 0;
        const res = await w.call(key, conn, '/Invoices');
        const text = await res.text();
        assert.equal(res.status, 409, text);
        assert.equal((JSON.parse(text) as { param: string }).param, 'org');
        assert.ok(!text.includes('X-Injected'), 'the value is not echoed');
        assert.equal(api.seen.length, 0);
      }
    } finally {
      await storeParams({ tenant_id: TENANT, org: 'acme' });
    }
    const healed = await w.call(key, conn, '/Invoices');
    assert.equal(healed.status, 200);
    await healed.arrayBuffer();
  });
});
