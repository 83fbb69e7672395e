import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { safeEqual } from '../../crypto/index.ts';
import { isWarrantError } from '../../errors/index.ts';
import { readCookie, setCookieHeader, type ConnectFlow } from '../../tokens/index.ts';
import type { ConnectPages, Page } from '../connect-pages.ts';

// The hosted connect page (a session's `connect_url`). GET shows what is asked and consumes
// nothing, so a mail scanner or a link preview that fetches it leaves the link usable. Continue
// and Cancel are form POSTs carrying the start token and a CSRF token; Continue uses the token up
// exactly as the start URL (`authorize_url`) does: it binds this browser and goes on to the IdP.

const params = z.object({ id: z.string().min(1).max(64) });
const form = z.object({ t: z.string().min(1).max(128), csrf: z.string().min(1).max(128) });
const FORM_LIMIT_BYTES = 8 * 1024;

/** One per session, so two pages open side by side do not overwrite each other's. */
const csrfCookie = (id: string) => `warrant_csrf_${id}`;

export function connectPageRoutes(flow: ConnectFlow, pages: ConnectPages) {
  return async (app: FastifyInstance) => {
    if (!app.hasContentTypeParser('application/x-www-form-urlencoded')) {
      app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT_BYTES }, (_req, body, done) =>
        done(null, Object.fromEntries(new URLSearchParams(body as string))),
      );
    }
    const r = app.withTypeProvider<ZodTypeProvider>();
    // Pages for the owner's browser (HTML), in the reference with their failures: a link that cannot be used is a page too.
    const html = (description: string) => ({ description, content: { 'text/html': { schema: { type: 'string' } } } });
    const schema = {
      tags: ['connect'],
      params,
      problems: ['not_found'] as const,
      otherResponses: {
        400: html('This link is not valid, or was already used'),
        403: html('A form that did not come from its page (CSRF)'),
        409: html('Nothing to re-connect'),
        410: html('This link has expired'),
      },
    };
    const send = (reply: FastifyReply, p: Page) => reply.code(p.status).headers(p.headers).send(p.body);

    /** A link that cannot be used says why, as a page; anything else is the app's problem. */
    function unusable(reply: FastifyReply, err: unknown) {
      if (!isWarrantError(err) || (err.members.field !== 't' && err.code !== 'conflict')) throw err;
      const reason = err.code === 'conflict' ? 'reconnect_done' : err.members.reason;
      if (reason === 'expired') return send(reply, pages.unusable(410, 'This link has expired', 'Connect links work for a limited time, and this one has run out.'));
      if (reason === 'reconnect_done') return send(reply, pages.unusable(409, 'Nothing to re-connect', err.detail ?? 'This re-connect link is no longer valid.'));
      if (reason === 'invalid') return send(reply, pages.unusable(400, 'This link is not valid', 'It may have been copied incompletely.'));
      return send(reply, pages.unusable(400, 'This link was already used', 'Connect links work once. If you did not finish connecting, you need a new link.'));
    }

    /**
     * CSRF defence (RFC 9700 §4.7; OWASP double submit): the form's token must equal the cookie the
     * page set (SameSite=Strict: a cross-site POST never carries it), and a browser that says where
     * the form came from must say it came from this host.
     */
    function sameOrigin(req: FastifyRequest, id: string, csrf: string): boolean {
      const cookie = readCookie(req.headers.cookie, csrfCookie(id));
      if (!cookie || !safeEqual(cookie, csrf)) return false;
      if (req.headers['sec-fetch-site'] === 'cross-site') return false;
      const origin = req.headers.origin;
      if (origin !== undefined && origin !== 'null') {
        if (!URL.canParse(origin)) return false;
        const from = new URL(origin);
        // Both through the URL parser, so a default port (`:443`, `:80`) compares as absent.
        if (!URL.canParse(`${from.protocol}//${req.headers.host}`) || from.host !== new URL(`${from.protocol}//${req.headers.host}`).host) return false;
      }
      return true;
    }
    const forged = (reply: FastifyReply) =>
      send(reply, pages.unusable(403, 'This form did not come from its page', 'For your safety it was not accepted. Open your link again and use the buttons on its page.'));
    const clearCsrf = (id: string) => `${csrfCookie(id)}=; Path=/connect/${id}; Max-Age=0; HttpOnly; SameSite=Strict${flow.secureCookies ? '; Secure' : ''}`;

    const review = {
      summary: "The hosted connect page (the session's connect_url)",
      description:
        'What the owner opens, no admin credential: the provider, the scopes asked and why, and Continue / Cancel buttons. Consumes nothing (a link preview leaves the link usable).',
      querystring: z.object({ t: z.string().min(1).max(128) }),
    };
    r.get('/connect/:id/review', { schema: { ...schema, ...review, otherResponses: { ...schema.otherResponses, 200: html('The connect page') } } }, async (req, reply) => {
      const { id } = req.params;
      let view;
      try {
        view = await flow.preview(id, req.query.t);
      } catch (err) {
        return unusable(reply, err);
      }
      const csrf = randomBytes(32).toString('base64url');
      const maxAge = Math.max(1, Math.min(3600, Math.floor((view.session.expires_at - Date.now()) / 1000)));
      reply.header('set-cookie', `${csrfCookie(id)}=${csrf}; Path=/connect/${id}; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${flow.secureCookies ? '; Secure' : ''}`);
      return send(
        reply,
        pages.review({
          sessionId: id,
          provider: view.provider,
          owner: view.session.owner,
          scopes: view.scopes,
          ...(view.purpose ? { purpose: view.purpose } : {}),
          ...(view.session.reconnect_of ? { reconnectOf: view.session.reconnect_of } : {}),
          expiresAt: view.session.expires_at,
          token: req.query.t,
          csrf,
        }),
      );
    });

    const continueDoc = {
      summary: 'Continue from the connect page to the provider',
      description: "The connect page's form: uses the start token up (once), binds the session to this browser, and redirects to the provider's authorization endpoint.",
      consumes: ['application/x-www-form-urlencoded'],
      otherResponses: { ...schema.otherResponses, 303: { description: "To the provider's authorization endpoint" } },
    };
    r.post('/connect/:id/continue', { schema: { ...schema, ...continueDoc, body: form } }, async (req, reply) => {
      const { id } = req.params;
      if (!sameOrigin(req, id, req.body.csrf)) return forged(reply);
      let opened;
      try {
        opened = await flow.open(id, req.body.t);
      } catch (err) {
        // The same refusal as the start URL's, told apart for the page (open() claims atomically).
        if (isWarrantError(err) && err.members.field === 't') {
          return unusable(reply, await flow.preview(id, req.body.t).then(() => err, (e: unknown) => e));
        }
        return unusable(reply, err);
      }
      return reply
        .header('set-cookie', [setCookieHeader(opened.cookie, flow.secureCookies), clearCsrf(id)])
        .header('cache-control', 'no-store')
        .header('referrer-policy', 'no-referrer')
        .redirect(opened.location, 303);
    });

    const cancelDoc = {
      summary: 'Cancel from the connect page',
      description: "The connect page's other form: the session fails with `access_denied`, nothing is asked of the provider; a page says so, or the browser goes to `redirect_to`.",
      consumes: ['application/x-www-form-urlencoded'],
      otherResponses: { ...schema.otherResponses, 200: html('The cancelled page'), 303: { description: "To the session's `redirect_to`" } },
    };
    r.post('/connect/:id/cancel', { schema: { ...schema, ...cancelDoc, body: form } }, async (req, reply) => {
      const { id } = req.params;
      if (!sameOrigin(req, id, req.body.csrf)) return forged(reply);
      let session;
      try {
        session = await flow.cancel(id, req.body.t);
      } catch (err) {
        return unusable(reply, err);
      }
      reply.header('set-cookie', clearCsrf(id)).header('cache-control', 'no-store').header('referrer-policy', 'no-referrer');
      if (session.redirect_to) {
        const to = new URL(session.redirect_to);
        to.searchParams.set('connect_session', session.id);
        to.searchParams.set('status', 'failed');
        to.searchParams.set('error', 'access_denied');
        return reply.redirect(to.href, 303);
      }
      return send(reply, pages.failed({ status: 200, what: `You cancelled: nothing was asked of ${session.provider} and no connection was made.`, next: 'You can close this window. To connect later, ask for a new link.' }));
    });
  };
}
