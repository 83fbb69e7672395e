import type { z } from 'zod';
import type { connectionView } from '../../http/routes/connections.ts';
import { html, query } from '../html.ts';
import { apiQuery, enc, field, words, type Ui } from '../kit.ts';
import { must } from '../api.ts';
import { action, badge, confirmPage, csrfField, notice, page, tagsOf, when, type PageContext } from '../layout.ts';

const HERE = '/ui/connections';
const STATUSES = ['active', 'reauth_required', 'revoked', 'error'] as const;
/** The list filters GET /v1/connections takes (the tag filters are ignored by an API without tags). */
const FILTERS = ['status', 'provider', 'owner', 'end_user', 'organization', 'label'] as const;

/** A connection on the wire (the admin API's own schema). */
export type ConnectionView = z.infer<typeof connectionView>;

interface ProviderSummary {
  id: string;
  name?: string;
  environments: string[];
  scopes: string[];
}

function actions(ctx: PageContext, c: ConnectionView) {
  const base = `${HERE}/${enc(c.id)}`;
  return html`${c.status === 'reauth_required' ? action(ctx, `${base}/reconnect-link`, 'Re-connect link') : ''}
${c.status === 'active' || c.status === 'error' ? action(ctx, `${base}/refresh`, 'Refresh now') : ''}
${c.status !== 'revoked' ? action(ctx, `${base}/revoke`, 'Revoke', { danger: true, confirm: `Revoke connection ${c.id} (${c.provider}, ${c.owner})? Agents using it lose access.` }) : ''}`;
}

function filterForm(q: URLSearchParams, providers: ProviderSummary[]) {
  const v = (n: string) => q.get(n) ?? '';
  return html`<form method="get" action="${HERE}" class="filters" aria-label="Filter connections">
<div><label for="f-status">Status</label><select id="f-status" name="status"><option value="">any</option>${STATUSES.map(
    (s) => html`<option value="${s}"${v('status') === s ? html` selected` : ''}>${s}</option>`,
  )}</select></div>
<div><label for="f-provider">Provider</label><select id="f-provider" name="provider"><option value="">any</option>${providers.map(
    (p) => html`<option value="${p.id}"${v('provider') === p.id ? html` selected` : ''}>${p.id}</option>`,
  )}</select></div>
<div><label for="f-owner">Owner</label><input id="f-owner" name="owner" value="${v('owner')}"></div>
<div><label for="f-end_user">End user</label><input id="f-end_user" name="end_user" value="${v('end_user')}"></div>
<div><label for="f-organization">Organization</label><input id="f-organization" name="organization" value="${v('organization')}"></div>
<div><label for="f-label">Label (key=value)</label><input id="f-label" name="label" value="${v('label')}"></div>
<div><button type="submit">Filter</button> <a href="${HERE}">Clear</a></div></form>`;
}

function connectForm(ctx: PageContext, providers: ProviderSummary[]) {
  return html`<details class="panel"><summary>New connection</summary>
<form method="post" action="/ui/connect-sessions" class="stack">${csrfField(ctx)}
<label for="c-provider">Provider</label><select id="c-provider" name="provider" required>${providers.map((p) => html`<option value="${p.id}">${p.name ? `${p.name} (${p.id})` : p.id}</option>`)}</select>
<label for="c-environment">Environment (optional)</label><input id="c-environment" name="environment" placeholder="production">
<label for="c-owner">Owner</label><input id="c-owner" name="owner" required placeholder="alice@example.com">
<label for="c-scopes">Scopes (space-separated; empty: the provider's defaults)</label><input id="c-scopes" name="scopes">
<button type="submit">Create connect link</button></form></details>`;
}

