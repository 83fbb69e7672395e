// What the soak puts into Warrant before the load starts: grants obtained from the sandbox the way
// a user would (authorization code + PKCE, consent without a browser), imported through the admin
// API; agents with grants on them; a webhook pointing at a local receiver.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { followAuthorization } from '../../src/sandbox/authorize.ts';

export interface AdminClient {
  call<T = any>(origin: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: T }>;
  /** The same, throwing unless the answer is 2xx. */
  ok<T = any>(origin: string, method: string, path: string, body?: unknown): Promise<T>;
}

export function adminClient(token: string): AdminClient {
  const c: AdminClient = {
    async call(origin, method, path, body) {
      const res = await fetch(`${origin}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(60_000),
      });
      const text = await res.text();
      let json: any;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = { raw: text.slice(0, 200) };
      }
      return { status: res.status, json };
    },
    async ok(origin, method, path, body) {
      const { status, json } = await c.call(origin, method, path, body);
      if (status < 200 || status > 299) throw new Error(`${method} ${path}: ${status} ${json?.code ?? ''} ${json?.detail ?? JSON.stringify(json).slice(0, 200)}`);
      return json;
    },
  };
  return c;
}

/** Runs `fn` over `items`, `width` at a time. */
export async function inBatches<T, R>(items: T[], width: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

export interface SandboxProvider {
  client_id: string;
  client_secret: string;
  environments: { production: { authorization_url: string; token_url: string } };
}

const b64url = (b: Buffer) => b.toString('base64url');

/** One grant from the sandbox: the code flow with PKCE S256 (RFC 7636), as a client would run it. */
export async function sandboxGrant(def: SandboxProvider, scopes: string[]) {
  const verifier = b64url(randomBytes(32));
  const redirectUri = 'http://127.0.0.1:9/callback';
  const state = b64url(randomBytes(8));
  const final = new URL(
    await followAuthorization(def.environments.production.authorization_url, def.client_id, {
      redirect_uri: redirectUri,
      scope: ['offline_access', ...scopes].join(' '),
      state,
      code_challenge: b64url(createHash('sha256').update(verifier).digest()),
      code_challenge_method: 'S256',
    }),
  );
  const code = final.searchParams.get('code');
  if (!code || final.searchParams.get('state') !== state) throw new Error(`sandbox consent did not return a code: ${final.searchParams.get('error') ?? '?'}`);
  const res = await fetch(def.environments.production.token_url, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${def.client_id}:${def.client_secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }),
    signal: AbortSignal.timeout(30_000),
  });
  const t = (await res.json()) as { access_token?: string; refresh_token?: string; expires_in?: number; error?: string };
  if (!res.ok || !t.access_token || !t.refresh_token) throw new Error(`sandbox code exchange: ${res.status} ${t.error ?? 'no refresh token'}`);
  return { access_token: t.access_token, refresh_token: t.refresh_token, expires_in: t.expires_in };
}

// ---------------------------------------------------------------------------------------------

export interface Delivery {
  webhookId: string;
  eventId: string;
  type: string;
  subject: string | null;
  at: number;
  signatureOk: boolean;
}

export interface Receiver {
  url: string;
  /** Every POST received, retries of one delivery included. */
  received: Delivery[];
  setSecret(secret: string): void;
  close(): Promise<void>;
}

/** A local webhook receiver: records each delivery and checks its Standard Webhooks signature. */
export async function startReceiver(): Promise<Receiver> {
  let secret = '';
  const received: Delivery[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const id = String(req.headers['webhook-id'] ?? '');
      const ts = String(req.headers['webhook-timestamp'] ?? '');
      const sigs = String(req.headers['webhook-signature'] ?? '');
      let signatureOk = false;
      if (secret) {
        const expected = createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64')).update(`${id}.${ts}.${body}`).digest();
        signatureOk = sigs.split(' ').some((s) => {
          const got = Buffer.from(s.split(',')[1] ?? '', 'base64');
          return got.length === expected.length && timingSafeEqual(got, expected);
        });
      }
      try {
        const msg = JSON.parse(body) as { type: string; data: { id: string; subject: string | null } };
        received.push({ webhookId: id, eventId: msg.data.id, type: msg.type, subject: msg.data.subject, at: Date.now(), signatureOk });
      } catch {
        received.push({ webhookId: id, eventId: '?', type: '?', subject: null, at: Date.now(), signatureOk });
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/hooks/warrant`,
    received,
    setSecret: (s) => (secret = s),
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** The incident events an operator subscribes to (connection.refreshed is left out on purpose). */
export const alertTypes = ['connection.reauth_required', 'connection.refresh_failing', 'connection.error', 'connection.recovered', 'connection.revoked', 'agent.revoked'];
