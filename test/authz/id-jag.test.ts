import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import * as oauth from 'oauth4webapi';
import fc from 'fast-check';
import { createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { ConfigError, loadConfig } from '../../src/config/index.ts';
import { grantedScopes, parseIdJagClaims, targetOf } from '../../src/authz/id-jag.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { storeKinds } from '../helpers/stores.ts';
import { discover, insecure, registerPublicClient, startAuthzWarrant, type AuthzWarrant } from './helpers.ts';

// Enterprise-managed authorization (MCP SEP-990): an enterprise IdP on loopback issues ID-JAGs
// (draft-ietf-oauth-identity-assertion-authz-grant); a client presents one at Warrant's token
// endpoint as an RFC 7523 grant and gets an access token for one resource with no consent screen.

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const OWNER = 'erin@example.com';
const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

/** A small enterprise IdP: publishes a JWKS and signs ID-JAGs (the test plays its token exchange). */
async function startIdp() {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = 'idp-key-1';
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  let hits = 0;
  const server: Server = createServer((req, res) => {
    if (req.url !== '/jwks') return void res.writeHead(404).end();
    hits++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    get hits() {
      return hits;
    },
    /** An ID-JAG; `header`/`claims` override the defaults, `undefined` removes a claim. */
    async sign(claims: Record<string, unknown>, opts: { typ?: string; key?: CryptoKey; iat?: number; exp?: number } = {}) {
      const now = Math.floor(Date.now() / 1000);
      const payload: JWTPayload = { iss: issuer, sub: 'okta-user-00u1', email: OWNER, jti: randomBytes(12).toString('hex'), iat: opts.iat ?? now, exp: opts.exp ?? now + 300, ...claims };
      for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
      return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: opts.typ ?? 'oauth-id-jag+jwt', kid }).sign(opts.key ?? privateKey);
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
type Idp = Awaited<ReturnType<typeof startIdp>>;

interface Presenter {
  client: oauth.Client;
  auth: oauth.ClientAuth;
}

describe('enterprise-managed authorization: ID-JAG grant (SEP-990)', () => {
  let idp: Idp;
  let other: Idp;
  let w: AuthzWarrant;
  let as: oauth.AuthorizationServer;
  let issuer: string;
  let mcp: string;
  let api: string;
  let app: Presenter; // a confidential client registered with DCR (client_secret_basic)
  let headless: Presenter & { agentId: string }; // a private_key_jwt client bound by an admin to another owner
  let jwks: ReturnType<typeof createRemoteJWKSet>;

  const present = (who: Presenter, assertion: string | undefined, extra: Record<string, string> = {}) => {
    const body = new URLSearchParams({ ...(assertion === undefined ? {} : { assertion }), ...extra });
    return oauth.genericTokenEndpointRequest(as, who.client, who.auth, JWT_BEARER, body, insecure);
  };

  async function issued(res: Response) {
    const text = await res.clone().text();
    assert.equal(res.status, 200, text);
    const raw = JSON.parse(text) as Record<string, unknown>;
    assert.equal(raw.refresh_token, undefined, 'no refresh token: the client asks its IdP for a new ID-JAG');
    assert.equal(raw.token_type, 'Bearer');
    return raw as { access_token: string; scope: string; expires_in: number };
  }

  async function refused(res: Response, error: string, description: RegExp, assertion?: string) {
    const text = await res.text();
    const body = JSON.parse(text) as { error: string; error_description?: string };
    assert.equal(body.error, error, text);
    assert.match(body.error_description ?? '', description, text);
    assert.ok(res.status >= 400 && res.status < 500, `${res.status}: ${text}`);
    if (assertion) assert.ok(!text.includes(assertion) && !text.includes(assertion.split('.')[2]!), 'the answer never echoes the assertion');
  }

  const forApp = (claims: Record<string, unknown> = {}) => idp.sign({ aud: issuer, client_id: app.client.client_id, resource: mcp, scope: 'warrant:read warrant:call', ...claims });

  before(async () => {
    idp = await startIdp();
    other = await startIdp();
    // A second IdP allowed to grant to one client only, and a third whose keys cannot be fetched.
    const dead = `http://127.0.0.1:${await closedPort()}/jwks`;
    const config = [
      { issuer: idp.issuer, jwks_uri: idp.jwksUri },
      { issuer: other.issuer, jwks_uri: other.jwksUri, owner_claim: 'sub', clients: ['wcl_someone_else'] },
      { issuer: 'https://idp.down.example', jwks_uri: dead },
    ];
    w = await startAuthzWarrant('sqlite', { env: { WARRANT_ENTERPRISE_IDPS: JSON.stringify(config) } });
    issuer = w.warrant.authz.issuer;
    as = await discover(w.base, issuer);
    jwks = createRemoteJWKSet(new URL(as.jwks_uri!));
    mcp = `${w.base}/mcp/warrant`;
    api = `${w.base}/v1`;
    await w.warrant.store.owners.ensure(OWNER, Date.now());

    const reg = await oauth.dynamicClientRegistrationRequest(
      as,
      { application_type: 'web', redirect_uris: ['https://app.example.com/cb'], grant_types: ['authorization_code'], token_endpoint_auth_method: 'client_secret_basic', client_name: 'Enterprise MCP client' },
      insecure,
    );
    const client = (await oauth.processDynamicClientRegistrationResponse(reg)) as oauth.Client & { client_secret: string };
    app = { client, auth: oauth.ClientSecretBasic(client.client_secret) };

    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const res = await fetch(`${w.base}/v1/authz/clients`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ owner: 'svc@example.com', client_name: 'ci-bot', scope: 'warrant:read', jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'ci', alg: 'ES256', use: 'sig' }] } }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    const h = (await res.json()) as { client_id: string; agent_id: string };
    headless = { client: { client_id: h.client_id, token_endpoint_auth_method: 'private_key_jwt' }, auth: oauth.PrivateKeyJwt({ key: privateKey, kid: 'ci' }), agentId: h.agent_id };
  });
  after(async () => {
    await w?.cleanup();
    await idp?.close();
    await other?.close();
  });

  test('an ID-JAG becomes an access token for one resource, the client an agent of the owner, with no consent screen', async () => {
    assert.ok(as.grant_types_supported?.includes(JWT_BEARER), 'the metadata lists the grant');
    assert.equal(await w.warrant.authz.clientAgents.activeAgentOf(app.client.client_id, OWNER), undefined, 'no agent before');

    const assertion = await forApp();
    const t = await issued(await present(app, assertion));
    assert.equal(t.scope, 'warrant:read warrant:call');
    assert.ok(t.expires_in > 0 && t.expires_in <= 600);
    const { payload: c, protectedHeader } = await jwtVerify(t.access_token, jwks, { issuer, audience: mcp, typ: 'at+jwt' });
    assert.equal(protectedHeader.typ, 'at+jwt');
    assert.equal(c.sub, OWNER);
    assert.equal(c.client_id, app.client.client_id);
    assert.equal(c.scope, 'warrant:read warrant:call');
    const agentId = await w.warrant.authz.clientAgents.activeAgentOf(app.client.client_id, OWNER);
    assert.ok(agentId, 'the client became an agent of the owner');
    assert.equal(c.agent_id, agentId);

    // The one verifier accepts it, for its own resource only; it works on /mcp/warrant as the owner's agent.
    const v = await w.warrant.authz.verifyAccessToken(t.access_token, { resource: mcp });
    assert.equal(v.owner, OWNER);
    assert.equal(v.agentId, agentId);
    await assert.rejects(w.warrant.authz.verifyAccessToken(t.access_token, { resource: api }), (e: { code?: string }) => e.code === 'agent_unauthenticated');
    const listed = await fetch(mcp, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${t.access_token}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(listed.status, 200, await listed.clone().text());

    // A second ID-JAG: the same agent, no second one.
    const again = await issued(await present(app, await forApp({ resource: api, scope: 'warrant:api' })));
    assert.equal(again.scope, 'warrant:api');
    assert.equal((await jwtVerify(again.access_token, jwks, { issuer, audience: api })).payload.agent_id, agentId);

    // Audited: the agent's creation, then each grant (client, owner, IdP, resource, scopes), never the assertion.
    const created = await w.warrant.audit.query({ type: 'agent.created', subject: `agent:${agentId}` });
    assert.equal(created.length, 1);
    const grants = await w.warrant.audit.query({ type: 'authz.enterprise_grant' });
    assert.equal(grants.length, 2);
    assert.equal(grants[0]!.actor, `idp:${idp.issuer}`);
    assert.equal(grants[0]!.subject, `agent:${agentId}`);
    assert.deepEqual(grants[0]!.data, { client_id: app.client.client_id, owner: OWNER, agent: agentId, agent_created: true, idp: idp.issuer, resource: mcp, scope: 'warrant:read warrant:call' });
    assert.equal(grants[1]!.data.agent_created, false);
    const all = JSON.stringify(await w.warrant.audit.query({ limit: 1000 }));
    assert.ok(!all.includes(assertion.split('.')[2]!), 'no audit entry holds the assertion');
  });

  test('scope widening is trimmed to what the IdP granted and the client may have', async () => {
    const wider = await issued(await present(app, await forApp({ scope: 'warrant:read' }), { scope: 'warrant:read warrant:call warrant:request' }));
    assert.equal(wider.scope, 'warrant:read');
    const asked = await issued(await present(app, await forApp(), { scope: 'warrant:call' }));
    assert.equal(asked.scope, 'warrant:call');
    // No scope claim: the resource's scopes, within the client's registered scope (headless: warrant:read).
    await w.warrant.store.owners.ensure('svc@example.com', Date.now());
    const h = await issued(await present(headless, await idp.sign({ aud: issuer, client_id: headless.client.client_id, resource: mcp, email: 'svc@example.com' })));
    assert.equal(h.scope, 'warrant:read');
    // Nothing left: invalid_scope.
    await refused(await present(app, await forApp({ scope: 'warrant:read' }), { scope: 'warrant:request' }), 'invalid_scope', /no scope of this resource/);
  });

  test('refusals name what failed and never echo the assertion', async () => {
    const now = Math.floor(Date.now() / 1000);
    let a = await idp.sign({ aud: issuer, client_id: app.client.client_id, resource: mcp }, { typ: 'JWT' });
    await refused(await present(app, a), 'invalid_grant', /typ must be oauth-id-jag\+jwt/, a);

    a = await forApp({ iss: 'https://unknown-idp.example' });
    await refused(await present(app, a), 'invalid_grant', /issuer is not an enterprise IdP/, a);

    a = await forApp({ aud: 'https://another-as.example' });
    await refused(await present(app, a), 'invalid_grant', /aud/, a);

    a = await forApp({ aud: [issuer, 'https://another-as.example'] });
    await refused(await present(app, a), 'invalid_grant', /aud/, a);

    a = await idp.sign({ aud: issuer, client_id: app.client.client_id, resource: mcp }, { iat: now - 900, exp: now - 300 });
    await refused(await present(app, a), 'invalid_grant', /expired/, a);

    a = await idp.sign({ aud: issuer, client_id: app.client.client_id, resource: mcp }, { exp: now + 7200 });
    await refused(await present(app, a), 'invalid_grant', /lives longer than 3600 s/, a);

    a = await idp.sign({ aud: issuer, client_id: app.client.client_id, resource: mcp }, { iat: now + 600, exp: now + 900 });
    await refused(await present(app, a), 'invalid_grant', /iat/, a);

    const { privateKey: rogue } = await generateKeyPair('ES256');
    a = await idp.sign({ aud: issuer, client_id: app.client.client_id, resource: mcp }, { key: rogue });
    await refused(await present(app, a), 'invalid_grant', /signature does not verify/, a);

    a = await forApp({ jti: undefined });
    await refused(await present(app, a), 'invalid_grant', /jti/, a);

    a = await forApp({ client_id: headless.client.client_id });
    await refused(await present(app, a), 'invalid_grant', /issued to another client/, a);

    a = await forApp({ resource: `${w.base}/mcp/nothing-here` });
    await refused(await present(app, a), 'invalid_target', /no token for this resource/, a);

    a = await forApp();
    await refused(await present(app, a, { resource: api }), 'invalid_target', /does not grant this resource/, a);

    a = await forApp({ email: 'stranger@example.com' });
    await refused(await present(app, a), 'invalid_grant', /not a Warrant owner/, a);

    a = await forApp({ email: undefined });
    await refused(await present(app, a), 'invalid_grant', /no email claim/, a);

    a = await other.sign({ aud: issuer, client_id: app.client.client_id, resource: mcp, sub: OWNER });
    await refused(await present(app, a), 'invalid_grant', /may not grant to this client/, a);

    await refused(await present(app, undefined), 'invalid_request', /assertion is required/);
    await refused(await present(app, 'not-a-jwt'), 'invalid_grant', /not a JWT/);

    // A public client cannot present one: the ID-JAG is a bearer credential.
    const pub = await registerPublicClient(as, 'http://127.0.0.1:53691/cb');
    a = await forApp({ client_id: pub.client_id });
    await refused(await present({ client: pub, auth: oauth.None() }, a), 'invalid_client', /public client/, a);
    assert.equal(await w.warrant.authz.clientAgents.activeAgentOf(pub.client_id, OWNER), undefined);
  });

  test("a symmetric alg is refused, and an IdP whose keys cannot be fetched answers 503", async () => {
    const now = Math.floor(Date.now() / 1000);
    const hs = await new SignJWT({ iss: idp.issuer, sub: 's', email: OWNER, aud: issuer, client_id: app.client.client_id, jti: 'j-hs', iat: now, exp: now + 60 })
      .setProtectedHeader({ alg: 'HS256', typ: 'oauth-id-jag+jwt' })
      .sign(randomBytes(32));
    await refused(await present(app, hs), 'invalid_grant', /alg is not allowed/, hs);

    const down = await new SignJWT({ iss: 'https://idp.down.example', sub: 's', email: OWNER, aud: issuer, client_id: app.client.client_id, jti: 'j-down', iat: now, exp: now + 60 })
      .setProtectedHeader({ alg: 'ES256', typ: 'oauth-id-jag+jwt', kid: 'k' })
      .sign((await generateKeyPair('ES256')).privateKey);
    const res = await present(app, down);
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { error: string }).error, 'temporarily_unavailable');
  });

  test('an ID-JAG is single use', async () => {
    const a = await forApp();
    await issued(await present(app, a));
    await refused(await present(app, a), 'invalid_grant', /already used/, a);
    // Two at once: exactly one wins.
    const b = await forApp();
    const both = await Promise.all([present(app, b), present(app, b)]);
    assert.deepEqual(both.map((r) => r.status).sort(), [200, 400]);
  });

  test("an offboarded owner gets no token, and the tokens issued before stop working", async () => {
    const who = 'leaver@example.com';
    await w.warrant.store.owners.ensure(who, Date.now());
    const t = await issued(await present(app, await forApp({ email: who })));
    await w.warrant.authz.verifyAccessToken(t.access_token, { resource: mcp });
    await w.warrant.store.db.updateTable('owners').set({ status: 'offboarded', offboarded_at: Date.now() }).where('id', '=', who).execute();
    const a = await forApp({ email: who });
    await refused(await present(app, a), 'invalid_grant', /offboarded/, a);
    await new Promise((r) => setTimeout(r, 1100)); // the verifier's agent cache is at most 1 s old
    await assert.rejects(w.warrant.authz.verifyAccessToken(t.access_token, { resource: mcp }), (e: { code?: string }) => e.code === 'agent_unauthenticated');
  });

  test('the JWKS is fetched once and cached', () => {
    assert.equal(idp.hits, 1);
  });
});

