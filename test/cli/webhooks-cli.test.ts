import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { webhooksCommand } from '../../src/cli/webhooks.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';
import { baseUrlOf, cliRunner } from '../helpers/cli.ts';
import { eventually, startLifecycle, type LifecycleEnv } from '../helpers/lifecycle.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';

// `warrant webhooks create|list|deliveries|redeliver|delete` against a running Warrant and a real
// receiver, and the route behind redeliver (POST /v1/webhooks/:id/deliveries/:delivery/redeliver):
// a delivered message is sent again with the same webhook-id and audited; a pending one is refused
// (409), an unknown one is 404; a failed one gets a fresh retry budget; role operate may redeliver,
// role read may not.

describe('warrant webhooks and redelivery (CLI against a running server)', () => {
  let env: LifecycleEnv;
  let receiver: Receiver;
  const base = () => baseUrlOf(env);
  const webhooks = cliRunner(webhooksCommand, base);
  const api = async (method: string, path: string, body?: unknown, token = ADMIN_TOKEN) => {
    const res = await fetch(`${base()}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: await res.json() };
  };

  before(async () => {
    receiver = await startReceiver();
    env = await startLifecycle({ env: { WARRANT_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.1/32' } });
  });
  after(async () => {
    await env?.cleanup();
    await receiver?.close();
  });

  test('create shows the secret once; deliveries; redeliver sends the same message again', { timeout: 60_000 }, async () => {
    const created = await webhooks(['webhooks', 'create', `${receiver.url}/ok`, '--events', '*']);
    assert.equal(created.code, 0, created.stderr);
    const secret = /^signing secret: (whsec_\S+)$/m.exec(created.stdout)?.[1];
    assert.ok(secret, created.stdout);
    assert.match(created.stdout, /it will not be shown again/);
    const id = /^webhook:\s+(whk_\S+)$/m.exec(created.stdout)![1]!;

    const listed = await webhooks(['webhooks', 'list']);
    assert.match(listed.stdout, /^ID\s+URL\s+EVENTS\s+STATUS\s+CREATED$/m);
    assert.match(listed.stdout, new RegExp(`^${id}\\s+http://127\\.0\\.0\\.1:\\d+/ok\\s+\\*\\s+active\\s+`, 'm'));
    assert.ok(!listed.stdout.includes(secret));
    assert.deepEqual(JSON.parse((await webhooks(['webhooks', 'list', '--json'])).stdout), (await api('GET', '/v1/webhooks')).body);

    // A `*` webhook gets its own webhook.created.
    await eventually(() => receiver.at('/ok').length === 1);
    const first = receiver.at('/ok')[0]!;
    const delivery = first.headers['webhook-id'] as string;
    await eventually(async () => (await api('GET', `/v1/webhooks/${id}/deliveries`)).body.deliveries[0]?.status === 'delivered');
    const ds = await webhooks(['webhooks', 'deliveries', id]);
    assert.equal(ds.code, 0, ds.stderr);
    assert.match(ds.stdout, /^DELIVERY\s+EVENT\s+STATUS\s+ATTEMPTS\s+LAST\s+NEXT ATTEMPT\s+CREATED$/m);
    assert.match(ds.stdout, new RegExp(`^${delivery}\\s+webhook\\.created\\s+delivered\\s+1\\s+HTTP 200\\s+-\\s+`, 'm'));

    const again = await webhooks(['webhooks', 'redeliver', id, delivery]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`^queued again: ${delivery} \\(webhook\\.created\\)`));
    await eventually(() => receiver.at('/ok').some((r, i) => i > 0 && r.headers['webhook-id'] === delivery));
    const resent = receiver.at('/ok').find((r, i) => i > 0 && r.headers['webhook-id'] === delivery)!;
    assert.equal(resent.body, first.body, 'the same message, re-signed');
    await eventually(async () => {
      const d = (await api('GET', `/v1/webhooks/${id}/deliveries`)).body.deliveries.find((x: { id: string }) => x.id === delivery);
      return d?.status === 'delivered' && d.attempts === 1;
    });
    const audit = await env.warrant.audit.query({ type: 'webhook.redelivered' });
    assert.equal(audit.length, 1);
    assert.equal(audit[0]!.subject, `webhook:${id}`);
    assert.deepEqual(audit[0]!.data, { delivery, event_id: audit[0]!.data.event_id, previous_status: 'delivered', origin: receiver.url });
    assert.equal(audit[0]!.actor, 'admin');

    const deleted = await webhooks(['webhooks', 'delete', id]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(deleted.stdout, `deleted: ${id}\n`);
  });

  test('redeliver: a pending delivery is 409, a failed one is sent again, unknown ids 404, role read 403 and role operate allowed', { timeout: 60_000 }, async () => {
    receiver.answer('/down', 500);
    const hook = await api('POST', '/v1/webhooks', { url: `${receiver.url}/down`, events: ['webhook.*'] });
    assert.equal(hook.status, 201);
    const id = hook.body.id as string;
    await eventually(() => receiver.at('/down').length >= 1);
    const pending = await eventually(async () => {
      const d = (await api('GET', `/v1/webhooks/${id}/deliveries`)).body.deliveries[0];
      return d?.attempts === 1 && d.status === 'pending' ? d : undefined;
    });
    const conflict = await webhooks(['webhooks', 'redeliver', id, pending.id]);
    assert.equal(conflict.code, 1);
    assert.equal(conflict.stderr, `warrant: conflict: delivery ${pending.id} is already pending: the worker will send it\n`);

    // Retries exhausted (8 attempts over ~2.5 h, here written directly) and the receiver back up: one redelivery, a fresh budget.
    await env.warrant.store.db.updateTable('webhook_deliveries').set({ status: 'failed', attempts: 8, next_attempt_at: null }).where('id', '=', pending.id).execute();
    receiver.answer('/down', 200);
    const before = receiver.at('/down').length;
    const api202 = await api('POST', `/v1/webhooks/${id}/deliveries/${pending.id}/redeliver`);
    assert.equal(api202.status, 202, JSON.stringify(api202.body));
    assert.equal(api202.body.status, 'pending');
    assert.equal(api202.body.attempts, 0);
    await eventually(async () => {
      const d = (await api('GET', `/v1/webhooks/${id}/deliveries`)).body.deliveries.find((x: { id: string }) => x.id === pending.id);
      return d?.status === 'delivered' && d.attempts === 1;
    });
    assert.equal(receiver.at('/down').slice(before).filter((r) => r.headers['webhook-id'] === pending.id).length, 1);
    const audited = (await env.warrant.audit.query({ type: 'webhook.redelivered', subject: `webhook:${id}` }))[0]!;
    assert.equal(audited.data.previous_status, 'failed');
    receiver.answer('/down', 500);

    const noDelivery = await api('POST', `/v1/webhooks/${id}/deliveries/msg_nope/redeliver`);
    assert.equal(noDelivery.status, 404);
    assert.equal(noDelivery.body.code, 'not_found');
    const noHook = await webhooks(['webhooks', 'redeliver', 'whk_nope', pending.id]);
    assert.equal(noHook.code, 1);
    assert.equal(noHook.stderr, 'warrant: not_found: webhook whk_nope not found\n');

    const reader = await api('POST', '/v1/admin-keys', { name: 'reader', role: 'read' });
    const operator = await api('POST', '/v1/admin-keys', { name: 'operator', role: 'operate' });
    const refused = await webhooks(['webhooks', 'redeliver', id, pending.id], { token: reader.body.api_key });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^warrant: admin_forbidden: .* needs the admin role operate/);
    // Operate passes the role check: the delivered message is queued again.
    const allowed = await webhooks(['webhooks', 'redeliver', id, pending.id], { token: operator.body.api_key });
    assert.equal(allowed.code, 0, allowed.stderr);
    const byKey = await env.warrant.audit.query({ type: 'webhook.redelivered', subject: `webhook:${id}` });
    assert.match(byKey.at(-1)!.actor, /^admin_key:adk_/);
  });
});
