// The upstream API (its own process): GET /items answers a few hundred bytes of JSON to the
// bearer token given in BENCH_UPSTREAM_TOKEN, 401 to anything else. node:http, nothing more, so
// (b) and (c) pay the same small upstream cost.
import { timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { failRole, serveRole } from './ipc.ts';

const expected = Buffer.from(`Bearer ${process.env.BENCH_UPSTREAM_TOKEN ?? ''}`);
if (expected.length < 'Bearer '.length + 16) failRole(new Error('BENCH_UPSTREAM_TOKEN is missing or short'));

const items = JSON.stringify({
  items: [
    { id: 'item-1', name: 'First item', owner: 'bench-user', tags: ['alpha', 'beta'], created_at: '2025-01-01T00:00:00Z', updated_at: '2025-01-02T00:00:00Z' },
    { id: 'item-2', name: 'Second item', owner: 'bench-user', tags: ['gamma'], created_at: '2025-01-03T00:00:00Z', updated_at: '2025-01-04T00:00:00Z' },
  ],
  next_cursor: null,
});
const itemsLength = String(Buffer.byteLength(items));

function authorized(header: string | undefined): boolean {
  if (!header) return false;
  const got = Buffer.from(header);
  return got.length === expected.length && timingSafeEqual(got, expected);
}

const server = createServer((req, res) => {
  if (!authorized(req.headers.authorization)) {
    res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer error="invalid_token"' }).end('{"error":"invalid_token"}');
  } else if (req.method === 'GET' && req.url === '/api/items') {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': itemsLength }).end(items);
  } else {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
  }
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  serveRole({ origin: `http://127.0.0.1:${port}`, bodyBytes: Buffer.byteLength(items) }, {}, async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
