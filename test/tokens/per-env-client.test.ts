import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { providerSchema } from '../../src/providers/index.ts';
import { clientCredentialsFor, createClientResolver } from '../../src/tokens/index.ts';
import { isWarrantError } from '../../src/errors/index.ts';
import { basicCredentials, startRecordingServer, type RecordingServer } from '../oauth/recording-server.ts';

// Client credentials per environment (issue 9): QuickBooks sandbox and production are different
// apps, each with its own client id and secret. A sandbox connection must authenticate as the
// sandbox app everywhere the client is used (authorize, token, revocation), and never send one
// app's secret with the other's id.

const env = {
  QB_PROD_ID: 'prod-app',
  QB_PROD_SECRET: 'prod-secret-111',
  QB_SANDBOX_ID: 'sandbox-app',
  QB_SANDBOX_SECRET: 'sandbox-secret-222',
};

let idp: RecordingServer;
before(async () => {
  idp = await startRecordingServer();
  idp.on('/prod/token', { status: 200, body: { access_token: 'prod-at', token_type: 'bearer' } });
  idp.on('/sandbox/token', { status: 200, body: { access_token: 'sandbox-at', token_type: 'bearer' } });
});
after(() => idp.close());

const endpoints = (name: string) => ({
  authorization_url: `${idp.url}/${name}/authorize`,
  token_url: `${idp.url}/${name}/token`,
  revocation_url: `${idp.url}/${name}/apps/{client_id}/revoke`,
  api_base_url: `${idp.url}/${name}/api`,
});

const quickbooksLike = () =>
  providerSchema.parse({
    id: 'qb-like',
    auth: 'oauth2',
    client_id: '${env:QB_PROD_ID}',
    client_secret: '${env:QB_PROD_SECRET}',
    environments: {
      production: endpoints('prod'),
      sandbox: { ...endpoints('sandbox'), client_id: '${env:QB_SANDBOX_ID}', client_secret: '${env:QB_SANDBOX_SECRET}' },
    },
  });

describe('clientCredentialsFor', () => {
  const base = { client_id: 'top-id', client_secret: 'top-secret' };
  const envs = (e: Record<string, unknown>) => ({ production: {}, other: e }) as never;

  test("an environment's own client_id brings its own secret, never the definition's", () => {
    assert.deepEqual(clientCredentialsFor({ ...base, environments: envs({ client_id: 'own-id', client_secret: 'own-secret' }) }, 'other'), { clientId: 'own-id', clientSecret: 'own-secret' });
    assert.deepEqual(clientCredentialsFor({ ...base, environments: envs({ client_id: 'public-id' }) }, 'other'), { clientId: 'public-id', clientSecret: undefined });
  });

  test("without its own client_id: the definition's id, with the environment's secret when it has one", () => {
    assert.deepEqual(clientCredentialsFor({ ...base, environments: envs({ client_secret: 'rotated' }) }, 'other'), { clientId: 'top-id', clientSecret: 'rotated' });
    assert.deepEqual(clientCredentialsFor({ ...base, environments: envs({}) }, 'production'), { clientId: 'top-id', clientSecret: 'top-secret' });
  });

  test('${env:NAME} resolved at use, from the environment given', () => {
    const provider = quickbooksLike();
    assert.deepEqual(clientCredentialsFor(provider, 'sandbox', env), { clientId: 'sandbox-app', clientSecret: 'sandbox-secret-222' });
    assert.deepEqual(clientCredentialsFor(provider, 'production', env), { clientId: 'prod-app', clientSecret: 'prod-secret-111' });
    assert.deepEqual(clientCredentialsFor(provider, 'sandbox', {}), { clientId: undefined, clientSecret: undefined });
  });
});

describe('the OAuth client of each environment is its own app', () => {
  test('token requests authenticate as the environment’s app', async () => {
    const resolve = createClientResolver({ timeoutMs: 5000, env });
    const provider = quickbooksLike();
    assert.equal((await resolve(provider, 'sandbox', {}).refresh('rt-s')).access_token, 'sandbox-at');
    assert.equal((await resolve(provider, 'production', {}).refresh('rt-p')).access_token, 'prod-at');
    assert.deepEqual(basicCredentials(idp.at('/sandbox/token').at(-1)!.headers.authorization), ['sandbox-app', 'sandbox-secret-222']);
    assert.deepEqual(basicCredentials(idp.at('/prod/token').at(-1)!.headers.authorization), ['prod-app', 'prod-secret-111']);
  });

  test('the authorization request and the {client_id} of the revocation URL use the environment’s id', () => {
    const resolve = createClientResolver({ timeoutMs: 5000, env });
    const sandbox = resolve(quickbooksLike(), 'sandbox', {});
    const url = new URL(sandbox.authorizationUrl({ redirectUri: 'https://warrant.example/cb', scopes: ['accounting'], state: 's' }));
    assert.equal(url.searchParams.get('client_id'), 'sandbox-app');
    assert.equal(sandbox.endpoints.revocation_url, `${idp.url}/sandbox/apps/sandbox-app/revoke`);
    assert.equal(resolve(quickbooksLike(), 'production', {}).endpoints.revocation_url, `${idp.url}/prod/apps/prod-app/revoke`);
    // The endpoints a client exposes carry no credentials.
    assert.equal((sandbox.endpoints as Record<string, unknown>).client_secret, undefined);
  });

  test('an environment whose app has no client id configured is refused, naming the environment', () => {
    const resolve = createClientResolver({ timeoutMs: 5000, env: { QB_PROD_ID: 'prod-app', QB_PROD_SECRET: 'x' } });
    assert.throws(
      () => resolve(quickbooksLike(), 'sandbox', {}),
      (err: unknown) => isWarrantError(err, 'conflict') && /sandbox/.test((err as Error).message),
    );
  });
});