for (const kind of storeKinds.filter((k) => k.name === 'postgres')) {
  describe(`ID-JAG replay across two instances on ${kind.name}`, { skip: kind.skip }, () => {
    let idp: Idp;
    let a: AuthzWarrant;
    let b: AuthzWarrant;
    before(async () => {
      idp = await startIdp();
      const env = { WARRANT_ENTERPRISE_IDPS: JSON.stringify([{ issuer: idp.issuer, jwks_uri: idp.jwksUri }]) };
      a = await startAuthzWarrant(kind.name, { env });
      b = await startAuthzWarrant(kind.name, { env, shared: a.shared, publicUrl: a.base });
    });
    after(async () => {
      await b?.cleanup();
      await a?.cleanup();
      await idp?.close();
    });

    test('an ID-JAG redeemed at one instance is refused at the other', async () => {
      const asA = await discover(a.base, a.base);
      const asB = { ...asA, token_endpoint: `${b.base}/oauth2/token` };
      await a.warrant.store.owners.ensure(OWNER, Date.now());
      const reg = await oauth.dynamicClientRegistrationRequest(asA, { application_type: 'web', redirect_uris: ['https://app.example.com/cb'], token_endpoint_auth_method: 'client_secret_post' }, insecure);
      const client = (await oauth.processDynamicClientRegistrationResponse(reg)) as oauth.Client & { client_secret: string };
      const assertion = await idp.sign({ aud: a.base, client_id: client.client_id, resource: `${a.base}/mcp/warrant` });
      const body = () => new URLSearchParams({ assertion });
      const first = await oauth.genericTokenEndpointRequest(asA, client, oauth.ClientSecretPost(client.client_secret), JWT_BEARER, body(), insecure);
      assert.equal(first.status, 200, await first.clone().text());
      const second = await oauth.genericTokenEndpointRequest(asB, client, oauth.ClientSecretPost(client.client_secret), JWT_BEARER, body(), insecure);
      assert.equal(second.status, 400);
      assert.match(((await second.json()) as { error_description: string }).error_description, /already used/);
    });
  });
}

