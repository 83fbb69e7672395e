import { createHash } from 'node:crypto';
import type { Provider, ScopeRule } from '../providers/index.ts';

// The pages an owner sees during a connect: the hosted connect page (what is asked, Continue or
// Cancel), the end of the flow (connected, waiting for confirmation, failed) and a link that
// cannot be used. One template, branded by WARRANT_BRAND_*; every value is escaped by `h`, and
// the only markup that goes in unescaped is markup `h` made.

export interface Brand {
  name: string;
  /** https:// or data:image/… (checked by config). */
  logoUrl?: string;
  /** `#rgb` or `#rrggbb` (checked by config). */
  color: string;
}

export const defaultBrand: Brand = { name: 'Warrant', color: '#2f5bd3' };

class Markup {
  constructor(readonly value: string) {}
}
type Part = Markup | string | number | null | undefined | false | readonly Part[];

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escape = (s: string) => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
const render = (p: Part): string =>
  p === null || p === undefined || p === false ? '' : p instanceof Markup ? p.value : Array.isArray(p) ? p.map(render).join('') : escape(String(p));

/** `h\`<p>${value}</p>\``: values escaped; nested `h` results and arrays of them kept as markup. */
export function h(strings: TemplateStringsArray, ...values: Part[]): Markup {
  let out = strings[0]!;
  values.forEach((v, i) => (out += render(v) + strings[i + 1]!));
  return new Markup(out);
}

