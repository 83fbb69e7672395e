import { html, query } from '../html.ts';
import { apiQuery, enc, field, words, type Ui } from '../kit.ts';
import { must } from '../api.ts';
import { action, badge, confirmPage, csrfField, notice, page, tagsOf, when, type PageContext } from '../layout.ts';
import type { ConnectionView } from './connections.ts';

const HERE = '/ui/agents';
const STATUSES = ['active', 'expired', 'suspended', 'revoked'] as const;
const FILTERS = ['owner', 'status', 'end_user', 'organization', 'label'] as const;
/** Grant rows on the create form (JS-free: empty rows are ignored). */
const GRANT_ROWS = 3;

interface Grant {
  connection: string;
  scopes: string[];
  token_export: boolean;
}

interface AgentView {
  id: string;
  name: string;
  owner: string;
  status: string;
  key_id: string;
  expires_at: string | null;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
  grants: Grant[];
  suspended_reasons?: string[];
  orphan_reasons?: string[];
  end_user?: string;
  organization?: string;
  labels?: Record<string, string>;
}

const grantText = (g: Grant) => html`<li><a href="/ui/connections/${enc(g.connection)}">${g.connection}</a>: ${g.scopes.join(' ')}${g.token_export ? html` <span class="tag">token export</span>` : ''}</li>`;

function filterForm(q: URLSearchParams) {
  const v = (n: string) => q.get(n) ?? '';
  return html`<form method="get" action="${HERE}" class="filters" aria-label="Filter agents">
<div><label for="f-owner">Owner</label><input id="f-owner" name="owner" value="${v('owner')}"></div>
<div><label for="f-status">Status</label><select id="f-status" name="status"><option value="">any</option>${STATUSES.map(
    (s) => html`<option value="${s}"${v('status') === s ? html` selected` : ''}>${s}</option>`,
  )}</select></div>
<div><label for="f-end_user">End user</label><input id="f-end_user" name="end_user" value="${v('end_user')}"></div>
<div><label for="f-organization">Organization</label><input id="f-organization" name="organization" value="${v('organization')}"></div>
<div><label for="f-label">Label (key=value)</label><input id="f-label" name="label" value="${v('label')}"></div>
<div class="check"><input type="checkbox" id="f-orphaned" name="orphaned" value="true"${v('orphaned') === 'true' ? html` checked` : ''}><label for="f-orphaned">Orphans only</label></div>
<div><button type="submit">Filter</button> <a href="${HERE}">Clear</a></div></form>`;
}

function createForm(ctx: PageContext, connections: ConnectionView[]) {
  const options = connections.map((c) => html`<option value="${c.id}">${c.id} · ${c.provider} · ${c.owner}</option>`);
  const rows = Array.from(
    { length: GRANT_ROWS },
    (_, i) => html`<fieldset><legend>Grant ${i + 1}${i ? ' (optional)' : ''}</legend>
<label for="g${i}-connection">Connection</label><select id="g${i}-connection" name="grant${i}_connection"><option value="">none</option>${options}</select>
<label for="g${i}-scopes">Scopes (space-separated)</label><input id="g${i}-scopes" name="grant${i}_scopes">
<div class="check"><input type="checkbox" id="g${i}-export" name="grant${i}_export" value="true"><label for="g${i}-export">Token export (the agent may read the access token)</label></div></fieldset>`,
  );
  return html`<details class="panel"><summary>New agent</summary>
<form method="post" action="${HERE}" class="stack">${csrfField(ctx)}
<label for="a-name">Name</label><input id="a-name" name="name" required maxlength="100">
<label for="a-owner">Owner</label><input id="a-owner" name="owner" required placeholder="alice@example.com">
<label for="a-expires">Expires (UTC, optional)</label><input id="a-expires" name="expires_at" type="datetime-local">
${rows}<button type="submit">Create agent</button></form></details>`;
}

