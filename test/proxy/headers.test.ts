import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agentResponseHeaders, upstreamRequestHeaders } from '../../src/proxy/headers.ts';

test("the agent's credential, cookies, hop-by-hop and Warrant headers never reach the upstream", () => {
  const out = upstreamRequestHeaders({
    authorization: 'Bearer wrt_agent_key',
    cookie: 'sid=1',
    connection: 'keep-alive, x-secret-hop',
    'x-secret-hop': 'drop me',
    'keep-alive': 'timeout=5',
    'proxy-authorization': 'Basic x',
    'transfer-encoding': 'chunked',
    te: 'trailers',
    upgrade: 'websocket',
    host: 'warrant.local',
    'x-forwarded-for': '10.0.0.1',
    'warrant-debug': '1',
    'content-type': 'application/json',
    accept: 'application/json',
    'idempotency-key': 'k1',
  });
  assert.deepEqual(out, { 'content-type': 'application/json', accept: 'application/json', 'idempotency-key': 'k1' });
});

test('upstream cookies and hop-by-hop fields do not reach the agent; content-length does', () => {
  const out = agentResponseHeaders({
    'set-cookie': ['a=1'],
    connection: 'close',
    'transfer-encoding': 'chunked',
    'content-type': 'application/json',
    'content-length': '12',
    'retry-after': '3',
  });
  assert.deepEqual(out, { 'content-type': 'application/json', 'content-length': '12', 'retry-after': '3' });
});