/** WCAG relative luminance of `#rgb` / `#rrggbb`. */
function luminance(hex: string): number {
  const full = hex.length === 4 ? hex.replace(/^#(.)(.)(.)$/, '#$1$1$2$2$3$3') : hex;
  const [r, g, b] = [1, 3, 5].map((i) => {
    const c = parseInt(full.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
}

/** The origin a CSP `img-src` must allow for a logo: its https origin, or `data:`. */
const imageSource = (url: string | undefined) => (!url ? undefined : url.startsWith('data:') ? 'data:' : new URL(url).origin);

export interface ReviewView {
  sessionId: string;
  provider: Provider;
  owner: string;
  scopes: string[];
  purpose?: string;
  /** A re-connect link: the connection it revives. */
  reconnectOf?: string;
  expiresAt: number;
  /** Hidden form fields: the start token and the CSRF token. */
  token: string;
  csrf: string;
}

export interface Outcome {
  provider: string;
  owner: string;
  connectionId: string;
  scopes: string[];
  missingScopes: string[];
}

export interface Page {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Scopes with no rule of their own, said in words an owner understands. */
const wellKnown: Record<string, string> = {
  offline_access: 'keeps access working without asking you again (a refresh token, kept by Warrant only)',
  openid: 'tells Warrant which account you signed in with',
  profile: 'your basic profile (name)',
  email: 'your email address',
};

const ruleText = (r: ScopeRule) => `${[r.method].flat().join(', ')} ${r.path}${r.host ? ` (on ${r.host})` : ''}`;

export function createConnectPages(brand: Brand = defaultBrand) {
  // Text on the brand colour: whichever of white or near-black contrasts more (WCAG 1.4.3).
  const onBrand = (1.05 / (luminance(brand.color) + 0.05) >= (luminance(brand.color) + 0.05) / 0.0555) ? '#ffffff' : '#111111';
  const css = [
    'body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}',
    'header{display:flex;align-items:center;gap:.5rem;padding:.75rem 1.25rem;background:#fff;border-bottom:1px solid #d8dce1;font-weight:600}',
    'header img{height:28px;width:auto}',
    'main{max-width:36rem;margin:2rem auto;padding:1.5rem;background:#fff;border:1px solid #d8dce1;border-radius:8px}',
    'h1{font-size:1.4rem;margin:0 0 .75rem;display:flex;align-items:center;gap:.6rem}h1 img{height:36px;width:auto}',
    'h2{font-size:1.05rem;margin:1.25rem 0 .5rem}p{margin:.5rem 0}',
    'code{background:#eef0f3;padding:0 .25rem;border-radius:3px;word-break:break-all}',
    'ul{padding-left:1.25rem;margin:.25rem 0}li{margin:.25rem 0}.rules{color:#4a525c;font-size:.9rem}',
    '.purpose{border-left:4px solid #b8c0ca;padding:.25rem .75rem;background:#f6f7f9}',
    '.note,.meta{color:#4a525c;font-size:.9rem}.bad{color:#a4161a}',
    '.actions{display:flex;gap:1rem;align-items:center;flex-wrap:wrap;margin-top:1.25rem}.actions form{margin:0}',
    `.primary{font:inherit;font-weight:600;padding:.6rem 1.1rem;border:0;border-radius:6px;cursor:pointer;background:${brand.color};color:${onBrand}}`,
    '.link{font:inherit;background:none;border:0;padding:0;color:#1f4fbf;text-decoration:underline;cursor:pointer}',
    'button:focus-visible{outline:3px solid #1b1f24;outline-offset:2px}',
  ].join('');
  const styleHash = createHash('sha256').update(css).digest('base64');

  function page(status: number, title: string, content: Markup, providerLogo?: string): Page {
    const images = ["'self'", imageSource(brand.logoUrl), imageSource(providerLogo)].filter((s): s is string => !!s);
    const body = h`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title} · ${brand.name}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer"><style>${new Markup(css)}</style></head>
<body><header>${brand.logoUrl ? h`<img src="${brand.logoUrl}" alt="">` : ''}<span>${brand.name}</span></header><main>${content}</main></body></html>`;
    return {
      status,
      body: body.value,
      headers: {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'referrer-policy': 'no-referrer',
        'x-content-type-options': 'nosniff',
        'x-frame-options': 'DENY',
        // No script at all; the one stylesheet by its hash; images from here and the logos' origins.
        'content-security-policy': `default-src 'none'; style-src 'sha256-${styleHash}'; img-src ${[...new Set(images)].join(' ')}; base-uri 'none'; frame-ancestors 'none'`,
      },
    };
  }

  const nameOf = (p: Pick<Provider, 'id' | 'name'>) => p.name ?? p.id;

  function scopeItem(provider: Provider, scope: string): Markup {
    const rules = provider.scopes[scope] ?? [];
    const description = provider.scope_descriptions?.[scope] ?? wellKnown[scope];
    return h`<li><code>${scope}</code>${description ? h` — ${description}` : ''}${
      rules.length ? h`<ul class="rules">${rules.map((r) => h`<li>lets an agent call <code>${ruleText(r)}</code></li>`)}</ul>` : ''
    }</li>`;
  }

  return {
    /** The hosted connect page: who asks, for whom, which scopes and what each opens; Continue or Cancel. */
    review(v: ReviewView): Page {
      const name = nameOf(v.provider);
      const hidden = h`<input type="hidden" name="t" value="${v.token}"><input type="hidden" name="csrf" value="${v.csrf}">`;
      const content = h`<h1>${v.provider.logo_url ? h`<img src="${v.provider.logo_url}" alt="">` : ''}${v.reconnectOf ? 'Re-connect' : 'Connect'} ${name}</h1>
<p>${brand.name} asks for access to a ${name} account on behalf of <strong>${v.owner}</strong>.${
        v.reconnectOf ? h` It replaces the grant of connection <code>${v.reconnectOf}</code>, which needs you to sign in again; use the same ${name} account.` : ''
      }</p>
${v.purpose ? h`<h2>Why</h2><p class="purpose">${v.purpose}</p>` : ''}
<h2>What it asks for</h2>
${v.scopes.length ? h`<ul class="scopes">${v.scopes.map((s) => scopeItem(v.provider, s))}</ul>` : h`<p>No scopes: what ${name} grants by default.</p>`}
${v.provider.idp_scopes === false ? h`<p class="note">${name} grants what its integration is set up to allow; these names are how ${brand.name} lets agents use it.</p>` : ''}
<p class="note">${brand.name} keeps the grant: agents never see your password or tokens, and each agent may do only what it is granted, nothing beyond the calls listed here.</p>
<div class="actions">
<form method="post" action="/connect/${v.sessionId}/continue">${hidden}<button type="submit" class="primary">Continue to ${name}</button></form>
<form method="post" action="/connect/${v.sessionId}/cancel">${hidden}<button type="submit" class="link">Cancel</button></form>
</div>
<p class="meta">This link works once, until ${new Date(v.expiresAt).toUTCString()}. Continue takes you to ${name} to sign in and approve.</p>`;
      return page(200, `Connect ${name}`, content, v.provider.logo_url);
    },

    connected(o: Outcome): Page {
      return page(
        200,
        'Connected',
        h`<h1>Connected</h1><p>${brand.name} now holds the ${o.provider} grant for <strong>${o.owner}</strong>.</p>
<p>Connection: ${o.connectionId}</p>
<h2>Scopes granted</h2>${o.scopes.length ? h`<ul>${o.scopes.map((s) => h`<li><code>${s}</code></li>`)}</ul>` : h`<p>None named by ${o.provider}.</p>`}
${o.missingScopes.length ? h`<h2>Not granted</h2><p class="bad">Granted fewer scopes than asked: missing ${o.missingScopes.join(', ')}.</p><p>Agent calls that need them will be refused as missing scope; ask for a new link to grant them.</p>` : ''}
<p>You can close this window.</p>`,
      );
    },

    waiting(o: { provider: string; connectionId: string; pendingFor: string }): Page {
      return page(
        200,
        'Waiting for confirmation',
        h`<h1>Waiting for confirmation</h1><p>${o.provider} could not confirm this is the same account as connection ${o.pendingFor}.</p>
<p>The grant was saved as a new connection, ${o.connectionId}; ${o.pendingFor} stays as it was until its owner confirms the replacement.</p><p>You can close this window.</p>`,
      );
    },

    failed(o: { what: string; next: string; status?: number }): Page {
      return page(o.status ?? 400, 'Connection failed', h`<h1>Connection failed</h1><p>${o.what}</p><h2>What to do next</h2><p>${o.next}</p>`);
    },

    /** A link that cannot be used (unknown, used, expired): nothing about the session is shown. */
    unusable(status: number, title: string, detail: string): Page {
      return page(status, title, h`<h1>${title}</h1><p>${detail}</p><h2>What to do next</h2><p>Ask whoever sent you this link for a new one. You can close this window.</p>`);
    },
  };
}

export type ConnectPages = ReturnType<typeof createConnectPages>;
