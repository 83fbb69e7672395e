import { html } from '../html.ts';
import { enc, type Ui } from '../kit.ts';
import { must } from '../api.ts';
import { page, relative } from '../layout.ts';

const HERE = '/ui/providers';

interface ProviderDetail {
  id: string;
  name?: string;
  auth: string;
  environments: string[];
  scopes: string[];
  refresh_token_rotation: boolean;
  docs_url?: string;
  client_configured?: Record<string, boolean>;
  token_auth_method: string;
  endpoints: Record<string, Record<string, string | undefined>>;
  token_lifetime?: number;
  refresh_token_grace_period?: number;
  refresh_token_reusable?: boolean;
  refresh_token_lifetime?: number;
  refresh_token_idle_timeout?: number;
  default_scopes?: string[];
  scope_rules: Record<string, { method: string | string[]; path: string }[]>;
}

/** Seconds as "6 h 0 min" (the catalog's lifetimes). */
const duration = (s: number | undefined) => (s === undefined ? html`<span class="muted">—</span>` : html`${relative(s * 1000).replace(/^in /, '')}`);

function configured(p: ProviderDetail) {
  const per = Object.entries(p.client_configured ?? {});
  return per.map(([env, ok]) => html`<span class="badge ${ok ? 'badge-active' : 'badge-error'}">${env}: ${ok ? 'configured' : 'no client id'}</span> `);
}

function quirks(p: ProviderDetail): string[] {
  const q: string[] = [];
  if (p.refresh_token_rotation) q.push('rotates refresh tokens');
  if (p.refresh_token_grace_period !== undefined) q.push(`old refresh token valid ${relative(p.refresh_token_grace_period * 1000).replace(/^in /, '')} after rotation`);
  if (p.refresh_token_reusable) q.push('refresh token reusable');
  if (p.refresh_token_lifetime !== undefined) q.push(`refresh token lives ${relative(p.refresh_token_lifetime * 1000).replace(/^in /, '')}`);
  if (p.refresh_token_idle_timeout !== undefined) q.push(`refresh token idles out after ${relative(p.refresh_token_idle_timeout * 1000).replace(/^in /, '')}`);
  return q;
}

export function providerPages(ui: Ui): void {
  ui.get(HERE, async ({ api, ctx }) => {
    const list = must(await api.call<{ providers: { id: string }[] }>('GET', '/v1/providers'));
    const details = await Promise.all(list.providers.map((p) => api.call<ProviderDetail>('GET', `/v1/providers/${enc(p.id)}`).then(must)));
    const rows = details.map(
      (p) => html`<tr><th scope="row"><a href="${HERE}/${enc(p.id)}">${p.name ?? p.id}</a><div class="muted">${p.id}</div></th><td>${p.auth}</td>
<td>${configured(p)}</td><td>${duration(p.token_lifetime)}</td><td>${quirks(p).join('; ') || '—'}</td><td>${p.scopes.length}</td></tr>`,
    );
    return page(
      ctx,
      HERE,
      'Providers',
      html`<p>The provider catalog: built-in entries and WARRANT_PROVIDERS. "Configured" means a client id resolves for that environment, so connections can be made there.</p>
<table><caption>${details.length} providers</caption>
<thead><tr><th scope="col">Provider</th><th scope="col">Auth</th><th scope="col">Environments</th><th scope="col">Access token lifetime (default)</th><th scope="col">Refresh tokens</th><th scope="col">Scopes</th></tr></thead>
<tbody>${rows}</tbody></table>`,
    );
  });

  ui.get(`${HERE}/:id`, async ({ api, params, ctx }) => {
    const p = must(await api.call<ProviderDetail>('GET', `/v1/providers/${enc(params.id!)}`));
    const row = (label: string, value: unknown) => html`<tr><th scope="row">${label}</th><td>${value as string}</td></tr>`;
    const rules = Object.entries(p.scope_rules).map(
      ([scope, list]) => html`<tr><th scope="row">${scope}</th><td><ul class="plain">${list.map((r) => html`<li><code>${[r.method].flat().join(', ')} ${r.path}</code></li>`)}</ul></td></tr>`,
    );
    const endpoints = Object.entries(p.endpoints).map(
      ([env, urls]) => html`<h3>${env}</h3><table class="kv"><caption>${env} endpoints</caption><tbody>${Object.entries(urls).map(([k, u]) => row(k, u ?? ''))}</tbody></table>`,
    );
    return page(
      ctx,
      HERE,
      p.name ?? p.id,
      html`<table class="kv"><caption>Definition</caption><tbody>${row('Id', p.id)}${row('Auth', p.auth)}${row('Token auth method', p.token_auth_method)}
${row('Client configured', configured(p))}${row('Access token lifetime (when the IdP does not say)', duration(p.token_lifetime))}
${row('Refresh token rotation', p.refresh_token_rotation ? 'yes' : 'no')}${row('Grace for the previous refresh token', duration(p.refresh_token_grace_period))}
${row('Refresh token reusable', p.refresh_token_reusable ? 'yes' : 'no')}${row('Refresh token lifetime', duration(p.refresh_token_lifetime))}
${row('Refresh token idle timeout', duration(p.refresh_token_idle_timeout))}${row('Default scopes', p.default_scopes?.join(' ') ?? '—')}
${p.docs_url ? row('Documentation', html`<a href="${p.docs_url}" rel="noreferrer">${p.docs_url}</a>`) : ''}</tbody></table>
<h2>Scope rules</h2><p>What each scope lets an agent do through the proxy.</p>
<table><caption>Scope rules</caption><thead><tr><th scope="col">Scope</th><th scope="col">Method and path</th></tr></thead><tbody>${rules.length ? rules : html`<tr><td colspan="2">None.</td></tr>`}</tbody></table>
<h2>Environments</h2>${endpoints}`,
    );
  });
}