export function connectionPages(ui: Ui): void {
  ui.get(HERE, async ({ api, query: q, ctx }) => {
    const [list, providers] = await Promise.all([
      api.call<{ connections: ConnectionView[] }>('GET', apiQuery('/v1/connections', q, FILTERS)).then(must),
      api.call<{ providers: ProviderSummary[] }>('GET', '/v1/providers').then(must),
    ]);
    const rows = list.connections.map(
      (c) => html`<tr><th scope="row"><a href="${HERE}/${enc(c.id)}">${c.id}</a></th><td>${c.provider}<span class="muted"> · ${c.environment}</span></td>
<td>${c.owner}</td><td>${badge(c.status)}</td><td>${c.status === 'active' ? when(c.expires_at, ctx.now) : html`<span class="muted">—</span>`}</td>
<td>${when(c.last_refreshed_at, ctx.now)}</td><td>${tagsOf(c)}</td><td class="actions">${actions(ctx, c)}</td></tr>`,
    );
    return page(
      ctx,
      HERE,
      'Connections',
      html`${filterForm(q, providers.providers)}${connectForm(ctx, providers.providers)}
<table><caption>${list.connections.length} connection${list.connections.length === 1 ? '' : 's'}</caption>
<thead><tr><th scope="col">Id</th><th scope="col">Provider</th><th scope="col">Owner</th><th scope="col">Status</th><th scope="col">Expires</th><th scope="col">Last refresh</th><th scope="col">Tags</th><th scope="col">Actions</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="8">No connections match.</td></tr>`}</tbody></table>`,
    );
  });

  ui.get(`${HERE}/:id`, async ({ api, params, ctx }) => {
    const c = must(await api.call<ConnectionView>('GET', `/v1/connections/${enc(params.id!)}`));
    const row = (label: string, value: unknown) => html`<tr><th scope="row">${label}</th><td>${value as string}</td></tr>`;
    return page(
      ctx,
      HERE,
      `Connection ${c.id}`,
      html`<table class="kv"><caption>Details</caption><tbody>
${row('Status', badge(c.status))}${row('Provider', `${c.provider} (${c.environment})`)}${row('Owner', c.owner)}
${c.account ? row('Account', c.account) : ''}${row('Expires', when(c.expires_at, ctx.now))}${row('Last refresh', when(c.last_refreshed_at, ctx.now))}
${row('Created', when(c.created_at, ctx.now))}${row('Scopes granted', c.scopes.join(' ') || '—')}${row('Scopes asked', c.requested_scopes.join(' ') || '—')}
${c.missing_scopes.length ? row('Scopes missing', c.missing_scopes.join(' ')) : ''}${c.last_error ? row('Last error', c.last_error) : ''}
${row('Tags', tagsOf(c))}</tbody></table>
<p class="actions">${actions(ctx, c)} <a href="/ui/audit${query({ connection: c.id })}">Audit entries</a></p>`,
    );
  });

  ui.post(`${HERE}/:id/revoke`, async ({ api, params, form, ctx }) => {
    const href = `${HERE}/${enc(params.id!)}/revoke`;
    if (form.get('confirm') !== 'yes') return confirmPage(ctx, HERE, href, `Revoke connection ${params.id}? It is revoked at the provider, verified, then deleted; agents using it lose access.`, 'Revoke');
    const r = must(await api.call<{ revoked: boolean; verified: boolean; verification: string; detail: string; deleted: boolean }>('DELETE', `/v1/connections/${enc(params.id!)}`));
    return page(
      ctx,
      HERE,
      `Connection ${params.id} revoked`,
      html`${notice(html`Revoked at the provider: <strong>${r.revoked ? 'yes' : 'no'}</strong>; verified: <strong>${r.verified ? 'yes' : 'no'}</strong> (${r.verification}); deleted: <strong>${r.deleted ? 'yes' : 'no'}</strong>.`)}
<p>${r.detail}</p><p><a href="${HERE}">Back to connections</a></p>`,
    );
  });

  ui.post(`${HERE}/:id/refresh`, async ({ api, params, ctx }) => {
    const r = must(await api.call<{ expires_at: string | null; refreshed: boolean }>('POST', `/v1/connections/${enc(params.id!)}/refresh`));
    return page(ctx, HERE, `Connection ${params.id}`, html`${notice(html`${r.refreshed ? 'Refreshed' : 'Not refreshed'}; the token expires ${when(r.expires_at, ctx.now)}.`)}<p><a href="${HERE}/${enc(params.id!)}">Back to the connection</a></p>`);
  });

  ui.post(`${HERE}/:id/reconnect-link`, async ({ api, params, ctx }) => {
    const r = must(await api.call<{ url: string; expires_at: string }>('POST', `/v1/connections/${enc(params.id!)}/reconnect-link`));
    return page(
      ctx,
      HERE,
      `Re-connect ${params.id}`,
      html`<p>Send this link to the connection's owner; it works once, until ${when(r.expires_at, ctx.now)}, and only while the connection needs re-consent.</p>
<p><input id="link" class="wide" readonly value="${r.url}" aria-label="Re-connect link"> <button type="button" data-copy="link" hidden>Copy</button></p>
<p><a href="${HERE}/${enc(params.id!)}">Back to the connection</a></p>`,
    );
  });

  ui.post('/ui/connect-sessions', async ({ api, form, ctx }) => {
    const scopes = words(field(form, 'scopes'));
    const body = { provider: field(form, 'provider') ?? '', owner: field(form, 'owner') ?? '', scopes, ...(field(form, 'environment') ? { environment: field(form, 'environment') } : {}) };
    const r = must(await api.call<{ id: string; connect_url: string; expires_at: string }>('POST', '/v1/connect-sessions', body));
    return page(
      ctx,
      HERE,
      'Connect link',
      html`<p>Open this link (or send it to ${body.owner}) to authorize ${body.provider}; it is good until ${when(r.expires_at, ctx.now)}.</p>
<p><a id="connect-url" href="${r.connect_url}">${r.connect_url}</a></p>
<p>Session <code id="session-id">${r.id}</code>. <a href="${HERE}">Back to connections</a></p>`,
    );
  });
}
