import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, exportPKCS8, generateKeyPair, importSPKI, jwtVerify } from 'jose';
import { OAuthCallError, privateKeyKind } from '../../src/oauth/index.ts';
import { providerSchema } from '../../src/providers/index.ts';
import { createClientResolver } from '../../src/tokens/index.ts';
import { startRecordingServer, type RecordingServer } from './recording-server.ts';

// private_key_jwt client authentication (RFC 7523 §2.2) for any provider whose client has a private
// key, not only the MCP gateway: the token request carries a JWT assertion signed with it (iss =
// sub = client_id, aud = the issuer, at most 60 s, a fresh jti) and never a secret. Checked on the
// wire against a real server on loopback, with Warrant's real client.

let idp: RecordingServer;
before(async () => {
  idp = await startRecordingServer();
  idp.on('/token', { status: 200, body: { access_token: 'machine-at', token_type: 'Bearer', expires_in: 600 } });
});
after(() => idp.close());

function clientFor(definition: Record<string, unknown>) {
  const provider = providerSchema.parse({
    id: `pkjwt-${Math.random().toString(36).slice(2, 8)}`,
    auth: 'client_credentials',
    client_id: 'svc-client',
    token_auth_method: 'private_key_jwt',
    environments: { production: { token_url: `${idp.url}/token`, issuer: `${idp.url}/issuer`, api_base_url: `${idp.url}/api` } },
    ...definition,
  });
  return createClientResolver({ timeoutMs: 5000, env: {} })(provider, 'production', {});
}

describe('private_key_jwt client authentication', () => {
  test('an EC P-256 key signs an ES256 assertion: iss = sub = client_id, aud the issuer, 60 s, a new jti each time', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const client = clientFor({ client_private_key: await exportPKCS8(privateKey) });
    const before = idp.at('/token').length;
    assert.equal((await client.clientCredentials(['read'])).access_token, 'machine-at');
    await client.clientCredentials(['read']);
    const sent = idp.at('/token').slice(before).map((r) => new URLSearchParams(r.body));
    for (const form of sent) {
      assert.equal(form.get('grant_type'), 'client_credentials');
      assert.equal(form.get('client_id'), 'svc-client');
      assert.equal(form.get('client_secret'), null);
      assert.equal(form.get('client_assertion_type'), 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
      const { payload, protectedHeader } = await jwtVerify(form.get('client_assertion')!, publicKey, { audience: `${idp.url}/issuer`, issuer: 'svc-client', subject: 'svc-client' });
      assert.equal(protectedHeader.alg, 'ES256');
      assert.ok(payload.exp! - payload.iat! <= 60);
    }
    assert.equal(idp.at('/token').slice(before).every((r) => r.headers.authorization === undefined), true, 'no Basic header beside the assertion');
    assert.notEqual(decodeJwt(sent[0]!.get('client_assertion')!).jti, decodeJwt(sent[1]!.get('client_assertion')!).jti);
  });

  test('an RSA key signs RS256 by default, PS256 when client_assertion_alg says so; a ${env:NAME} key is read at use', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const spki = publicKey.export({ type: 'spki', format: 'pem' }) as string;
    for (const [definition, alg] of [
      [{ client_private_key: pem }, 'RS256'],
      [{ client_private_key: '${env:SVC_KEY}', env_key: pem, client_assertion_alg: 'PS256' }, 'PS256'],
    ] as const) {
      const { env_key: _k, ...rest } = definition as Record<string, unknown>;
      const client = createClientResolver({ timeoutMs: 5000, env: { SVC_KEY: pem } })(
        providerSchema.parse({
          id: `pkjwt-rsa-${alg.toLowerCase()}`,
          auth: 'client_credentials',
          client_id: 'svc-client',
          token_auth_method: 'private_key_jwt',
          environments: { production: { token_url: `${idp.url}/token`, issuer: `${idp.url}/issuer`, api_base_url: `${idp.url}/api` } },
          ...rest,
        }),
        'production',
        {},
      );
      await client.clientCredentials([]);
      const assertion = new URLSearchParams(idp.at('/token').at(-1)!.body).get('client_assertion')!;
      assert.equal(decodeProtectedHeader(assertion).alg, alg);
      await jwtVerify(assertion, await importSPKI(spki, alg), { audience: `${idp.url}/issuer` });
    }
  });

  test('a definition with private_key_jwt and no key is refused; an unusable key fails as misconfigured, naming no part of it', async () => {
    assert.throws(
      () => providerSchema.parse({ id: 'nokey', auth: 'client_credentials', client_id: 'c', token_auth_method: 'private_key_jwt', environments: { production: { token_url: `${idp.url}/token`, api_base_url: idp.url } } }),
      /client_private_key/,
    );
    const garbage = '-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZS1rZXktbWF0ZXJpYWw=\n-----END PRIVATE KEY-----\n';
    const before = idp.at('/token').length;
    const err = await clientFor({ client_private_key: garbage }).clientCredentials([]).catch((e: unknown) => e);
    assert.ok(err instanceof OAuthCallError, String(err));
    assert.equal(err.kind, 'misconfigured');
    assert.equal(err.error, 'invalid_key');
    assert.ok(!err.message.includes('Z2FyYmFnZS1rZXktbWF0ZXJpYWw'));
    assert.equal(idp.at('/token').length, before, 'nothing is sent without a usable assertion');
  });

  test('privateKeyKind: PKCS#8 EC P-256 or RSA ≥ 2048 bits, nothing else', () => {
    const pem = (k: ReturnType<typeof generateKeyPairSync>['privateKey'], type: 'pkcs8' | 'pkcs1' | 'sec1' = 'pkcs8') => k.export({ type, format: 'pem' } as never) as unknown as string;
    assert.deepEqual(privateKeyKind(pem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey)), { type: 'ec-p256', algs: ['ES256'] });
    assert.deepEqual(privateKeyKind(pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey)), { type: 'rsa', algs: ['RS256', 'PS256'] });
    assert.match(privateKeyKind(pem(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey)) as string, /P-256/);
    assert.match(privateKeyKind(pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey)) as string, /2048/);
    assert.match(privateKeyKind(pem(generateKeyPairSync('ed25519').privateKey)) as string, /neither/);
    assert.match(privateKeyKind(pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, 'pkcs1')) as string, /PKCS#8/);
    const encrypted = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }) as string;
    assert.match(privateKeyKind(encrypted) as string, /unencrypted PKCS#8/);
  });
});
