import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { apiFor, ApiProblem, type Api } from './api.ts';
import { html, type SafeHtml } from './html.ts';
import type { UiHandler, UiResult, Ui } from './kit.ts';
import { bare, page, problemBox, type PageContext } from './layout.ts';
import { readCookie, sessionCookie, SESSION_COOKIE, type UiSessions } from './session.ts';
import { connectionPages } from './pages/connections.ts';
import { agentPages } from './pages/agents.ts';
import { auditPages } from './pages/audit.ts';
import { webhookPages } from './pages/webhooks.ts';
import { providerPages } from './pages/providers.ts';

export interface WebDeps {
  sessions: UiSessions;
  /** WARRANT_PUBLIC_URL: the only Origin a form may come from; https → the cookie is Secure. */
  publicUrl: string;
  version: string;
  now: () => number;
}

const HEADERS = {
  'content-security-policy': "default-src 'self'; frame-ancestors 'none'",
  'cache-control': 'no-store',
  // Not `no-referrer`: under it browsers send `Origin: null` on the dashboard's own form posts,
  // and the Origin check below could not tell them from a sandboxed frame's. Other sites still get
  // no referrer at all.
  'referrer-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
};

const asset = (name: string) => readFileSync(new URL(`./static/${name}`, import.meta.url), 'utf8');

interface Who {
  actor: string;
  role: string;
  name?: string;
}

