import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN, startTestWarrant } from '../helpers/app.ts';
import { storeKinds } from '../helpers/stores.ts';
import { loadConfig } from '../../src/config/index.ts';

// SCIM 2.0 at /scim/v2 with the request shapes Okta and Microsoft Entra send (their provisioning
// docs' examples: Okta's "SCIM 2.0 protocol reference", Entra's "Build a SCIM endpoint" request
// and response examples, including Entra's `"op": "Replace"` with the string value "False").

const TOKEN = 'scim-token-for-tests-0123456789abcdef';
const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const LIST = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Okta's create request (its SCIM reference), with the password Okta sends when password sync is on. */
const oktaCreate = (userName: string) => ({
  schemas: [USER],
  userName,
  name: { givenName: 'Test', familyName: 'User' },
  emails: [{ primary: true, value: userName, type: 'work' }],
  displayName: 'Test User',
  locale: 'en-US',
  externalId: '00ujl29u0le5T6Aj10h7',
  groups: [],
  password: 'Okta-synced-pa55word!',
  active: true,
});

/** Entra's create request (with the enterprise extension and its defaults mapping). */
const entraCreate = (userName: string, externalId: string) => ({
  schemas: [USER, 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'],
  externalId,
  userName,
  active: true,
  emails: [{ primary: true, type: 'work', value: `${userName}@testuser.com` }],
  meta: { resourceType: 'User' },
  name: { formatted: 'givenName familyName', familyName: 'familyName', givenName: 'givenName' },
  roles: [],
  'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User': { department: 'Finance', employeeNumber: '42' },
});

/** Entra disabling a user: capitalised op, the value as the string "False". */
const entraDisable = { schemas: [PATCH_OP], Operations: [{ op: 'Replace', path: 'active', value: 'False' }] };
/** Okta deactivating a user: no path, the value an object. */
const oktaDeactivate = { schemas: [PATCH_OP], Operations: [{ op: 'replace', value: { active: false } }] };

for (const kind of storeKinds) describe(`SCIM 2.0 Users at /scim/v2 (${kind.name})`, { skip: kind.skip }, () => {
  let env: LifecycleEnv;

  before(async () => {
    env = await startLifecycle({ sandbox: { accessTokenTtl: 60 }, store: kind.name, env: { WARRANT_SCIM_TOKEN: TOKEN } });
  });
  after(async () => env?.cleanup());

  function scim(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, body?: unknown, headers: Record<string, string> = {}) {
    return env.warrant.app.inject({
      method,
      url: `/scim/v2${url}`,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/scim+json' }), ...headers },
      ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
  }
  const admin = (method: 'GET' | 'POST', url: string, payload?: object) =>
    env.warrant.app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, ...(payload ? { payload } : {}) });
  const byUserName = (name: string) => scim('GET', `/Users?filter=${encodeURIComponent(`userName eq "${name}"`)}&startIndex=1&count=100`);

  function scimError(res: { statusCode: number; headers: Record<string, unknown>; json(): any }, status: number, scimType?: string) {
    assert.equal(res.statusCode, status);
    assert.match(String(res.headers['content-type']), /^application\/scim\+json/);
    const body = res.json();
    assert.deepEqual(body.schemas, [ERROR]);
    assert.equal(body.status, String(status));
    assert.equal(body.scimType, scimType);
    assert.equal(typeof body.detail, 'string');
    return body as { detail: string };
  }

  async function ownerStatus(owner: string) {
    return (await env.warrant.store.owners.get(owner))?.status;
  }

  test('a missing or wrong bearer token is 401 with a SCIM error body; the token is never logged', async () => {
    for (const authorization of [undefined, 'Bearer wrong-token-0123456789abcdef', `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`, `Bearer ${ADMIN_TOKEN}`]) {
      const res = await env.warrant.app.inject({ method: 'GET', url: '/scim/v2/Users', headers: authorization ? { authorization } : {} });
      scimError(res, 401);
      assert.match(String(res.headers['www-authenticate']), /^Bearer/);
    }
    // Not even a discovery document, nor an unknown endpoint, without the token.
    scimError(await env.warrant.app.inject({ method: 'GET', url: '/scim/v2/ServiceProviderConfig' }), 401);
    scimError(await env.warrant.app.inject({ method: 'GET', url: '/scim/v2/Groups' }), 401);
    assert.equal((await scim('GET', '/Users')).statusCode, 200);
    assert.ok(!env.logs.text().includes(TOKEN));
  });

  test('ServiceProviderConfig, Schemas and ResourceTypes describe Users (patch and filter supported, no bulk, no etag)', async () => {
    const spc = await scim('GET', '/ServiceProviderConfig');
    assert.equal(spc.statusCode, 200);
    assert.match(String(spc.headers['content-type']), /^application\/scim\+json/);
    const config = spc.json();
    assert.deepEqual(config.schemas, ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig']);
    assert.equal(config.patch.supported, true);
    assert.equal(config.filter.supported, true);
    assert.ok(config.filter.maxResults > 0);
    assert.equal(config.bulk.supported, false);
    assert.equal(config.etag.supported, false);
    assert.equal(config.authenticationSchemes[0].type, 'oauthbearertoken');

    const types = (await scim('GET', '/ResourceTypes')).json();
    assert.deepEqual(types.schemas, [LIST]);
    assert.equal(types.totalResults, 1);
    assert.equal(types.Resources[0].endpoint, '/Users');
    assert.equal(types.Resources[0].schema, USER);
    assert.equal((await scim('GET', '/ResourceTypes/User')).json().id, 'User');
    scimError(await scim('GET', '/ResourceTypes/Group'), 404);

    const schemas = (await scim('GET', '/Schemas')).json();
    assert.equal(schemas.Resources[0].id, USER);
    const userName = schemas.Resources[0].attributes.find((a: { name: string }) => a.name === 'userName');
    assert.equal(userName.uniqueness, 'server');
    assert.equal(userName.mutability, 'immutable');
    assert.equal((await scim('GET', `/Schemas/${USER}`)).json().id, USER);
    scimError(await scim('GET', '/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group'), 404);
    scimError(await scim('GET', '/Groups'), 404);
  });

  test('Okta: lookup, create (the password is not kept), duplicate 409 uniqueness, get, PUT replace', async () => {
    const name = 'okta.user@example.com';
    const none = await byUserName(name);
    assert.equal(none.statusCode, 200);
    assert.deepEqual(none.json(), { schemas: [LIST], totalResults: 0, startIndex: 1, itemsPerPage: 0, Resources: [] });

    const created = await scim('POST', '/Users', oktaCreate(name));
    assert.equal(created.statusCode, 201, created.body);
    assert.match(String(created.headers['content-type']), /^application\/scim\+json/);
    const user = created.json();
    assert.match(user.id, UUID);
    assert.equal(created.headers.location, `${env.warrant.config.publicUrl}/scim/v2/Users/${user.id}`);
    assert.deepEqual(user.schemas, [USER]);
    assert.equal(user.userName, name);
    assert.equal(user.active, true);
    assert.equal(user.externalId, '00ujl29u0le5T6Aj10h7');
    assert.deepEqual(user.name, { givenName: 'Test', familyName: 'User' });
    assert.deepEqual(user.emails, [{ value: name, type: 'work', primary: true }]);
    assert.equal(user.displayName, 'Test User');
    assert.equal(user.meta.resourceType, 'User');
    assert.equal(user.meta.location, created.headers.location);
    assert.ok(!('password' in user));
    assert.equal(await ownerStatus(name), 'active');
    // The password appears nowhere: not in the store, the audit log or the logs.
    const stored = await env.warrant.store.db.selectFrom('scim_users').selectAll().where('id', '=', user.id).executeTakeFirstOrThrow();
    assert.ok(!JSON.stringify(stored).includes('Okta-synced'));
    const audit = await env.warrant.audit.query({ subject: `owner:${name}` });
    assert.deepEqual(audit.map((e) => [e.type, e.actor]), [['owner.provisioned', 'scim']]);
    assert.ok(!JSON.stringify(audit).includes('Okta-synced'));
    assert.ok(!env.logs.text().includes('Okta-synced'));

    scimError(await scim('POST', '/Users', oktaCreate(name)), 409, 'uniqueness');

    const found = (await byUserName(name)).json();
    assert.equal(found.totalResults, 1);
    assert.equal(found.itemsPerPage, 1);
    assert.equal(found.Resources[0].id, user.id);
    const got = await scim('GET', `/Users/${user.id}`);
    assert.equal(got.statusCode, 200);
    assert.deepEqual(got.json(), user);

    // Okta's profile push: the whole user, id and active included.
    const put = await scim('PUT', `/Users/${user.id}`, { ...oktaCreate(name), id: user.id, name: { givenName: 'Tess', familyName: 'User' }, emails: [{ primary: true, value: 'tess@example.com', type: 'work' }] });
    assert.equal(put.statusCode, 200, put.body);
    assert.deepEqual(put.json().name, { givenName: 'Tess', familyName: 'User' });
    assert.deepEqual(put.json().emails, [{ value: 'tess@example.com', type: 'work', primary: true }]);
    assert.equal(put.json().active, true);
    const updated = await env.warrant.audit.query({ subject: `owner:${name}`, type: 'owner.updated' });
    assert.deepEqual(updated.at(-1)?.data.attributes, ['emails', 'name']);
    // userName is the owner id: it cannot change.
    scimError(await scim('PUT', `/Users/${user.id}`, { ...oktaCreate('renamed@example.com'), id: user.id }), 400, 'mutability');
    assert.ok(!env.logs.text().includes('Okta-synced'));
  });

  test('Okta: PATCH {"op":"replace","value":{"active":false}} offboards; PUT with active true reactivates without restoring agents', async () => {
    const name = 'okta.leaver@example.com';
    const connection = await env.connect(name, ['items:read']);
    const agent = (await admin('POST', '/v1/agents', { name: 'okta-bot', owner: name, grants: [{ connection, scopes: ['items:read'] }] })).json();
    const id = (await byUserName(name)).json().Resources[0].id as string;

    const patched = await scim('PATCH', `/Users/${id}`, oktaDeactivate);
    assert.equal(patched.statusCode, 200, patched.body);
    assert.equal(patched.json().active, false);
    assert.equal(await ownerStatus(name), 'offboarded');
    assert.equal((await admin('GET', `/v1/agents/${agent.id}`)).json().status, 'revoked');
    const offboarded = await env.warrant.audit.query({ subject: `owner:${name}`, type: 'owner.offboarded' });
    assert.equal(offboarded[0]?.actor, 'scim');
    // The same PATCH again changes nothing and offboards nothing more.
    assert.equal((await scim('PATCH', `/Users/${id}`, oktaDeactivate)).json().active, false);
    assert.equal((await env.warrant.audit.query({ subject: `owner:${name}`, type: 'owner.offboarded' })).length, 1);
    // Something left behind (as a revocation that failed for a transient reason leaves its
    // connection): the IdP's next inactive update runs the offboarding again.
    await env.warrant.store.db.updateTable('agents').set({ status: 'active', revoked_at: null }).where('id', '=', agent.id).execute();
    assert.equal((await scim('PATCH', `/Users/${id}`, entraDisable)).statusCode, 200);
    assert.equal((await admin('GET', `/v1/agents/${agent.id}`)).json().status, 'revoked');

    const reactivated = await scim('PUT', `/Users/${id}`, { ...oktaCreate(name), id, active: true });
    assert.equal(reactivated.statusCode, 200, reactivated.body);
    assert.equal(reactivated.json().active, true);
    assert.equal(await ownerStatus(name), 'active');
    assert.deepEqual((await env.warrant.audit.query({ subject: `owner:${name}`, type: 'owner.reactivated' })).map((e) => e.actor), ['scim']);
    // What the offboarding revoked stays revoked; the owner starts over.
    assert.equal((await admin('GET', `/v1/agents/${agent.id}`)).json().status, 'revoked');
    assert.equal((await admin('GET', `/v1/connections/${connection}`)).statusCode, 404);
    const fresh = await admin('POST', '/v1/agents', { name: 'okta-bot-2', owner: name, grants: [{ connection: await env.connect(name, ['items:read']), scopes: ['items:read'] }] });
    assert.equal(fresh.statusCode, 201, fresh.body);
  });

  test('Entra: lookup (spaces as +), create with the enterprise extension, filter by externalId, a multi-operation PATCH', async () => {
    const name = 'Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1';
    const externalId = '0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef';
    const lookup = await scim('GET', `/Users?filter=userName+eq+%22${name}%22`);
    assert.equal(lookup.statusCode, 200, lookup.body);
    assert.equal(lookup.json().totalResults, 0);

    const created = await scim('POST', '/Users', entraCreate(name, externalId));
    assert.equal(created.statusCode, 201, created.body);
    const user = created.json();
    assert.equal(user.userName, name);
    assert.equal(user.externalId, externalId);
    assert.equal(user.active, true);
    assert.ok(!('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User' in user)); // not kept

    const byExternal = (await scim('GET', `/Users?filter=${encodeURIComponent(`externalId eq "${externalId}"`)}`)).json();
    assert.equal(byExternal.totalResults, 1);
    assert.equal(byExternal.Resources[0].id, user.id);
    const byId = (await scim('GET', `/Users?filter=${encodeURIComponent(`id eq "${user.id}"`)}`)).json();
    assert.equal(byId.Resources[0].userName, name);

    const patched = await scim('PATCH', `/Users/${user.id}`, {
      schemas: [PATCH_OP],
      Operations: [
        { op: 'Replace', path: 'emails[type eq "work"].value', value: 'updatedEmail@microsoft.com' },
        { op: 'Replace', path: 'name.familyName', value: 'updatedFamilyName' },
        { op: 'Add', path: 'displayName', value: 'Updated Name' },
        { op: 'Add', path: 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department', value: 'Sales' },
        { op: 'Replace', path: 'phoneNumbers[type eq "work"].value', value: '+1 555 0100' },
        { op: 'Remove', path: 'name.formatted' },
      ],
    });
    assert.equal(patched.statusCode, 200, patched.body);
    const after = patched.json();
    assert.deepEqual(after.emails, [{ value: 'updatedEmail@microsoft.com', type: 'work', primary: true }]);
    assert.deepEqual(after.name, { familyName: 'updatedFamilyName', givenName: 'givenName' });
    assert.equal(after.displayName, 'Updated Name');
    assert.equal(after.active, true);
    assert.deepEqual((await scim('GET', `/Users/${user.id}`)).json(), after);
    // attributes / excludedAttributes project the answer; id and schemas always stay.
    const projected = (await scim('GET', `/Users/${user.id}?attributes=userName,active`)).json();
    assert.deepEqual(Object.keys(projected).sort(), ['active', 'id', 'schemas', 'userName']);
    const excluded = (await scim('GET', `/Users?filter=${encodeURIComponent(`userName eq "${name}"`)}&excludedAttributes=emails,name`)).json();
    assert.ok(!('emails' in excluded.Resources[0]) && !('name' in excluded.Resources[0]) && excluded.Resources[0].userName === name);
  });

  test('Entra PATCH active "False" offboards the owner: its agents get 401, its grants are revoked and verified dead at the IdP', async () => {
    const name = 'entra.leaver@example.com';
    const connections = [await env.connect(name, ['items:read']), await env.connect(name, ['items:read', 'items:write'])];
    const agents: { id: string; api_key: string }[] = [];
    for (const [i, connection] of connections.entries()) {
      const res = await admin('POST', '/v1/agents', { name: `entra-bot-${i}`, owner: name, grants: [{ connection, scopes: ['items:read'], token_export: true }] });
      assert.equal(res.statusCode, 201, res.body);
      agents.push(res.json());
    }
    const tokens: string[] = [];
    for (const [i, a] of agents.entries()) {
      const res = await env.warrant.app.inject({ url: `/v1/connections/${connections[i]}/token`, headers: { authorization: `Bearer ${a.api_key}` } });
      assert.equal(res.statusCode, 200, res.body);
      tokens.push(res.json().access_token);
      assert.equal((await fetch(`${env.sandbox.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${res.json().access_token}` } })).status, 200);
    }
    // Entra finds the owner Warrant knows (named by the connections) and links to it.
    const found = (await byUserName(name)).json();
    assert.equal(found.totalResults, 1);
    const id = found.Resources[0].id as string;
    assert.equal(found.Resources[0].active, true);

    const res = await scim('PATCH', `/Users/${id}`, entraDisable);
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().active, false);

    for (const [i, a] of agents.entries()) {
      const after = await env.warrant.app.inject({ url: `/v1/connections/${connections[i]}/token`, headers: { authorization: `Bearer ${a.api_key}` } });
      assert.equal(after.statusCode, 401, after.body);
      assert.equal(after.json().code, 'agent_unauthenticated');
    }
    for (const t of tokens) assert.equal((await fetch(`${env.sandbox.apiBaseUrl}/items`, { headers: { authorization: `Bearer ${t}` } })).status, 401);
    const owner = await admin('GET', `/v1/owners/${encodeURIComponent(name)}`);
    assert.equal(owner.statusCode, 200, owner.body);
    const report = owner.json().offboarding;
    assert.equal(report.status, 'offboarded');
    assert.deepEqual(report.agents.map((a: { id: string; revoked: boolean }) => [a.id, a.revoked]).sort(), agents.map((a) => [a.id, true]).sort());
    assert.deepEqual(report.connections.map((c: { id: string }) => c.id).sort(), [...connections].sort());
    for (const c of report.connections) {
      assert.equal(c.revoked, true);
      assert.equal(c.verified, true, c.detail);
    }
    const entry = (await env.warrant.audit.query({ subject: `owner:${name}`, type: 'owner.offboarded' }))[0];
    assert.equal(entry?.actor, 'scim');
    assert.equal((await scim('GET', `/Users/${id}`)).json().active, false);
  });

  test('DELETE offboards and answers 204; the User is 404 from then on; a later POST provisions the userName anew', async () => {
    const name = 'deleted.user@example.com';
    const connection = await env.connect(name, ['items:read']);
    const agent = (await admin('POST', '/v1/agents', { name: 'del-bot', owner: name, grants: [{ connection, scopes: ['items:read'] }] })).json();
    const id = (await byUserName(name)).json().Resources[0].id as string;

    const del = await scim('DELETE', `/Users/${id}`);
    assert.equal(del.statusCode, 204);
    assert.equal(del.body, '');
    assert.equal(await ownerStatus(name), 'offboarded');
    assert.equal((await admin('GET', `/v1/agents/${agent.id}`)).json().status, 'revoked');
    assert.equal((await admin('GET', `/v1/connections/${connection}`)).statusCode, 404);
    scimError(await scim('GET', `/Users/${id}`), 404);
    scimError(await scim('PATCH', `/Users/${id}`, entraDisable), 404);
    scimError(await scim('DELETE', `/Users/${id}`), 404);
    assert.equal((await byUserName(name)).json().totalResults, 0);
    assert.deepEqual((await env.warrant.audit.query({ subject: `owner:${name}`, type: 'owner.deprovisioned' })).map((e) => e.actor), ['scim']);

    const again = await scim('POST', '/Users', oktaCreate(name));
    assert.equal(again.statusCode, 201, again.body);
    assert.notEqual(again.json().id, id);
    assert.equal(again.json().active, true);
    assert.equal(await ownerStatus(name), 'active');
    assert.equal((await admin('GET', `/v1/agents/${agent.id}`)).json().status, 'revoked');
  });

  test('an owner Warrant knows already is found by the filter with a stable id, and POST for it is 409 uniqueness', async () => {
    const name = 'known.owner@example.com';
    await env.connect(name, ['items:read']);
    const first = (await byUserName(name)).json();
    assert.equal(first.totalResults, 1);
    assert.match(first.Resources[0].id, UUID);
    assert.equal((await byUserName(name)).json().Resources[0].id, first.Resources[0].id);
    scimError(await scim('POST', '/Users', entraCreate(name, 'ext-known')), 409, 'uniqueness');
    // userName is compared exactly (it is the owner id).
    assert.equal((await byUserName(name.toUpperCase())).json().totalResults, 0);
  });

  test('paging: startIndex (1-based) and count over every User, totalResults over all', async () => {
    const all = (await scim('GET', '/Users?count=200')).json();
    assert.ok(all.totalResults >= 5, JSON.stringify(all));
    assert.equal(all.Resources.length, all.totalResults);
    const page = (await scim('GET', '/Users?startIndex=2&count=2')).json();
    assert.equal(page.startIndex, 2);
    assert.equal(page.itemsPerPage, 2);
    assert.equal(page.totalResults, all.totalResults);
    assert.deepEqual(page.Resources.map((u: { id: string }) => u.id), all.Resources.slice(1, 3).map((u: { id: string }) => u.id));
    const counted = (await scim('GET', '/Users?count=0')).json();
    assert.equal(counted.totalResults, all.totalResults);
    assert.deepEqual(counted.Resources, []);
    const clamped = (await scim('GET', '/Users?startIndex=0&count=-3')).json();
    assert.equal(clamped.startIndex, 1);
    assert.deepEqual(clamped.Resources, []);
    scimError(await scim('GET', '/Users?count=ten'), 400, 'invalidValue');
  });

  test('refusals carry a SCIM error naming the field: filters, userName changes, values, syntax, unknown ids', async () => {
    const name = 'refusals@example.com';
    const id = (await scim('POST', '/Users', oktaCreate(name))).json().id as string;

    for (const filter of ['userName ne "x"', 'emails[type eq "work"].value eq "x"', 'userName eq "a" or userName eq "b"', 'displayName eq "x"', 'userName eq x']) {
      scimError(await scim('GET', `/Users?filter=${encodeURIComponent(filter)}`), 400, 'invalidFilter');
    }
    const patch = (...Operations: unknown[]) => scim('PATCH', `/Users/${id}`, { schemas: [PATCH_OP], Operations });
    assert.match(scimError(await patch({ op: 'Replace', path: 'userName', value: 'other@example.com' }), 400, 'mutability').detail, /Operations\[0\]/);
    scimError(await patch({ op: 'replace', path: 'id', value: 'x' }), 400, 'mutability');
    assert.match(scimError(await patch({ op: 'Replace', path: 'active', value: 'maybe' }), 400, 'invalidValue').detail, /Operations\[0\]\.value/);
    scimError(await patch({ op: 'remove' }), 400, 'noTarget');
    scimError(await patch({ op: 'merge', path: 'active', value: false }), 400, 'invalidSyntax');
    scimError(await patch({ op: 'replace', path: 'emails[value co "x"].value', value: 'a@b.c' }), 400, 'invalidFilter');
    scimError(await patch({ op: 'replace', path: 'bad path!', value: 'x' }), 400, 'invalidPath');
    scimError(await scim('PATCH', `/Users/${id}`, { Operations: [{ op: 'replace', path: 'active', value: false }] }), 400, 'invalidSyntax');
    scimError(await scim('PATCH', `/Users/${id}`, { schemas: [PATCH_OP], Operations: [] }), 400, 'invalidSyntax');
    // A failing operation keeps nothing of the operations before it (RFC 7644 §3.5.2).
    scimError(await patch({ op: 'replace', path: 'displayName', value: 'Kept?' }, { op: 'replace', path: 'active', value: 'nope' }), 400, 'invalidValue');
    assert.equal((await scim('GET', `/Users/${id}`)).json().displayName, 'Test User');
    assert.equal(await ownerStatus(name), 'active');

    const { userName: _drop, ...noUserName } = oktaCreate('x');
    assert.match(scimError(await scim('POST', '/Users', noUserName), 400, 'invalidValue').detail, /^userName/);
    assert.match(scimError(await scim('POST', '/Users', { ...oktaCreate('y'), schemas: [] }), 400, 'invalidSyntax').detail, /^schemas/);
    assert.match(scimError(await scim('POST', '/Users', { ...oktaCreate('z'), active: 'yes' }), 400, 'invalidValue').detail, /^active/);
    assert.match(scimError(await scim('POST', '/Users', { ...oktaCreate('w'), userName: 'a'.repeat(400) }), 400, 'invalidValue').detail, /^userName/);
    assert.match(scimError(await scim('POST', '/Users', { ...oktaCreate('v'), emails: [{ type: 'work' }] }), 400, 'invalidValue').detail, /^emails\[0\]\.value/);
    scimError(await scim('POST', '/Users', '{"schemas":'), 400, 'invalidSyntax');
    scimError(await scim('POST', '/Users', 'userName=x', { 'content-type': 'application/x-www-form-urlencoded' }), 415);
    scimError(await scim('GET', '/Users/00000000-0000-4000-8000-000000000000'), 404);
    scimError(await scim('PUT', '/Users/00000000-0000-4000-8000-000000000000', oktaCreate(name)), 404);
    // Plain application/json is taken too (some clients send it).
    const plain = await env.warrant.app.inject({ method: 'PATCH', url: `/scim/v2/Users/${id}`, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, payload: { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'title', value: 'Engineer' }] } });
    assert.equal(plain.statusCode, 200, plain.body);
    assert.equal(plain.json().title, 'Engineer');
  });

  test('repeated wrong tokens from one address are 429 with Retry-After; the right token still passes at once', async () => {
    const statuses: number[] = [];
    let limited: Awaited<ReturnType<typeof scim>> | undefined;
    for (let i = 0; i < 30; i++) {
      const res = await scim('GET', '/Users', undefined, { authorization: `Bearer guess-${i}-0123456789abcdef` });
      statuses.push(res.statusCode);
      if (res.statusCode === 429) limited = res;
    }
    assert.ok(statuses.every((s) => s === 401 || s === 429), statuses.join());
    assert.ok(limited, 'no 429 after 30 wrong tokens');
    scimError(limited, 429);
    assert.ok(Number(limited.headers['retry-after']) >= 1);
    assert.equal((await scim('GET', '/ServiceProviderConfig')).statusCode, 200);
  });
});

