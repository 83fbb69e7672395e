import type { FastifyInstance } from 'fastify';

// A cookie-keeping client of the dashboard over inject(): what a browser would send, no more.

export interface UiResponse {
  status: number;
  body: string;
  headers: Record<string, string | string[] | number | undefined>;
  location?: string;
}

export function uiClient(app: FastifyInstance, origin?: string) {
  let cookie: string | undefined;
  async function send(method: 'GET' | 'POST', url: string, form?: Record<string, string | string[]>, headers: Record<string, string> = {}): Promise<UiResponse> {
    const body = form ? new URLSearchParams(Object.entries(form).flatMap(([k, v]) => [v].flat().map((x) => [k, x]))).toString() : undefined;
    const res = await app.inject({
      method,
      url,
      headers: {
        ...(cookie ? { cookie } : {}),
        ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        ...(origin && method === 'POST' ? { origin } : {}),
        ...headers,
      },
      ...(body !== undefined ? { payload: body } : {}),
    });
    const set = res.headers['set-cookie'];
    for (const c of [set ?? []].flat()) {
      const [pair] = String(c).split(';');
      cookie = pair!.endsWith('=') ? undefined : pair;
    }
    return { status: res.statusCode, body: res.body, headers: res.headers, location: res.headers.location as string | undefined };
  }
  /** The CSRF token of the page's forms. */
  const csrfOf = (page: string) => /name="_csrf" value="([^"]+)"/.exec(page)?.[1];
  return {
    get: (url: string) => send('GET', url),
    post: send,
    csrfOf,
    get cookie() {
      return cookie;
    },
    set cookie(v: string | undefined) {
      cookie = v;
    },
    async signIn(credential: string): Promise<UiResponse> {
      return send('POST', '/ui/login', { credential });
    },
    /** Posts a form with the CSRF token of `pageUrl`. */
    async submit(pageUrl: string, action: string, form: Record<string, string | string[]> = {}): Promise<UiResponse> {
      const page = await send('GET', pageUrl);
      const csrf = csrfOf(page.body);
      if (!csrf) throw new Error(`no form token on ${pageUrl} (${page.status})`);
      return send('POST', action, { _csrf: csrf, ...form });
    },
  };
}
