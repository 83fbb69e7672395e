// A real HTTP server on loopback, port 0, standing in for an IdP's token, revocation and
// introspection endpoints with whatever answer a test sets: the bytes on the wire, not a mock of
// the client. Warrant's real OAuth client (src/oauth/client.ts) is built against it.

import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { providerSchema, type Provider } from '../../src/providers/index.ts';
import { createOAuthClient, type OAuthClient } from '../../src/oauth/index.ts';

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export interface IdpEndpoint {
  url: string;
  /** Every request from now on is answered by `handler`. */
  answer(handler: Handler): void;
  /** A client for a provider whose endpoints are this server. */
  client(opts?: { timeoutMs?: number; definition?: Record<string, unknown> }): OAuthClient;
  requests: number;
  close(): Promise<void>;
}

/** A plain answer: status, headers, body. */
export const reply =
  (status: number, body: string | Buffer = '', headers: Record<string, string> = {}): Handler =>
  (_req, res) => {
    res.writeHead(status, headers);
    res.end(body);
  };

export const json = (status: number, body: unknown, headers: Record<string, string> = {}): Handler =>
  reply(status, typeof body === 'string' ? body : JSON.stringify(body), { 'content-type': 'application/json', ...headers });

export async function startIdpEndpoint(): Promise<IdpEndpoint> {
  let handler: Handler = json(200, { access_token: 'at', token_type: 'Bearer' });
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    endpoint.requests++;
    // The request body is read first, as a real endpoint would, so an early answer never races the upload.
    req.resume();
    req.on('end', () => handler(req, res));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const endpoint: IdpEndpoint = {
    url,
    requests: 0,
    answer(h) {
      handler = h;
    },
    client(opts = {}) {
      const provider: Provider = providerSchema.parse({
        id: 'fake-idp',
        auth: 'oauth2',
        client_id: 'warrant-client',
        client_secret: 'client-secret-value',
        environments: {
          production: {
            authorization_url: `${url}/authorize`,
            token_url: `${url}/token`,
            revocation_url: `${url}/revoke`,
            introspection_url: `${url}/introspect`,
            api_base_url: `${url}/api`,
          },
        },
        scopes: {},
        ...opts.definition,
      });
      return createOAuthClient({
        provider,
        endpoints: provider.environments.production!,
        clientId: 'warrant-client',
        clientSecret: 'client-secret-value',
        timeoutMs: opts.timeoutMs ?? 5000,
      });
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return endpoint;
}
