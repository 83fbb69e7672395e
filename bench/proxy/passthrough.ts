// (b) The bare pass-through (its own process): a node:http server that replaces Authorization with
// the upstream token and forwards to the upstream API with an undici Pool, streaming the answer
// back. The least a proxy can do in Node: the baseline Warrant's proxy is measured against.
import { createServer, type OutgoingHttpHeaders } from 'node:http';
import { Pool } from 'undici';
import { failRole, serveRole } from './ipc.ts';

const upstream = new URL(process.env.BENCH_UPSTREAM_URL ?? 'http://invalid');
const upstreamAuth = `Bearer ${process.env.BENCH_UPSTREAM_TOKEN ?? ''}`;
if (!process.env.BENCH_UPSTREAM_URL || !process.env.BENCH_UPSTREAM_TOKEN) failRole(new Error('BENCH_UPSTREAM_URL and BENCH_UPSTREAM_TOKEN are required'));

const pool = new Pool(upstream.origin, { connections: 256, pipelining: 1, keepAliveTimeout: 30_000 });
const server = createServer((req, res) => {
  const headers: Record<string, string | string[] | undefined> = { ...req.headers, authorization: upstreamAuth };
  delete headers.host;
  delete headers.connection;
  pool
    .request({ path: upstream.pathname.replace(/\/$/, '') + (req.url ?? '/'), method: req.method as 'GET', headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req })
    .then((up) => {
      const out: Record<string, string | string[] | undefined> = { ...up.headers };
      delete out.connection;
      delete out['keep-alive'];
      delete out['transfer-encoding'];
      res.writeHead(up.statusCode, out as OutgoingHttpHeaders);
      // .pipe(), not stream.pipeline(): pipeline() cost ~80 µs more CPU per request here, which
      // would flatter Warrant. An upstream error mid-body cuts the client's response.
      up.body.on('error', () => res.destroy());
      up.body.pipe(res);
    })
    .catch(() => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  serveRole({ origin: `http://127.0.0.1:${port}` }, {}, async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await pool.close();
  });
});
