import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

// The demo's webhook receiver: what an on-call tool would be. It checks each delivery's Standard
// Webhooks signature (HMAC-SHA256 over `id.timestamp.body` with the webhook's secret) and keeps
// the events, once per `webhook-id` (a retried delivery is the same alert).

export interface Alert {
  id: string;
  type: string;
  data: Record<string, unknown>;
  receivedAt: number;
  signatureValid: boolean;
}

export interface AlertInbox {
  url: string;
  port: number;
  /** The secret Warrant answered when the webhook was created. */
  setSecret(secret: string): void;
  alerts: Alert[];
  /** Resolves with the alerts of `type` once there is at least one, or what there is at the deadline. */
  waitFor(type: string, timeoutMs: number): Promise<Alert[]>;
  close(): Promise<void>;
}

const bodyLimit = 256 * 1024;

function signatureValid(secret: string | undefined, id: string, timestamp: string, body: string, header: string): boolean {
  if (!secret) return false;
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
  // The header may carry several space-separated `v1,<base64>` signatures (during a secret rotation).
  return header.split(' ').some((sig) => {
    const [version, value] = sig.split(',');
    if (version !== 'v1' || !value) return false;
    const given = Buffer.from(value, 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

export async function startAlertInbox(): Promise<AlertInbox> {
  let secret: string | undefined;
  const alerts: Alert[] = [];
  const seen = new Set<string>();
  const waiters = new Set<() => void>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= bodyLimit) chunks.push(c);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const id = String(req.headers['webhook-id'] ?? '');
      const valid = signatureValid(secret, id, String(req.headers['webhook-timestamp'] ?? ''), body, String(req.headers['webhook-signature'] ?? ''));
      let event: { type?: string; data?: Record<string, unknown> } = {};
      try {
        event = JSON.parse(body) as typeof event;
      } catch {
        /* kept as an unknown event */
      }
      if (!seen.has(id)) {
        seen.add(id);
        alerts.push({ id, type: event.type ?? 'unknown', data: event.data ?? {}, receivedAt: Date.now(), signatureValid: valid });
        for (const wake of waiters) wake();
      }
      res.writeHead(valid ? 204 : 401).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    setSecret: (s) => void (secret = s),
    alerts,
    waitFor(type, timeoutMs) {
      const found = () => alerts.filter((a) => a.type === type);
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(found());
        };
        const check = () => void (found().length > 0 && done());
        const timer = setTimeout(done, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
