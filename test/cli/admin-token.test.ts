import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseKeyRing } from '../../src/crypto/index.ts';
import { createStore } from '../../src/store/index.ts';
import { runWarrant, type Spawned } from '../helpers/process.ts';
import { createSchema, dropSchema, storeKinds, testDatabaseUrl } from '../helpers/stores.ts';
import { eventually, withSchema } from '../helpers/lifecycle.ts';

const TOKEN_LINE = /Admin token \(shown once, store it now\): (wat_[A-Za-z0-9_-]+)/;
const STORED_NOTICE = /An admin token is already stored.*WARRANT_ADMIN_TOKEN.*`warrant admin-token rotate`/;

const providers = (address: string, token: string) =>
  fetch(`${address}/v1/providers`, { headers: { authorization: `Bearer ${token}` } }).then(async (r) => (await r.arrayBuffer(), r.status));

async function started(p: Spawned): Promise<string> {
  const [, address] = await p.waitFor(/"address":"(http:\/\/[^"]+)"/, 60_000);
  return address!;
}

function occupyPort(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer(() => {});
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}

test('admin token on EADDRINUSE: nothing printed or stored; the next start prints it; a later start says one is stored', async () => {
  // Reproduces issue 7 (6): the token was generated, stored and printed before the bind; on EADDRINUSE
  // the process exited and the next start printed nothing: the only copy was lost.
  const dir = mkdtempSync(join(tmpdir(), 'warrant-admintoken-'));
  const masterKey = `k1:${randomBytes(32).toString('base64')}`;
  const env = { WARRANT_DATA_DIR: dir, WARRANT_MASTER_KEY: masterKey };
  const busy = await occupyPort();
  try {
    const clash = runWarrant(['serve'], { ...env, WARRANT_PORT: String(busy.port) });
    assert.notEqual(await clash.exit(), 0);
    assert.match(clash.stderr(), /EADDRINUSE/);
    assert.doesNotMatch(clash.stderr() + clash.stdout(), /wat_|Admin token/, 'no token printed');
    const store = await createStore({ dataDir: dir, ring: { current: () => parseKeyRing(masterKey) } });
    try {
      assert.equal(await store.settings.get('admin_token_hash'), undefined, 'no token stored');
    } finally {
      await store.close();
    }

    const first = runWarrant(['serve'], { ...env, WARRANT_PORT: '0' });
    const address = await started(first);
    const [, token] = await first.waitFor(TOKEN_LINE);
    assert.equal(await providers(address, token!), 200);
    assert.doesNotMatch(first.stderr(), STORED_NOTICE);
    assert.equal(await first.kill(), 0);

    const third = runWarrant(['serve'], { ...env, WARRANT_PORT: '0' });
    const address3 = await started(third);
    await third.waitFor(STORED_NOTICE);
    assert.doesNotMatch(third.stderr(), TOKEN_LINE);
    assert.equal(third.stderr().split('\n').filter((l) => /admin token/i.test(l)).length, 1, 'said in one line');
    assert.equal(await providers(address3, token!), 200, 'the token printed on the first start still works');
    assert.equal(await third.kill(), 0);
  } finally {
    busy.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const kind of storeKinds) {
  describe(`warrant admin-token reset (${kind.name})`, { skip: kind.skip }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'warrant-admintoken-reset-'));
    const schema = `t_${randomBytes(6).toString('hex')}`;
    after(async () => {
      if (kind.name === 'postgres') await dropSchema(schema);
      rmSync(dir, { recursive: true, force: true });
    });

    test('prints a new token once on stdout; a running server accepts it at once and refuses the old one', async () => {
      if (kind.name === 'postgres') await createSchema(schema);
      const env = {
        WARRANT_DATA_DIR: dir,
        WARRANT_MASTER_KEY: `k1:${randomBytes(32).toString('base64')}`,
        ...(kind.name === 'postgres' ? { DATABASE_URL: withSchema(testDatabaseUrl!, schema) } : {}),
      };
      const server = runWarrant(['serve'], { ...env, WARRANT_PORT: '0' });
      try {
        const address = await started(server);
        const [, oldToken] = await server.waitFor(TOKEN_LINE);
        assert.equal(await providers(address, oldToken!), 200);

        const reset = runWarrant(['admin-token', 'reset'], env);
        assert.equal(await reset.exit(), 0, reset.stderr());
        const newToken = reset.stdout().trim();
        assert.match(newToken, /^wat_[A-Za-z0-9_-]{43}$/, 'the token alone on stdout');
        assert.doesNotMatch(reset.stderr(), /wat_/, 'printed once');

        assert.equal(await providers(address, newToken), 200, 'the running server accepts the new token at once');
        // The old one is refused once the server's cached read (about a second) has expired.
        await eventually(async () => (await providers(address, oldToken!)) === 401, 10_000, 200);
        assert.equal(await providers(address, newToken), 200);
        assert.ok(!server.stdout().includes(newToken) && !server.stderr().includes(newToken), 'never in the server output');
      } finally {
        assert.equal(await server.kill(), 0);
      }
    });
  });
}