describe('ID-JAG claims, targets and scopes (properties)', () => {
  const scope = fc.constantFrom('a', 'b', 'c', 'd', 'e');
  const scopes = fc.uniqueArray(scope);

  test('granted scopes are within every bound, and all of their intersection', () => {
    fc.assert(
      fc.property(scopes, fc.option(scopes, { nil: undefined }), fc.option(scopes, { nil: undefined }), fc.option(scopes, { nil: undefined }), (resource, assertion, client, asked) => {
        const got = grantedScopes({ resource, assertion, client, asked });
        const expected = resource.filter((s) => (!assertion || assertion.includes(s)) && (!client || client.includes(s)) && (!asked || asked.includes(s)));
        assert.deepEqual(got, expected);
        assert.equal(new Set(got).size, got.length);
      }),
    );
  });

  test('the target is the resource asked, within the claim, or the claim when it names one', () => {
    const uri = fc.constantFrom<string>('https://w.example/v1', 'https://w.example/mcp/warrant', 'https://w.example/mcp/x');
    fc.assert(
      fc.property(fc.option(fc.uniqueArray(uri, { minLength: 1 }), { nil: undefined }), fc.option(fc.oneof(uri, fc.array(uri)), { nil: undefined }), (claim, asked) => {
        let target: string | undefined;
        try {
          target = targetOf(asked, claim);
        } catch (err) {
          assert.ok(['invalid_target', 'invalid_request'].includes((err as { error?: string }).error!), String(err));
          return;
        }
        const askedList = asked === undefined ? [] : [...new Set(([] as string[]).concat(asked))];
        if (askedList.length) assert.deepEqual([target], askedList);
        else assert.deepEqual([target], claim);
        if (claim) assert.ok(claim.includes(target));
      }),
    );
  });

  test('claims of any shape are either read or refused as invalid_grant', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom('iss', 'sub', 'client_id', 'jti', 'iat', 'exp', 'resource', 'scope', 'email', 'other'), fc.jsonValue()), (payload) => {
        try {
          const c = parseIdJagClaims(payload as JWTPayload);
          assert.equal(typeof c.sub, 'string');
          assert.equal(typeof c.clientId, 'string');
          assert.equal(typeof c.exp, 'number');
        } catch (err) {
          assert.equal((err as { error?: string }).error, 'invalid_grant', String(err));
        }
      }),
    );
  });

  test('WARRANT_ENTERPRISE_IDPS: a bad value is a ConfigError naming the variable, never repeating the value', () => {
    const marker = 'Zq9SECRETq9Z';
    const value = fc.oneof(fc.string().map((s) => s + marker), fc.integer(), fc.constant(null), fc.constant(`http://evil.example/${marker}`));
    const idpish = fc.record({ issuer: value, jwks_uri: value, owner_claim: value, clients: fc.oneof(value, fc.array(value)) }, { requiredKeys: [] });
    fc.assert(
      fc.property(fc.oneof(fc.string().map((s) => s + marker), fc.array(idpish).map((x) => JSON.stringify(x))), (raw) => {
        try {
          loadConfig({ WARRANT_ENTERPRISE_IDPS: raw });
        } catch (err) {
          assert.ok(err instanceof ConfigError);
          assert.match(err.message, /WARRANT_ENTERPRISE_IDPS/);
          assert.ok(!err.message.includes(marker), err.message);
        }
      }),
    );
    const ok = loadConfig({ WARRANT_ENTERPRISE_IDPS: JSON.stringify([{ issuer: 'https://acme.okta.com', jwks_uri: 'https://acme.okta.com/oauth2/v1/keys', clients: ['wcl_1'] }]) });
    assert.deepEqual(ok.enterpriseIdps, [{ issuer: 'https://acme.okta.com', jwksUri: 'https://acme.okta.com/oauth2/v1/keys', ownerClaim: 'email', clients: ['wcl_1'] }]);
    assert.deepEqual(loadConfig({}).enterpriseIdps, []);
  });

  test('WARRANT_ENTERPRISE_IDPS may be a YAML list in the WARRANT_CONFIG file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warrant-idps-'));
    try {
      const file = join(dir, 'warrant.yaml');
      writeFileSync(file, 'WARRANT_ENTERPRISE_IDPS:\n  - issuer: https://acme.okta.com\n    jwks_uri: https://acme.okta.com/oauth2/v1/keys\n    owner_claim: sub\n');
      assert.deepEqual(loadConfig({ WARRANT_CONFIG: file }).enterpriseIdps, [{ issuer: 'https://acme.okta.com', jwksUri: 'https://acme.okta.com/oauth2/v1/keys', ownerClaim: 'sub' }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
