import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { KoaContextWithOIDC } from 'oidc-provider';

// Server-rendered pages of the authorization server: login, consent, errors. No script at all,
// one stylesheet allowed by its hash, never framed (clickjacking on a consent button is the
// attack: X-Frame-Options for old browsers, CSP frame-ancestors for the rest).

const STYLE =
  'body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;line-height:1.45}' +
  'label{display:block;margin:.8rem 0 .2rem}input{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box}' +
  'button{font-size:1rem;padding:.5rem 1.5rem;margin:1rem .5rem 0 0}code{background:#f3f3f3;padding:0 .2rem}' +
  'dt{font-weight:600;margin-top:.6rem}.err{color:#a00}';
const styleHash = createHash('sha256').update(STYLE).digest('base64');

/** Headers of every page: no framing, no script, nothing cached, no referrer carrying the uid. */
export const pageHeaders: Record<string, string> = {
  'content-type': 'text/html; charset=utf-8',
  'x-frame-options': 'DENY',
  'content-security-policy': `default-src 'none'; style-src 'sha256-${styleHash}'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'`,
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
};

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">` +
    `<title>${escapeHtml(title)}</title><style>${STYLE}</style><body>${body}</body></html>`;
}

export function sendPage(res: ServerResponse, status: number, title: string, body: string): void {
  const html = page(title, body);
  res.writeHead(status, { ...pageHeaders, 'content-length': Buffer.byteLength(html) });
  res.end(html);
}

/** oidc-provider's error page (renderError): the error code and its public description only. */
export function renderErrorPage(ctx: KoaContextWithOIDC, out: { error: string; error_description?: string }): void {
  for (const [k, v] of Object.entries(pageHeaders)) ctx.set(k, v);
  ctx.type = 'html';
  ctx.body = page(
    'Authorization error',
    `<h1>Authorization error</h1><p><code>${escapeHtml(String(out.error))}</code></p>` +
      (out.error_description ? `<p>${escapeHtml(String(out.error_description))}</p>` : '') +
      '<p>Go back to the application and start again.</p>',
  );
}

export interface LoginView {
  action: string;
  csrf: string;
  clientName: string;
  owner?: string;
  error?: string;
}

export function loginPage(v: LoginView): string {
  return (
    `<h1>Sign in to Warrant</h1><p><b>${escapeHtml(v.clientName)}</b> asks to act for a Warrant owner. ` +
    'Sign in as that owner with a login code from your Warrant admin (<code>POST /v1/owners/{owner}/login-codes</code>).</p>' +
    (v.error ? `<p class="err">${escapeHtml(v.error)}</p>` : '') +
    `<form method="post" action="${escapeHtml(v.action)}">` +
    `<input type="hidden" name="csrf" value="${escapeHtml(v.csrf)}">` +
    `<label for="owner">Owner</label><input id="owner" name="owner" autocomplete="username" required maxlength="320" value="${escapeHtml(v.owner ?? '')}">` +
    '<label for="code">Login code</label><input id="code" name="code" autocomplete="one-time-code" required maxlength="64">' +
    '<button type="submit">Sign in</button></form>'
  );
}

export interface ConsentView {
  approve: string;
  deny: string;
  csrf: string;
  owner: string;
  clientId: string;
  clientName?: string;
  clientUri?: string;
  /** The host that published the client's metadata document (its client_id URL): verified, unlike its name. */
  publisher?: string;
  redirectUri: string;
  scopes: string[];
  resources: string[];
}

const hostOf = (uri: string | undefined): string => {
  try {
    return uri ? new URL(uri).host : '';
  } catch {
    return '';
  }
};