function actions(ctx: PageContext, a: AgentView) {
  const base = `${HERE}/${enc(a.id)}`;
  if (a.status === 'revoked') return html``;
  return html`${a.status === 'suspended' ? action(ctx, `${base}/status`, 'Reactivate') : ''}${action(ctx, `${base}/revoke`, 'Revoke', { danger: true, confirm: `Revoke agent ${a.name} (${a.id})? Its key stops working at once.` })}`;
}

export function agentPages(ui: Ui): void {
  ui.get(HERE, async ({ api, query: q, ctx }) => {
    const orphanedOnly = q.get('orphaned') === 'true';
    const [list, orphans, conns] = await Promise.all([
      api.call<{ agents: AgentView[] }>('GET', apiQuery('/v1/agents', q, FILTERS, orphanedOnly ? { orphaned: 'true' } : {})).then(must),
      api.call<{ agents: AgentView[] }>('GET', apiQuery('/v1/agents', q, ['owner'], { orphaned: 'true' })).then(must),
      api.call<{ connections: ConnectionView[] }>('GET', '/v1/connections?status=active').then(must),
    ]);
    const orphanReasons = new Map(orphans.agents.map((a) => [a.id, a.orphan_reasons ?? []]));
    const rows = list.agents.map((a) => {
      const reasons = orphanReasons.get(a.id);
      return html`<tr${reasons ? html` class="orphan"` : ''}><th scope="row"><a href="${HERE}/${enc(a.id)}">${a.name}</a><div class="muted">${a.id}</div></th>
<td>${a.owner}</td><td>${badge(a.status)}${reasons ? html` <span class="badge badge-orphan">orphan: ${reasons.join(', ') || 'yes'}</span>` : ''}</td>
<td><ul class="plain">${a.grants.map(grantText)}</ul></td><td>${when(a.last_used_at, ctx.now)}</td><td>${tagsOf(a)}</td><td class="actions">${actions(ctx, a)}</td></tr>`;
    });
    return page(
      ctx,
      HERE,
      'Agents',
      html`${filterForm(q)}${createForm(ctx, conns.connections)}
<table><caption>${list.agents.length} agent${list.agents.length === 1 ? '' : 's'}${orphans.agents.length ? html`, ${orphans.agents.length} orphaned (highlighted)` : ''}</caption>
<thead><tr><th scope="col">Agent</th><th scope="col">Owner</th><th scope="col">Status</th><th scope="col">Grants</th><th scope="col">Last use</th><th scope="col">Tags</th><th scope="col">Actions</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="7">No agents match.</td></tr>`}</tbody></table>`,
    );
  });

  ui.post(HERE, async ({ api, form, ctx }) => {
    const grants: Grant[] = [];
    for (let i = 0; i < GRANT_ROWS; i++) {
      const connection = field(form, `grant${i}_connection`);
      if (!connection) continue;
      grants.push({ connection, scopes: words(field(form, `grant${i}_scopes`)), token_export: form.get(`grant${i}_export`) === 'true' });
    }
    const expires = field(form, 'expires_at');
    const body = {
      name: field(form, 'name') ?? '',
      owner: field(form, 'owner') ?? '',
      grants,
      // datetime-local has no offset: the label says UTC.
      ...(expires ? { expires_at: /Z|[+-]\d\d:\d\d$/.test(expires) ? expires : `${expires.length === 16 ? `${expires}:00` : expires}Z` } : {}),
    };
    const a = must(await api.call<AgentView & { api_key: string }>('POST', '/v1/agents', body));
    return page(
      ctx,
      HERE,
      `Agent ${a.name} created`,
      html`${notice(html`Copy the API key now: it is shown this once and never again (only its hash is stored).`)}
<p><label for="api-key">API key of ${a.name}</label><br><input id="api-key" class="wide mono" readonly value="${a.api_key}"> <button type="button" data-copy="api-key" hidden>Copy</button></p>
<p>Agent <a href="${HERE}/${enc(a.id)}">${a.id}</a>, owner ${a.owner}.</p><ul>${a.grants.map(grantText)}</ul><p><a href="${HERE}">Back to agents</a></p>`,
    );
  });

  ui.get(`${HERE}/:id`, async ({ api, params, ctx }) => {
    const a = must(await api.call<AgentView>('GET', `/v1/agents/${enc(params.id!)}`));
    const base = `${HERE}/${enc(a.id)}`;
    const row = (label: string, value: unknown) => html`<tr><th scope="row">${label}</th><td>${value as string}</td></tr>`;
    const narrow = a.grants.map(
      (g, i) => html`<fieldset><legend>Grant on <a href="/ui/connections/${enc(g.connection)}">${g.connection}</a></legend>
<input type="hidden" name="grant" value="${g.connection}">
${g.scopes.map((s, j) => html`<div class="check"><input type="checkbox" id="n${i}-${j}" name="scope_${g.connection}" value="${s}" checked><label for="n${i}-${j}">${s}</label></div>`)}
${g.token_export ? html`<div class="check"><input type="checkbox" id="n${i}-export" name="export_${g.connection}" value="true" checked><label for="n${i}-export">Token export</label></div>` : ''}</fieldset>`,
    );
    return page(
      ctx,
      HERE,
      `Agent ${a.name}`,
      html`<table class="kv"><caption>Details</caption><tbody>${row('Id', a.id)}${row('Status', badge(a.status))}${row('Owner', a.owner)}${row('Key id', a.key_id)}
${row('Created', when(a.created_at, ctx.now))}${row('Last use', when(a.last_used_at, ctx.now))}${row('Expires', a.expires_at ? when(a.expires_at, ctx.now) : 'never')}
${a.revoked_at ? row('Revoked', when(a.revoked_at, ctx.now)) : ''}${a.suspended_reasons ? row('Suspended because', a.suspended_reasons.join(', ')) : ''}${row('Tags', tagsOf(a))}</tbody></table>
<p class="actions">${actions(ctx, a)} <a href="/ui/audit${query({ agent: a.id })}">Audit entries</a></p>
${a.status !== 'revoked' && a.grants.length ? html`<h2>Narrow grants</h2><p>Uncheck what the agent no longer needs; a grant with no scope left is removed. Widening needs a new agent.</p>
<form method="post" action="${base}/grants" class="stack">${csrfField(ctx)}${narrow}<button type="submit">Save narrower grants</button></form>` : ''}`,
    );
  });

  ui.post(`${HERE}/:id/grants`, async ({ api, params, form }) => {
    const grants = form.getAll('grant').flatMap((connection) => {
      const scopes = form.getAll(`scope_${connection}`);
      if (!scopes.length) return [];
      return [{ connection, scopes, ...(form.get(`export_${connection}`) === 'true' ? {} : { token_export: false }) }];
    });
    must(await api.call('PATCH', `/v1/agents/${enc(params.id!)}`, { grants }));
    return { redirect: `${HERE}/${enc(params.id!)}` };
  });

  ui.post(`${HERE}/:id/status`, async ({ api, params }) => {
    must(await api.call('PATCH', `/v1/agents/${enc(params.id!)}`, { status: 'active' }));
    return { redirect: `${HERE}/${enc(params.id!)}` };
  });

  ui.post(`${HERE}/:id/revoke`, async ({ api, params, form, ctx }) => {
    const href = `${HERE}/${enc(params.id!)}/revoke`;
    if (form.get('confirm') !== 'yes') return confirmPage(ctx, HERE, href, `Revoke agent ${params.id}? Its key stops working at once.`, 'Revoke');
    const a = must(await api.call<AgentView>('DELETE', `/v1/agents/${enc(params.id!)}`));
    return page(ctx, HERE, `Agent ${a.name} revoked`, html`${notice(html`Agent ${a.id} is ${badge(a.status)}; its key no longer works.`)}<p><a href="${HERE}">Back to agents</a></p>`);
  });
}
