import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { CALLBACK_PATH } from '../../providers/index.ts';
import { cookieName, setCookieHeader, viewOf, type ConnectFlow, type Reconnects } from '../../tokens/index.ts';
import type { RouteContext } from '../app.ts';
import { adminActorOf } from '../auth.ts';
import { connectionView } from './connections.ts';

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
  /** A re-connect link's session: the connection it re-connects. */
  reconnect_of: z.string().optional(),
  /** The re-connect made `connection_id` a new connection; its owner must confirm it replaces `reconnect_of`. */
  confirmation_required: z.boolean().optional(),
});

/** Warrant's own reasons for refusing an authorization response (mix-up defence): the page says what happened. */
const refusedAnswers: Record<string, string> = {
  callback_mismatch: "the answer came back to another provider's callback address",
  issuer_mismatch: "the answer names another authorization server (its iss is not the provider's issuer)",
  issuer_missing: 'the answer does not name its authorization server (no iss), which this provider always does',
};

const started = z.object({ id: z.string(), authorize_url: z.string(), connect_url: z.string(), expires_at: z.string() });
const connectionId = z.object({ id: z.string().min(1).max(64) });

export function connectRoutes(flow: ConnectFlow, reconnects: Reconnects) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    const tags = ['connect'];

    await app.register(async (admin) => {
      const a = admin.withTypeProvider<ZodTypeProvider>();
      a.addHook('onRequest', ctx.requireAdmin);
      const security = [{ admin: [] }];
      a.post(
        '/v1/connect-sessions',
        {
          schema: {
            tags,
            security,
            body: z.strictObject({
              provider: z.string().min(1),
              environment: z.string().min(1).optional(),
              owner: z.string().min(1).max(320),
              scopes: z.array(z.string().min(1).max(512)).max(200),
              redirect_to: z.url().optional(),
              params: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/), z.string().max(2048)).optional(),
            }),
            response: { 201: started },
          },
        },
        async (req, reply) => reply.code(201).send(await flow.createSession(req.body)),
      );
      a.get('/v1/connect-sessions/:id', { schema: { tags, security, params: connectionId, response: { 200: sessionView } } }, async (req) => {
        const s = await flow.getSession(req.params.id);
        const pending = reconnects.pendingOf(s);
        return {
          id: s.id,
          status: s.status,
          provider: s.provider,
          environment: s.environment,
          owner: s.owner,
          ...(s.connection_id ? { connection_id: s.connection_id } : {}),
          ...(s.error ? { error: s.error } : {}),
          expires_at: new Date(s.expires_at).toISOString(),
          ...(s.reconnect_of ? { reconnect_of: s.reconnect_of, confirmation_required: !!pending } : {}),
        };
      });
      // The owner's way to a re-connect link (the other is the `connection.reauth_required` webhook).
      a.post(
        '/v1/connections/:id/reconnect-link',
        {
          schema: {
            tags,
            security,
            params: connectionId,
            response: { 201: z.object({ url: z.string(), expires_at: z.string(), session: z.string() }) },
          },
        },
        async (req, reply) => reply.code(201).send(await reconnects.link(req.params.id)),
      );
      a.post(
        '/v1/connections/:id/confirm-reconnect',
        {
          schema: {
            tags,
            security,
            params: connectionId,
            body: z.strictObject({ connection: z.string().min(1).max(64) }),
            response: { 200: connectionView },
          },
        },
        async (req) => viewOf(await reconnects.confirm(req.params.id, req.body.connection, adminActorOf(req))),
      );
    });

    // The browser's side: no admin token. The start URL's single-use token opens a session once and
    // binds it to this browser by a cookie; the callback needs the state and that cookie.
    r.get(
      '/connect/:id',
      { schema: { tags, hide: true, params: connectionId, querystring: z.object({ t: z.string().min(1).max(128) }) } },
      async (req, reply) => {
        const { location, cookie } = await flow.open(req.params.id, req.query.t);
        return reply
          .header('set-cookie', setCookieHeader(cookie, flow.secureCookies))
          .header('cache-control', 'no-store')
          .header('referrer-policy', 'no-referrer')
          .redirect(location, 302);
      },
    );

    // Each provider's IdP returns to its own path (providers/redirect.ts); the bare base path
    // serves `redirect_path: /oauth/callback` and sessions opened before per-provider paths.
    const callback = async (req: FastifyRequest, reply: FastifyReply, arrivedAt: string) => {
      const query = new URLSearchParams(req.query as Record<string, string>);
      const { session, connection, missingScopes, pendingFor } = await flow.handleCallback(query, req.headers.cookie, arrivedAt);
      reply.header('set-cookie', setCookieHeader({ name: cookieName(session.id), value: '', maxAgeSeconds: 0 }, flow.secureCookies));
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
        const refused = refusedAnswers[session.error ?? ''];
        const why = refused
          ? `Warrant refused the answer to this ${session.provider} sign-in: ${refused} (${session.error}). It may not come from ${session.provider}; nothing was exchanged.`
          : `${session.provider} did not grant access (${session.error ?? 'unknown error'}).`;
        return reply.code(400).send(resultPage('Connection failed', [why, 'You can close this window and try again.']));
      }
      if (pendingFor) {
        return reply.send(
          resultPage('Waiting for confirmation', [
            `${session.provider} could not confirm this is the same account as connection ${pendingFor}.`,
            `The grant was saved as a new connection, ${connection!.id}; ${pendingFor} stays as it was until its owner confirms the replacement.`,
            'You can close this window.',
          ]),
        );
      }
      const lines = [`Warrant now holds the ${session.provider} grant for ${session.owner}.`, `Connection: ${connection!.id}`];
      if (missingScopes.length) lines.push(`Granted fewer scopes than asked: missing ${missingScopes.join(', ')}.`);
      lines.push('You can close this window.');
      return reply.send(resultPage('Connected', lines));
    };
    r.get(CALLBACK_PATH, { schema: { tags, hide: true } }, (req, reply) => callback(req, reply, CALLBACK_PATH));
    r.get(
      `${CALLBACK_PATH}/:provider`,
      { schema: { tags, hide: true, params: z.object({ provider: z.string().regex(/^[a-z0-9-]{1,64}$/) }) } },
      (req, reply) => callback(req, reply, `${CALLBACK_PATH}/${req.params.provider}`),
    );
  };
}
