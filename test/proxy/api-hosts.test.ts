import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { providerSchema } from '../../src/providers/index.ts';
import { chooseApiHost, type ApiHosts } from '../../src/proxy/index.ts';
import { isWarrantError } from '../../src/errors/index.ts';
import { startLocalApi, startWithProviders, type LocalApi, type ProvidersInstance } from './local-api.ts';

const TOKEN = 'local_access_token_0123456789';

/** Dropbox-like: a main API host and a content host, chosen by path or by Warrant-Api-Host. */
const dropboxLike = (main: string, content: string) => ({
  id: 'dropbox-like',
  auth: 'api_key',
  environments: {
    production: {
      api_base_url: `${main}/2`,
      api_hosts: {
        content: { base_url: `${content}/2`, paths: ['/files/download', '/files/upload'] },
        zip: { base_url: `${content}/zip`, paths: ['/files/download/zip'] },
        regional: { base_url: '{region_url}/v1' },
      },
    },
  },
  connection_params: { region_url: { from: 'connection', type: 'https_origin', suffix: '.example.test' } },
  scopes: {
    'files.read': [
      { method: 'POST', path: '/files/list_folder' },
      { host: 'content', method: 'POST', path: '/files/download' },
      { host: 'content', method: 'POST', path: '/files/download/**' },
      { host: 'content', method: 'GET', path: '/files/download/**' },
    ],
    'files.write': [{ host: 'content', method: 'POST', path: '/files/upload' }],
    'main.only': [{ method: 'POST', path: '/files/download' }, { method: '*', path: '/**' }],
    'content.only': [{ host: 'content', method: 'POST', path: '/files/list_folder' }],
    'regional.all': [{ host: 'regional', method: '*', path: '/**' }],
  },
});

/** The same origin-typed param in the main API base: how the main host is guarded. */
const regionalMain = (main: string) => ({
  id: 'regional-main',
  auth: 'api_key',
  environments: { production: { api_base_url: '{region_url}/v1', api_hosts: { plain: { base_url: `${main}/plain` } } } },
  connection_params: { region_url: { from: 'connection', type: 'https_origin', suffix: '.example.test' } },
  scopes: { all: [{ method: '*', path: '/**' }, { host: 'plain', method: '*', path: '/**' }] },
});

/** A GET whose path is sent byte for byte as written (fetch() would normalise `%2e%2e`). */
function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  const path = url.slice(u.origin.length);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('chooseApiHost: a header names a host; otherwise whole-segment path prefixes of exactly one host', () => {
  const hosts: ApiHosts = {
    content: { base_url: 'https://content.example.com/2', paths: ['/files/download', '/files/upload/'] },
    zip: { base_url: 'https://zip.example.com', paths: ['/files/download/zip'] },
    other: { base_url: 'https://other.example.com' },
  };
  assert.equal(chooseApiHost(hosts, undefined, '/files/list_folder'), undefined);
  assert.equal(chooseApiHost(hosts, undefined, ''), undefined);
  assert.equal(chooseApiHost(hosts, undefined, '/files/download'), 'content');
  assert.equal(chooseApiHost(hosts, undefined, '/files/download/'), 'content');
  assert.equal(chooseApiHost(hosts, undefined, '/files/download/a/b'), 'content');
  assert.equal(chooseApiHost(hosts, undefined, '/files/upload'), 'content', 'a trailing slash on the prefix does not matter');
  assert.equal(chooseApiHost(hosts, undefined, '/files/downloads'), undefined, 'whole segments only');
  assert.equal(chooseApiHost(hosts, undefined, '/files/download_zip'), undefined);
  assert.equal(chooseApiHost(hosts, undefined, '/files%2Fdownload'), undefined, 'an encoded "/" is not a separator');
  assert.equal(chooseApiHost(hosts, undefined, '/files/%64ownload'), 'content', 'segments are compared decoded, as the policy does');
  assert.equal(chooseApiHost(hosts, undefined, '/Files/download'), undefined, 'case-sensitive');
  assert.equal(chooseApiHost(hosts, 'other', '/files/download'), 'other', 'the header wins over the path');
  assert.equal(chooseApiHost(hosts, ' zip ', '/x'), 'zip');
  const refused = (named: string | string[] | undefined, path: string) => {
    try {
      chooseApiHost(hosts, named, path);
    } catch (err) {
      assert.ok(isWarrantError(err, 'invalid_request'));
      assert.equal(err.members.field, 'warrant-api-host');
      assert.match(err.detail!, /Warrant-Api-Host/);
      return err.detail!;
    }
    assert.fail(`expected a refusal for ${String(named)} ${path}`);
  };
  assert.match(refused('nope', '/x'), /known: content, zip, other/);
  refused('', '/x');
  refused('constructor', '/x');
  refused(['content', 'zip'], '/x');
  assert.match(refused(undefined, '/files/download/zip/a'), /several API hosts \(content, zip\)/);
});