describe('SCIM is off without WARRANT_SCIM_TOKEN', () => {
  let t: Awaited<ReturnType<typeof startTestWarrant>>;
  before(async () => {
    t = await startTestWarrant();
  });
  after(async () => t?.cleanup());

  test('/scim/v2 answers 404, whatever the token', async () => {
    for (const url of ['/scim/v2/Users', '/scim/v2/ServiceProviderConfig', '/scim/v2/Schemas']) {
      for (const headers of [{}, { authorization: `Bearer ${TOKEN}` }, { authorization: `Bearer ${ADMIN_TOKEN}` }]) {
        const res = await t.warrant.app.inject({ method: 'GET', url, headers });
        assert.equal(res.statusCode, 404, url);
      }
    }
    const post = await t.warrant.app.inject({ method: 'POST', url: '/scim/v2/Users', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/scim+json' }, payload: JSON.stringify(oktaCreate('x@example.com')) });
    assert.equal(post.statusCode, 404);
    assert.equal(await t.warrant.store.owners.get('x@example.com'), undefined);
  });

  test('a WARRANT_SCIM_TOKEN shorter than 16 characters stops start-up, named but not echoed', () => {
    assert.throws(() => loadConfig({ WARRANT_DATA_DIR: '/tmp/unused', WARRANT_SCIM_TOKEN: 'short-secret' }), (err: Error) => {
      assert.match(err.message, /WARRANT_SCIM_TOKEN: must be at least 16 characters/);
      assert.ok(!err.message.includes('short-secret'));
      return true;
    });
    assert.equal(loadConfig({ WARRANT_DATA_DIR: '/tmp/unused', WARRANT_SCIM_TOKEN: TOKEN }).scimToken, TOKEN);
  });
});