export function consentPage(v: ConsentView): string {
  const host = hostOf(v.clientUri);
  // A name is whatever the client says; the publisher is the host Warrant fetched the description from.
  const back = hostOf(v.redirectUri);
  const loopback = /^(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/.test(back);
  const published = v.publisher
    ? `<dt>Published by</dt><dd><b>${escapeHtml(v.publisher)}</b> (Warrant read this application's description at its client id)</dd>` +
      (back && !loopback && back !== v.publisher ? `<dd class="err">It sends you back to <b>${escapeHtml(back)}</b>, another host than the one that published it.</dd>` : '')
    : '';
  const hidden = `<input type="hidden" name="csrf" value="${escapeHtml(v.csrf)}">`;
  const list = (xs: string[]) => (xs.length ? xs.map((x) => `<code>${escapeHtml(x)}</code>`).join(' ') : '<i>none</i>');
  return (
    `<h1>Allow access?</h1><p>Signed in as <b>${escapeHtml(v.owner)}</b>.</p><dl>` +
    `<dt>Application</dt><dd>${escapeHtml(v.clientName ?? v.clientId)}${host && !v.publisher ? ` (${escapeHtml(host)})` : ''} — client id <code>${escapeHtml(v.clientId)}</code></dd>` +
    published +
    `<dt>Sends you back to</dt><dd><code>${escapeHtml(v.redirectUri)}</code></dd>` +
    `<dt>Scopes</dt><dd>${list(v.scopes)}</dd>` +
    `<dt>Resource</dt><dd>${list(v.resources)}</dd></dl>` +
    '<p>Allowing makes this application an agent of yours: revoking it, or your offboarding, ends its access.</p>' +
    `<form method="post" action="${escapeHtml(v.approve)}">${hidden}<button type="submit" autofocus>Allow</button></form>` +
    `<form method="post" action="${escapeHtml(v.deny)}">${hidden}<button type="submit">Deny</button></form>`
  );
}

/** RFC 8628 §3.3: where the owner types the user code the device shows. `form` is oidc-provider's (its own CSRF field inside). */
export function deviceInputSource(ctx: KoaContextWithOIDC, form: string, _out: unknown, err?: { name?: string; userCode?: string }): void {
  for (const [k, v] of Object.entries(pageHeaders)) ctx.set(k, v);
  ctx.type = 'html';
  const msg = err
    ? err.userCode || err.name === 'NoCodeError'
      ? '<p class="err">That code is not valid (wrong, used or expired). Check the device and try again.</p>'
      : '<p class="err">The request could not be processed. Start again from the device.</p>'
    : '';
  ctx.body = page(
    'Connect a device',
    '<h1>Connect a device</h1><p>Enter the code the device or command line shows. You will then sign in as a Warrant owner and see what it asks for.</p>' +
      msg +
      form +
      '<button type="submit" form="op.deviceInputForm">Continue</button>',
  );
}

/** The step before login: the code, and who asks, so the owner checks it is the device they hold. */
export function deviceConfirmSource(ctx: KoaContextWithOIDC, form: string, client: { clientName?: string; clientId: string }, _info: unknown, userCode: string): void {
  for (const [k, v] of Object.entries(pageHeaders)) ctx.set(k, v);
  ctx.type = 'html';
  ctx.body = page(
    'Confirm the device',
    `<h1>Confirm the device</h1><p><b>${escapeHtml(client.clientName ?? client.clientId)}</b> (client id <code>${escapeHtml(client.clientId)}</code>) asks to act for a Warrant owner.</p>` +
      `<p>The device must show <code>${escapeHtml(userCode)}</code>. If it does not, or you did not start this, close this page.</p>` +
      form +
      '<button type="submit" form="op.deviceConfirmForm" autofocus>Continue</button>' +
      '<button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Abort</button>',
  );
}

export function deviceSuccessSource(ctx: KoaContextWithOIDC): void {
  for (const [k, v] of Object.entries(pageHeaders)) ctx.set(k, v);
  ctx.type = 'html';
  const name = ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId ?? 'the device';
  ctx.body = page('Device connected', `<h1>Done</h1><p>${escapeHtml(name)} is allowed. You can close this page; the device goes on by itself.</p>`);
}
