// A real HTTP server on loopback, port 0, that keeps every request it receives (method, path,
// headers, body) and answers each by its path with whatever the test set: what a provider's
// endpoint sees on the wire, and says back, without mocking Warrant's client.

import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Received {
  method: string;
  /** Path and query, as sent. */
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export type Answer = { status: number; body?: unknown; headers?: Record<string, string> } | ((req: Received, res: http.ServerResponse) => void);

export interface RecordingServer {
  url: string;
  received: Received[];
  /** Requests to `path` (without the query) from now on get `answer`. */
  on(path: string, answer: Answer): void;
  /** The requests received at `path` (without the query). */
  at(path: string): Received[];
  close(): Promise<void>;
}

export async function startRecordingServer(): Promise<RecordingServer> {
  const answers = new Map<string, Answer>();
  const received: Received[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(r);
      const answer = answers.get(new URL(req.url!, 'http://x').pathname) ?? { status: 404, body: { error: 'not_found' } };
      if (typeof answer === 'function') return answer(r, res);
      const body = answer.body === undefined ? '' : typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
      res.writeHead(answer.status, { ...(answer.body !== undefined && typeof answer.body !== 'string' ? { 'content-type': 'application/json' } : {}), ...answer.headers });
      res.end(body);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    on: (path, answer) => void answers.set(path, answer),
    at: (path) => received.filter((r) => new URL(r.url, 'http://x').pathname === path),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export const basicOf = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

/** The id and secret of a Basic header, each form-decoded (RFC 6749 §2.3.1). */
export function basicCredentials(header: string | undefined): [string, string] | undefined {
  const m = /^Basic (.+)$/.exec(header ?? '');
  if (!m) return undefined;
  const [id, secret] = Buffer.from(m[1]!, 'base64').toString('utf8').split(':') as [string, string];
  const decode = (s: string) => decodeURIComponent(s.replaceAll('+', ' '));
  return [decode(id), decode(secret)];
}
