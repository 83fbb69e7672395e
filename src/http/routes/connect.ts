import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { CALLBACK_PATH } from '../../providers/index.ts';
import { cookieName, setCookieHeader, viewOf, type ConnectFlow, type Reconnects } from '../../tokens/index.ts';
import type { RouteContext } from '../app.ts';
import { adminActorOf } from '../auth.ts';
import { createConnectPages, type ConnectPages, type Page } from '../connect-pages.ts';
import { connectPageRoutes } from './connect-page.ts';
import { connectionView } from './connections.ts';
import { tagsBody, tagsView } from './tags.ts';
import { tagsOf } from '../../util/tags.ts';

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
  /** The tags the connection gets (a re-connect's: the connection's own). */
  ...tagsView,
});

/** Warrant's own reasons for refusing an authorization response (mix-up defence): the page says what happened. */
const refusedAnswers: Record<string, string> = {
  callback_mismatch: "the answer came back to another provider's callback address",
  issuer_mismatch: "the answer names another authorization server (its iss is not the provider's issuer)",
  issuer_missing: 'the answer does not name its authorization server (no iss), which this provider always does',
};

const started = z.object({ id: z.string(), authorize_url: z.string(), connect_url: z.string(), expires_at: z.string() });
const connectionId = z.object({ id: z.string().min(1).max(64) });

/** What the owner is told to do after a failure, by the error the session ended with. */
function nextStep(error: string | undefined, provider: string): string {
  if (error === 'access_denied') return `Access was declined at ${provider}. If that was a mistake, open your link again if it is still unused, or ask for a new one.`;
  if (error === 'expired') return 'The sign-in took too long. Ask for a new link and finish within its time.';
  if (error === 'account_mismatch') return `Sign in to ${provider} with the account the connection was made with, from a new link.`;
  return 'You can close this window and try again from a new link. If it keeps failing, tell whoever sent you the link what this page says.';
}

