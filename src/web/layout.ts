import { html, type Html, type SafeHtml } from './html.ts';
import type { Problem } from './api.ts';

/** What every signed-in page knows: who, the CSRF token of its forms, the version. */
export interface PageContext {
  who: { actor: string; role: string; name?: string };
  csrf: string;
  version: string;
  now: number;
}

const NAV = [
  ['/ui/connections', 'Connections'],
  ['/ui/agents', 'Agents'],
  ['/ui/audit', 'Audit'],
  ['/ui/webhooks', 'Webhooks'],
  ['/ui/providers', 'Providers'],
] as const;

function shell(title: string, header: Html, body: Html): SafeHtml {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Warrant</title><link rel="stylesheet" href="/ui/static/ui.css"><script src="/ui/static/ui.js" defer></script></head>
<body><a class="skip" href="#main">Skip to content</a>${header}
<main id="main" tabindex="-1">${body}</main></body></html>`;
}

/** A signed-in page: header (who, role, version, sign-out), navigation, then the body. */
export function page(ctx: PageContext, current: string, title: string, body: Html): SafeHtml {
  const who = ctx.who.name ? `${ctx.who.name} (${ctx.who.actor})` : ctx.who.actor;
  const header = html`<header class="top"><span class="brand">Warrant <span class="muted">${ctx.version}</span></span>
<nav aria-label="Main"><ul>${NAV.map(
    ([href, label]) => html`<li><a href="${href}"${current === href ? html` aria-current="page"` : ''}>${label}</a></li>`,
  )}</ul></nav>
<div class="who">Signed in as <strong>${who}</strong>, role <strong>${ctx.who.role}</strong>
<form method="post" action="/ui/logout" class="inline">${csrfField(ctx)}<button type="submit" class="link">Sign out</button></form></div></header>`;
  return shell(title, header, html`<h1>${title}</h1>${body}`);
}

/** A page outside the session (sign-in). */
export function bare(title: string, body: Html): SafeHtml {
  return shell(title, html`<header class="top"><span class="brand">Warrant</span></header>`, html`<h1>${title}</h1>${body}`);
}

export const csrfField = (ctx: Pick<PageContext, 'csrf'>) => html`<input type="hidden" name="_csrf" value="${ctx.csrf}">`;

/** The API's problem, as it answered it: status, code, detail (and the role needed, for 403s). */
export function problemBox(p: Problem): SafeHtml {
  const role = typeof p.required_role === 'string' ? html`<p>Role needed: <strong>${p.required_role}</strong>${typeof p.role === 'string' ? html`; yours: <strong>${p.role}</strong>` : ''}.</p>` : '';
  return html`<div class="problem" role="alert"><h2>${p.title ?? 'Refused'} (${p.status})</h2>
${p.code ? html`<p>Code: <code>${p.code}</code></p>` : ''}${p.detail ? html`<p>${p.detail}</p>` : ''}${role}</div>`;
}

export const notice = (text: Html) => html`<div class="notice" role="status">${text}</div>`;

/** `<time>` with an absolute tooltip and a relative text ("in 3 h", "5 min ago"). */
export function when(iso: string | null | undefined, now: number): SafeHtml {
  if (!iso) return html`<span class="muted">never</span>`;
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) return html`${iso}`;
  return html`<time datetime="${iso}" title="${iso}">${relative(ms - now)}</time>`;
}

export function relative(deltaMs: number): string {
  const abs = Math.abs(deltaMs);
  const s = Math.round(abs / 1000);
  const text =
    s < 60 ? `${s} s` : s < 3600 ? `${Math.round(s / 60)} min` : s < 86_400 ? `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min` : `${Math.round(s / 86_400)} d`;
  return deltaMs >= 0 ? `in ${text}` : `${text} ago`;
}

export const badge = (status: string) => html`<span class="badge badge-${status.replace(/[^a-z_]/g, '')}">${status.replace(/_/g, ' ')}</span>`;

/** A POST button in its own form; `confirm` asks first (a dialog with JS, a confirmation page without). */
export function action(ctx: PageContext, href: string, label: string, opts: { confirm?: string; danger?: boolean } = {}): SafeHtml {
  return html`<form method="post" action="${href}" class="inline"${opts.confirm ? html` data-confirm="${opts.confirm}"` : ''}>${csrfField(ctx)}<button type="submit"${opts.danger ? html` class="danger"` : ''}>${label}</button></form>`;
}

/** The page a `confirm` action shows when it arrives without `confirm=yes` (JS off). */
export function confirmPage(ctx: PageContext, current: string, href: string, question: string, label: string, fields: Record<string, string> = {}): SafeHtml {
  return page(
    ctx,
    current,
    'Please confirm',
    html`<p>${question}</p><form method="post" action="${href}">${csrfField(ctx)}<input type="hidden" name="confirm" value="yes">${Object.entries(fields).map(
      ([k, v]) => html`<input type="hidden" name="${k}" value="${v}">`,
    )}<button type="submit" class="danger">${label}</button> <a href="${current}">Cancel</a></form>`,
  );
}

/** Tags of a connection or an agent (end user, organization, labels), when the API has them. */
export function tagsOf(v: { end_user?: unknown; organization?: unknown; labels?: unknown }): SafeHtml {
  const parts: SafeHtml[] = [];
  if (typeof v.end_user === 'string' && v.end_user) parts.push(html`<span class="tag">end user: ${v.end_user}</span>`);
  if (typeof v.organization === 'string' && v.organization) parts.push(html`<span class="tag">org: ${v.organization}</span>`);
  if (v.labels && typeof v.labels === 'object') for (const [k, val] of Object.entries(v.labels as Record<string, unknown>)) parts.push(html`<span class="tag">${k}=${String(val)}</span>`);
  return html`${parts}`;
}
