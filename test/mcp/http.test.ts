import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { AuditInput } from '../../src/events/index.ts';
import { createRefusalAudit } from '../../src/mcp/http.ts';
import { TokenRefusal } from '../../src/authz/verify.ts';

// The refusal audit of /mcp/warrant and /mcp/{server}: one entry per refused credential, with its
// reason; refusals nobody can be named for are capped per second so junk bearers cannot fill the log.

function setup(anonymousPerSecond = 3) {
  let now = 5_000_000;
  const written: AuditInput[] = [];
  const audit = createRefusalAudit({
    auditQueue: { reserve: () => ({ commit: (e: AuditInput) => void written.push(e), cancel: () => undefined }) },
    logger: pino({ level: 'silent' }),
    now: () => now,
    anonymousPerSecond,
  });
  return { audit, written, advance: (ms: number) => (now += ms) };
}

test('a refusal is recorded once with the reason and the agent the verified claims name, never the token', () => {
  const { audit, written } = setup();
  audit.token('/mcp/up', new TokenRefusal('the access token is for another resource (aud)', 'wrong_audience', 'agt_1'), 'req_1');
  audit.token('/mcp/up', new Error('anything else'), 'req_2');
  audit.token('/mcp/warrant', new Error('403'), 'req_3', { agentId: 'agt_2', status: 403, reason: 'insufficient_scope', requiredScope: 'warrant:call' });
  assert.deepEqual(written, [
    { type: 'mcp.token_refused', actor: 'agent:agt_1', data: { endpoint: '/mcp/up', status: 401, reason: 'wrong_audience', request_id: 'req_1' } },
    { type: 'mcp.token_refused', actor: 'anonymous', data: { endpoint: '/mcp/up', status: 401, reason: 'invalid_credential', request_id: 'req_2' } },
    { type: 'mcp.token_refused', actor: 'agent:agt_2', data: { endpoint: '/mcp/warrant', status: 403, reason: 'insufficient_scope', required_scope: 'warrant:call', request_id: 'req_3' } },
  ]);
});

test('anonymous refusals past the per-second cap are counted into the next entry; named ones are never capped', () => {
  const { audit, written, advance } = setup(3);
  const junk = new TokenRefusal('the access token is not one Warrant issued', 'not_issued_here');
  for (let i = 0; i < 10; i++) audit.token('/mcp/up', junk, `req_${i}`);
  assert.equal(written.length, 3);
  audit.token('/mcp/up', new TokenRefusal('expired', 'expired', 'agt_9'), 'req_named');
  assert.equal(written.length, 4, 'a refusal naming an agent is recorded past the cap');
  advance(1_000);
  audit.token('/mcp/up', junk, 'req_next');
  assert.equal(written.length, 5);
  assert.equal(written[4]!.data!.suppressed_before, 7);
  audit.token('/mcp/up', junk, 'req_after');
  assert.equal(written[5]!.data!.suppressed_before, undefined, 'counted once');
});