test('chooseApiHost: an environment without api_hosts refuses any named host', () => {
  assert.equal(chooseApiHost({}, undefined, '/files/download'), undefined);
  try {
    chooseApiHost({}, 'content', '/x');
    assert.fail('expected a refusal');
  } catch (err) {
    assert.ok(isWarrantError(err, 'invalid_request'));
    assert.match(err.detail!, /only its main API/);
  }
});

test('the format: scope rules name a host some environment declares; host base URLs are checked like api_base_url', () => {
  const def = dropboxLike('http://127.0.0.1:1', 'http://127.0.0.1:2');
  assert.equal(providerSchema.safeParse(def).success, true);
  assert.equal(providerSchema.safeParse({ ...def, scopes: { x: [{ host: 'nowhere', method: 'GET', path: '/x' }] } }).success, false);
  const untyped = structuredClone(def) as { connection_params: Record<string, object> };
  untyped.connection_params.region_url = { from: 'connection' };
  assert.equal(providerSchema.safeParse(untyped).success, false, 'a placeholder in a host base URL needs a fitting type');
});

describe('several API hosts: routing, policy by host, the SSRF guard on each', () => {
  let main: LocalApi;
  let content: LocalApi;
  let w: ProvidersInstance;
  let conn: string;
  let regionalConn: string;
  const keys: Record<string, string> = {};

  before(async () => {
    main = await startLocalApi();
    content = await startLocalApi((req) => {
      const path = new URL(req.url, 'http://x').pathname;
      if (path === '/2/files/download/redirect-inside') return { status: 302, headers: { location: `${content.url}/2/files/download/next?x=1` } };
      if (path === '/2/files/download/redirect-other-path') return { status: 302, headers: { location: `${content.url}/2/elsewhere` } };
      if (path === '/2/files/download/redirect-main') return { status: 302, headers: { location: `${main.url}/2/files/list_folder` } };
      if (path === '/2/files/download/redirect-away') return { status: 302, headers: { location: `https://elsewhere.example/steal` } };
      return undefined;
    });
    w = await startWithProviders([dropboxLike(main.url, content.url), regionalMain(main.url)]);
    conn = await w.importConnection('dropbox-like', { region_url: 'https://eu.example.test' });
    regionalConn = await w.importConnection('regional-main', { region_url: 'https://eu.example.test' });
    for (const scopes of [['files.read'], ['files.write'], ['main.only'], ['content.only'], ['regional.all']]) keys[scopes[0]!] = await w.agentKey(conn, scopes);
    keys.regionalMain = await w.agentKey(regionalConn, ['all']);
  });
  after(async () => {
    await w?.close();
    await main?.close();
    await content?.close();
  });

  const reset = () => {
    main.seen.length = 0;
    content.seen.length = 0;
  };

  async function problem(res: Response, status: number, code: string) {
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(res.status, status, JSON.stringify(body));
    assert.equal(body.code, code);
    return body;
  }

  test('by path: a call under a host path goes to that host, with the same token; others to the main API', async () => {
    reset();
    const list = await w.call(keys['files.read']!, conn, '/files/list_folder', { method: 'POST', body: '{}' });
    assert.equal(list.status, 200);
    await list.arrayBuffer();
    const download = await w.call(keys['files.read']!, conn, '/files/download', { method: 'POST', headers: { 'dropbox-api-arg': '{"path":"/a"}' } });
    assert.equal(download.status, 200);
    await download.arrayBuffer();
    assert.deepEqual(main.seen.map((s) => s.url), ['/2/files/list_folder']);
    assert.deepEqual(content.seen.map((s) => s.url), ['/2/files/download']);
    for (const seen of [...main.seen, ...content.seen]) assert.equal(seen.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal(content.seen[0]!.headers['dropbox-api-arg'], '{"path":"/a"}');
  });

  test('by header: Warrant-Api-Host names the host and is never forwarded', async () => {
    reset();
    const res = await w.call(keys['content.only']!, conn, '/files/list_folder', { method: 'POST', body: '{}', headers: { 'Warrant-Api-Host': 'content' } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.deepEqual(content.seen.map((s) => s.url), ['/2/files/list_folder']);
    assert.equal(main.seen.length, 0);
    assert.equal(content.seen[0]!.headers['warrant-api-host'], undefined);
    assert.equal(content.seen[0]!.headers.authorization, `Bearer ${TOKEN}`);
  });

  test('policy by host: a rule opens only its own host; the main host only rules without one', async () => {
    reset();
    // `main.only` allows POST /files/download on the main host, but that path routes to content.
    const body1 = await problem(await w.call(keys['main.only']!, conn, '/files/download', { method: 'POST' }), 403, 'policy_denied');
    assert.equal(body1.api_host, 'content');
    // `content.only` allows /files/list_folder on content, not on the main host.
    await problem(await w.call(keys['content.only']!, conn, '/files/list_folder', { method: 'POST', body: '{}' }), 403, 'policy_denied');
    // `files.write` opens the upload path on content only; naming the main host's path on content is not enough either.
    await problem(await w.call(keys['files.write']!, conn, '/files/list_folder', { method: 'POST', body: '{}', headers: { 'warrant-api-host': 'content' } }), 403, 'policy_denied');
    const upload = await w.call(keys['files.write']!, conn, '/files/upload', { method: 'POST', body: 'bytes' });
    assert.equal(upload.status, 200);
    await upload.arrayBuffer();
    assert.equal(main.seen.length, 0);
    assert.deepEqual(content.seen.map((s) => `${s.method} ${s.url} ${s.body.toString()}`), ['POST /2/files/upload bytes']);
  });

  test('an unknown host key or a path two hosts claim: invalid_request naming the header, nothing sent', async () => {
    reset();
    const unknown = await problem(await w.call(keys['files.read']!, conn, '/files/list_folder', { method: 'POST', headers: { 'warrant-api-host': 'upload' } }), 400, 'invalid_request');
    assert.equal(unknown.field, 'warrant-api-host');
    assert.match(String(unknown.detail), /known: content, zip, regional/);
    const both = await problem(await w.call(keys['files.read']!, conn, '/files/download/zip/a', { method: 'POST' }), 400, 'invalid_request');
    assert.equal(both.field, 'warrant-api-host');
    const named = await w.call(keys['files.read']!, conn, '/files/download/zip/a', { method: 'POST', headers: { 'warrant-api-host': 'content' } });
    assert.equal(named.status, 200, 'naming one settles it');
    await named.arrayBuffer();
    assert.deepEqual(content.seen.map((s) => s.url), ['/2/files/download/zip/a']);
    assert.equal(main.seen.length, 0);
  });

  test('the path guard holds on every host: escapes and absolute URLs are refused before anything is sent', async () => {
    reset();
    const auth = { authorization: `Bearer ${keys['files.read']!}` };
    const cases: [string, Record<string, string>][] = [
      ['/files/download/..%2f..%2f..%2fadmin', {}],
      ['/files/download/%2e%2e/%2e%2e/x', {}],
      ['/files/download/..%5c..%5cx', {}],
      ['/%252e%252e/files/download', { 'warrant-api-host': 'content' }],
      ['/..%2f..%2fadmin', { 'warrant-api-host': 'content' }],
      ['/@evil.example/files/download', { 'warrant-api-host': 'content' }],
      ['/https:%2f%2fevil.example/x', { 'warrant-api-host': 'content' }],
    ];
    for (const [path, headers] of cases) {
      const res = await rawGet(`${w.base}/v1/proxy/${conn}${path}`, { ...auth, ...headers });
      assert.equal(res.status, 400, `${path} ${res.body}`);
      const body = JSON.parse(res.body) as { code: string; field: string };
      assert.equal(body.code, 'invalid_request', path);
      assert.equal(body.field, 'path', path);
    }
    assert.equal(main.seen.length + content.seen.length, 0);
  });

  test('a host base URL whose param is not what its type allows is refused as for the main API, naming the param', async () => {
    const update = async (id: string, region_url: string) => {
      await w.warrant.store.connections.update(id, { params: JSON.stringify({ region_url }) });
      await w.warrant.tokens.invalidate(id);
    };
    try {
      for (const bad of ['https://169.254.169.254', 'https://127.0.0.1', 'https://evil.example', 'https://eu.example.test.evil.example', 'http://eu.example.test', 'https://eu.example.test/%2e%2e']) {
        await update(conn, bad);
        await update(regionalConn, bad);
        reset();
        // On a host: refused for that host only, the main API still answers.
        const onHost = await problem(await w.call(keys['regional.all']!, conn, '/x', { headers: { 'warrant-api-host': 'regional' } }), 409, 'conflict');
        assert.equal(onHost.param, 'region_url', bad);
        const mainOk = await w.call(keys['main.only']!, conn, '/files/list_folder', { method: 'POST', body: '{}' });
        assert.equal(mainOk.status, 200, bad);
        await mainOk.arrayBuffer();
        // On the main API base: refused the same way.
        const onMain = await problem(await w.call(keys.regionalMain!, regionalConn, '/x'), 409, 'conflict');
        assert.equal(onMain.param, 'region_url', bad);
        assert.deepEqual(main.seen.map((s) => s.url), ['/2/files/list_folder'], bad);
        assert.equal(content.seen.length, 0);
      }
    } finally {
      await update(conn, 'https://eu.example.test');
      await update(regionalConn, 'https://eu.example.test');
    }
  });

  test('redirects are never followed; one back into a host is rewritten only where the proxy path routes there again', async () => {
    const get = async (path: string) => {
      const res = await w.call(keys['files.read']!, conn, path, { method: 'GET', redirect: 'manual' });
      await res.arrayBuffer();
      return { status: res.status, location: res.headers.get('location') };
    };
    reset();
    assert.deepEqual(await get('/files/download/redirect-inside'), { status: 302, location: `/v1/proxy/${conn}/files/download/next?x=1` });
    assert.deepEqual(await get('/files/download/redirect-other-path'), { status: 302, location: `${content.url}/2/elsewhere` }, 'the proxy path /elsewhere would go to the main API');
    assert.deepEqual(await get('/files/download/redirect-main'), { status: 302, location: `/v1/proxy/${conn}/files/list_folder` });
    assert.deepEqual(await get('/files/download/redirect-away'), { status: 302, location: 'https://elsewhere.example/steal' });
    assert.equal(content.seen.length, 4);
    assert.equal(main.seen.length, 0, 'nothing followed');
  });

  test('the audit entry names the host', async () => {
    const res = await w.call(keys['files.read']!, conn, '/files/download', { method: 'POST' });
    const requestId = res.headers.get('warrant-request-id');
    await res.arrayBuffer();
    await w.warrant.auditQueue.flush();
    const entry = (await w.warrant.audit.query({ type: 'proxy.call', limit: 1000 })).find((e) => e.data.request_id === requestId);
    assert.ok(entry);
    assert.equal(entry.data.host, 'content');
    assert.equal(entry.data.path, '/files/download');
    assert.equal(entry.data.scope, 'files.read');
  });
});