/** The admin dashboard at /ui (docs/dashboard.md): sign-in, then pages that call the admin API. */
export function webRoutes(deps: WebDeps) {
  return async (app: FastifyInstance) => {
    const origin = new URL(deps.publicUrl).origin;
    const secure = deps.publicUrl.startsWith('https://');
    const css = asset('ui.css');
    const js = asset('ui.js');

    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) =>
      done(null, new URLSearchParams(body as string)),
    );
    app.addHook('onSend', async (_req, reply, payload) => {
      reply.headers(HEADERS);
      return payload;
    });

    const send = (reply: FastifyReply, status: number, body: SafeHtml) => reply.code(status).type('text/html; charset=utf-8').send(body.value);
    const clearCookie = (reply: FastifyReply) => reply.header('set-cookie', sessionCookie('', 0, secure));
    const formOf = (req: FastifyRequest) => (req.body instanceof URLSearchParams ? req.body : new URLSearchParams());
    const queryOf = (req: FastifyRequest) => new URL(req.url, 'http://ui.invalid').searchParams;
    /** A cross-site form post: refused when the browser names an Origin other than Warrant's own. */
    const foreignOrigin = (req: FastifyRequest) => req.headers.origin !== undefined && req.headers.origin !== origin;

    app.get('/', { schema: { hide: true } }, (_req, reply) => reply.redirect('/ui', 302));
    app.get('/ui/static/ui.css', { schema: { hide: true } }, (_req, reply) => reply.type('text/css; charset=utf-8').send(css));
    app.get('/ui/static/ui.js', { schema: { hide: true } }, (_req, reply) => reply.type('text/javascript; charset=utf-8').send(js));

    // Sign-in: the credential is checked once against the API, then sealed into the cookie.
    const loginPage = (message?: SafeHtml) =>
      bare(
        'Sign in',
        html`${message ?? ''}<form method="post" action="/ui/login" class="stack">
<label for="credential">Admin token or admin key</label>
<input id="credential" name="credential" type="password" autocomplete="off" required spellcheck="false" aria-describedby="credential-help">
<p id="credential-help" class="muted">The admin token (WARRANT_ADMIN_TOKEN) or an admin key (<code>wak_…</code>). Its role decides what you may do here.</p>
<button type="submit">Sign in</button></form>`,
      );

    app.get('/ui/login', { schema: { hide: true } }, async (req, reply) => {
      if (deps.sessions.open(readCookie(req.headers.cookie, SESSION_COOKIE))) return reply.redirect('/ui', 303);
      const ended = queryOf(req).get('ended') === '1';
      return send(reply, 200, loginPage(ended ? html`<div class="notice" role="status">Your session ended or the credential is no longer accepted. Sign in again.</div>` : undefined));
    });

    app.post('/ui/login', { schema: { hide: true } }, async (req, reply) => {
      if (foreignOrigin(req)) return send(reply, 403, bare('Refused', problemBox({ status: 403, title: 'Cross-origin form refused' })));
      const credential = formOf(req).get('credential')?.trim() ?? '';
      if (!credential) return send(reply, 400, loginPage(problemBox({ status: 400, code: 'invalid_request', title: 'Missing credential', detail: 'credential: enter the admin token or an admin key' })));
      const r = await apiFor(app, credential).call('GET', '/v1/whoami');
      if (!r.ok) {
        const p = r.status === 401 ? { ...r.problem, detail: 'That credential is not an admin token or a live admin key.' } : r.problem;
        return send(reply, r.status, loginPage(problemBox(p)));
      }
      const { value, expiresAt } = deps.sessions.seal(credential);
      // Up, not down: the clock may tick between the seal and this line (8 h is 28800 s, not 28799).
      reply.header('set-cookie', sessionCookie(value, Math.ceil((expiresAt - deps.now()) / 1000), secure));
      return reply.redirect('/ui', 303);
    });

    /** The session of a request, re-authenticated through the API (a revoked key stops here). */
    async function signedIn(req: FastifyRequest): Promise<{ api: Api; cookie: string; who: Who } | undefined> {
      const cookie = readCookie(req.headers.cookie, SESSION_COOKIE);
      const session = deps.sessions.open(cookie);
      if (!cookie || !session) return undefined;
      const api = apiFor(app, session.credential);
      const r = await api.call<Who>('GET', '/v1/whoami');
      if (!r.ok) {
        if (r.status === 401) return undefined;
        throw new ApiProblem(r.problem);
      }
      return { api, cookie, who: r.body };
    }

    app.post('/ui/logout', { schema: { hide: true } }, async (req, reply) => {
      const cookie = readCookie(req.headers.cookie, SESSION_COOKIE);
      if (foreignOrigin(req) || !cookie || !deps.sessions.csrfValid(cookie, formOf(req).get('_csrf') ?? undefined)) {
        return send(reply, 403, bare('Refused', problemBox({ status: 403, title: 'Form refused', detail: 'the form did not carry this session’s token; reload the page and try again' })));
      }
      clearCookie(reply);
      return reply.redirect('/ui/login', 303);
    });

    function route(method: 'GET' | 'POST', path: string, handler: UiHandler) {
      app.route({
        method,
        url: path,
        schema: { hide: true },
        handler: async (req, reply) => {
          let session: Awaited<ReturnType<typeof signedIn>>;
          try {
            session = await signedIn(req);
          } catch (err) {
            if (err instanceof ApiProblem) return send(reply, err.problem.status, bare('Unavailable', problemBox(err.problem)));
            throw err;
          }
          if (!session) {
            if (readCookie(req.headers.cookie, SESSION_COOKIE)) clearCookie(reply);
            return reply.redirect(req.headers.cookie?.includes(`${SESSION_COOKIE}=`) ? '/ui/login?ended=1' : '/ui/login', 303);
          }
          const form = formOf(req);
          const ctx: PageContext = { who: session.who, csrf: deps.sessions.csrfToken(session.cookie), version: deps.version, now: deps.now() };
          if (method === 'POST') {
            // SameSite=Strict keeps the cookie off cross-site posts; the token and the Origin check are the second and third lines.
            if (foreignOrigin(req)) return send(reply, 403, page(ctx, '', 'Refused', problemBox({ status: 403, title: 'Cross-origin form refused', detail: `forms are accepted from ${origin} only` })));
            if (!deps.sessions.csrfValid(session.cookie, form.get('_csrf') ?? undefined)) {
              return send(reply, 403, page(ctx, '', 'Refused', problemBox({ status: 403, title: 'Form refused', detail: 'the form did not carry this session’s token; reload the page and try again' })));
            }
          }
          const params = (req.params ?? {}) as Record<string, string>;
          let result: UiResult;
          try {
            result = await handler({ params, query: queryOf(req), form, api: session.api, ctx });
          } catch (err) {
            if (!(err instanceof ApiProblem)) throw err;
            const section = '/' + path.split('/').slice(1, 3).join('/');
            return send(reply, err.problem.status, page(ctx, section, 'Refused', problemBox(err.problem)));
          }
          if ('redirect' in result) return reply.redirect(result.redirect, 303);
          if ('status' in result) return send(reply, result.status, result.page);
          return send(reply, 200, result);
        },
      });
    }

    const ui: Ui = { get: (p, h) => route('GET', p, h), post: (p, h) => route('POST', p, h) };
    ui.get('/ui', async () => ({ redirect: '/ui/connections' }));
    connectionPages(ui);
    agentPages(ui);
    auditPages(ui);
    webhookPages(ui);
    providerPages(ui);
  };
}