export function connectRoutes(flow: ConnectFlow, reconnects: Reconnects, pages: ConnectPages = createConnectPages()) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    const tags = ['connect'];
    const send = (reply: FastifyReply, p: Page) => reply.code(p.status).headers(p.headers).send(p.body);

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
            summary: 'Start a connect session',
            description:
              'Asks an owner to grant Warrant access at a provider. Send the owner to `connect_url`, a page on Warrant that shows the provider, the scopes and why, ' +
              'then runs the authorization (PKCE S256, state checked once); `authorize_url` goes to the IdP at once. The IdP returns to `/oauth/callback`, ' +
              'Warrant exchanges the code and creates the connection. Follow the session with `GET /v1/connect-sessions/{id}`. ' +
              "Without `scopes`, the provider's `default_scopes`; each scope given must be one of the provider's scope rules.",
            problems: ['conflict'],
            body: z.strictObject({
              provider: z.string().min(1),
              environment: z.string().min(1).optional(),
              owner: z.string().min(1).max(320),
              // Absent: the provider's default_scopes; each given one must be one of its scope rules.
              scopes: z.array(z.string().min(1).max(512)).max(200).optional(),
              redirect_to: z.url().optional(),
              /** One sentence for the owner on the connect page: why the access is asked. */
              purpose: z.string().min(1).max(500).optional(),
              params: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/), z.string().max(2048)).optional(),
              ...tagsBody,
            }).meta({ examples: [{ provider: 'github', owner: 'alice@example.com', scopes: ['repo', 'read:user'], purpose: 'The release agent opens pull requests for you.' }] }),
            response: {
              201: started.meta({
                examples: [
                  {
                    id: 'cs_4kq9',
                    authorize_url: 'https://warrant.example.com/connect/cs_4kq9?t=…',
                    connect_url: 'https://warrant.example.com/connect/cs_4kq9/review?t=…',
                    expires_at: '2026-01-01T00:15:00.000Z',
                  },
                ],
              }),
            },
          },
        },
        async (req, reply) => reply.code(201).send(await flow.createSession(req.body)),
      );
      a.get(
        '/v1/connect-sessions/:id',
        {
          schema: {
            tags,
            security,
            summary: 'Read a connect session',
            description: 'Its status (`pending`, `completed`, `failed`, `expired`), the connection it created, or the error it ended with. Poll it after sending the owner to the connect page.',
            problems: ['not_found'],
            params: connectionId,
            response: { 200: sessionView },
          },
        },
        async (req) => {
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
          ...tagsOf(s),
        };
        },
      );
      // The owner's way to a re-connect link (the other is the `connection.reauth_required` webhook).
      a.post(
        '/v1/connections/:id/reconnect-link',
        {
          schema: {
            tags,
            security,
            summary: 'Issue a re-connect link',
            description:
              'For a connection in `reauth_required`: a single-use, browser-bound link for its owner to grant access again. The new grant replaces the old one in place ' +
              '(same connection id, same agents) when the IdP confirms it is the same account; otherwise it waits for `confirm-reconnect`.',
            problems: ['not_found', 'conflict'],
            params: connectionId,
            response: { 201: z.object({ url: z.string(), connect_url: z.string(), expires_at: z.string(), session: z.string() }) },
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
            summary: 'Confirm that a re-connect replaces a connection',
            description:
              'When a re-connect could not prove it is the same account, the new grant was saved as another connection (`connection`); ' +
              'this moves it into the connection being re-connected (`{id}`), which keeps its id and its agents.',
            problems: ['not_found', 'conflict'],
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
      {
        schema: {
          tags,
          summary: "Start the owner's authorization (the session's authorize_url)",
          description:
            "The browser side of a connect session, no admin credential: the single-use start token `t` opens the session once, binds it to this browser with a cookie, " +
            "and redirects to the provider's authorization endpoint. A used, expired or wrong token is refused.",
          problems: ['not_found', 'conflict'],
          params: connectionId,
          querystring: z.object({ t: z.string().min(1).max(128) }),
          otherResponses: { 302: { description: "To the provider's authorization endpoint" } },
        },
      },
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
      if (session.status !== 'completed') {
        const refused = refusedAnswers[session.error ?? ''];
        const what = refused
          ? `Warrant refused the answer to this ${session.provider} sign-in: ${refused} (${session.error}). It may not come from ${session.provider}; nothing was exchanged.`
          : `${session.provider} did not grant access (${session.error ?? 'unknown error'}).`;
        const next = refused ? 'Do not retry from this window. Ask for a new link, and tell whoever sent it what this page says: someone may be interfering with the sign-in.' : nextStep(session.error ?? undefined, session.provider);
        return send(reply, pages.failed({ what, next }));
      }
      if (pendingFor) return send(reply, pages.waiting({ provider: session.provider, connectionId: connection!.id, pendingFor }));
      const granted = JSON.parse(connection!.scopes) as string[];
      return send(reply, pages.connected({ provider: session.provider, owner: session.owner, connectionId: connection!.id, scopes: granted, missingScopes }));
    };
    await app.register(connectPageRoutes(flow, pages));
    const callbackDoc = {
      tags,
      summary: 'OAuth callback: where the IdP returns the owner',
      description:
        'The redirect URI of connect sessions (RFC 6749 §4.1.2): checks `state` once against the session and the browser cookie, checks `iss` where the provider sends it ' +
        '(RFC 9207, mix-up defence), exchanges the code with its PKCE verifier and creates the connection. Ends on a success or failure page, or redirects to the ' +
        "session's `redirect_to` with `connect_session`, `status`, `connection_id` or `error`. Each provider may return to its own path, `/oauth/callback/{provider}`.",
      problems: ['invalid_request', 'not_found'] as const,
      otherResponses: {
        200: { description: 'The success page (HTML)', content: { 'text/html': { schema: { type: 'string' } } } },
        303: { description: "To the session's `redirect_to`" },
        400: { description: 'The failure page (HTML): the provider refused, or Warrant refused its answer', content: { 'text/html': { schema: { type: 'string' } } } },
      },
    };
    r.get(CALLBACK_PATH, { schema: callbackDoc }, (req, reply) => callback(req, reply, CALLBACK_PATH));
    r.get(
      `${CALLBACK_PATH}/:provider`,
      { schema: { ...callbackDoc, params: z.object({ provider: z.string().regex(/^[a-z0-9-]{1,64}$/) }) } },
      (req, reply) => callback(req, reply, `${CALLBACK_PATH}/${req.params.provider}`),
    );
  };
}
