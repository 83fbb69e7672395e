import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { ConnectFlow } from '../../tokens/index.ts';
import type { RouteContext } from '../app.ts';

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function resultPage(title: string, lines: string[]): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)} · Warrant</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1b1f24}h1{font-size:1.4rem}p{margin:.5rem 0}code{background:#f1f3f5;padding:0 .25rem}</style>
</head><body><h1>${escapeHtml(title)}</h1>${lines.map((l) => `<p>${escapeHtml(l)}</p>`).join('')}</body></html>`;
}

const sessionView = z.object({
  id: z.string(),
  status: z.enum(['pending', 'completed', 'failed', 'expired']),
  provider: z.string(),
  environment: z.string(),
  owner: z.string(),
  connection_id: z.string().optional(),
  error: z.string().optional(),
  expires_at: z.string(),
});

export function connectRoutes(flow: ConnectFlow) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    const tags = ['connect'];

    await app.register(async (admin) => {
      const a = admin.withTypeProvider<ZodTypeProvider>();
      a.addHook('onRequest', ctx.requireAdmin);
      a.post(
        '/v1/connect-sessions',
        {
          schema: {
            tags,
            security: [{ admin: [] }],
            body: z.strictObject({
              provider: z.string().min(1),
              environment: z.string().min(1).optional(),
              owner: z.string().min(1).max(320),
              scopes: z.array(z.string().min(1).max(512)).max(200),
              redirect_to: z.url().optional(),
              params: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/), z.string().max(2048)).optional(),
            }),
            response: { 201: z.object({ id: z.string(), authorize_url: z.string(), expires_at: z.string() }) },
          },
        },
        async (req, reply) => reply.code(201).send(await flow.createSession(req.body)),
      );
      a.get(
        '/v1/connect-sessions/:id',
        { schema: { tags, security: [{ admin: [] }], params: z.object({ id: z.string().min(1).max(64) }), response: { 200: sessionView } } },
        async (req) => {
          const s = await flow.getSession(req.params.id);
          return {
            id: s.id,
            status: s.status,
            provider: s.provider,
            environment: s.environment,
            owner: s.owner,
            ...(s.connection_id ? { connection_id: s.connection_id } : {}),
            ...(s.error ? { error: s.error } : {}),
            expires_at: new Date(s.expires_at).toISOString(),
          };
        },
      );
    });

    // The browser's side: no admin token, the single-use state (or a signed link) is the credential.
    r.get('/oauth/callback', { schema: { tags, hide: true } }, async (req, reply) => {
      const query = new URLSearchParams(req.query as Record<string, string>);
      const { session, connection, missingScopes } = await flow.handleCallback(query);
      if (session.redirect_to) {
        const to = new URL(session.redirect_to);
        to.searchParams.set('connect_session', session.id);
        to.searchParams.set('status', session.status);
        if (connection) to.searchParams.set('connection_id', connection.id);
        if (session.error) to.searchParams.set('error', session.error);
        return reply.redirect(to.href, 303);
      }
      reply.type('text/html; charset=utf-8').header('cache-control', 'no-store');
      if (session.status !== 'completed') {
        return reply.code(400).send(resultPage('Connection failed', [`${session.provider} did not grant access (${session.error ?? 'unknown error'}).`, 'You can close this window and try again.']));
      }
      const lines = [`Warrant now holds the ${session.provider} grant for ${session.owner}.`, `Connection: ${connection!.id}`];
      if (missingScopes.length) lines.push(`Granted fewer scopes than asked: missing ${missingScopes.join(', ')}.`);
      lines.push('You can close this window.');
      return reply.send(resultPage('Connected', lines));
    });

    r.get(
      '/oauth/reconnect/:id',
      {
        schema: {
          tags,
          hide: true,
          params: z.object({ id: z.string().min(1).max(64) }),
          querystring: z.object({ exp: z.coerce.number().int(), sig: z.string().min(1).max(128) }),
        },
      },
      async (req, reply) => reply.redirect(await flow.startReconnect(req.params.id, req.query.exp, req.query.sig), 302),
    );
  };
}
