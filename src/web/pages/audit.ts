import { html, query } from '../html.ts';
import { field, type Ui } from '../kit.ts';
import { must } from '../api.ts';
import { page, problemBox } from '../layout.ts';
import type { AuditEntryView } from '../../http/routes/audit.ts';

const HERE = '/ui/audit';
const PAGE_SIZE = 50;

interface Verification {
  ok: boolean;
  entries: number;
  first_bad?: number;
  reason?: string;
  keyed_from?: number;
}

/** The API's `subject` of an entry about a connection or an agent (`connection:…`, `agent:…`). */
function subjectOf(q: URLSearchParams): { subject?: string; problem?: string } {
  const connection = field(q, 'connection');
  const agent = field(q, 'agent');
  if (connection && agent) return { problem: 'give a connection or an agent, not both' };
  return { subject: connection ? `connection:${connection}` : agent ? `agent:${agent}` : undefined };
}

function filterForm(q: URLSearchParams) {
  const v = (n: string) => q.get(n) ?? '';
  return html`<form method="get" action="${HERE}" class="filters" aria-label="Filter audit entries">
<div><label for="f-type">Action</label><input id="f-type" name="type" value="${v('type')}" placeholder="agent.created"></div>
<div><label for="f-actor">Actor</label><input id="f-actor" name="actor" value="${v('actor')}" placeholder="admin"></div>
<div><label for="f-connection">Connection</label><input id="f-connection" name="connection" value="${v('connection')}"></div>
<div><label for="f-agent">Agent</label><input id="f-agent" name="agent" value="${v('agent')}"></div>
<div><label for="f-since">Since (RFC 3339)</label><input id="f-since" name="since" value="${v('since')}" placeholder="2025-06-01T00:00:00Z"></div>
<div><button type="submit">Filter</button> <a href="${HERE}">Clear</a></div></form>`;
}

/** A subject as a link to its page, when it is a connection or an agent. */
function subjectLink(subject: string | null) {
  if (!subject) return html`<span class="muted">—</span>`;
  const m = /^(connection|agent):(.+)$/.exec(subject);
  return m ? html`<a href="/ui/${m[1]}s/${encodeURIComponent(m[2]!)}">${subject}</a>` : html`${subject}`;
}

export function auditPages(ui: Ui): void {
  ui.get(HERE, async ({ api, query: q, ctx }) => {
    const { subject, problem } = subjectOf(q);
    const verify = must(await api.call<Verification>('GET', '/v1/audit/verify'));
    const status = verify.ok
      ? html`<div class="notice ok" role="status">Chain verified: <strong>${verify.entries}</strong> entries intact${verify.keyed_from ? `, keyed from #${verify.keyed_from}` : ''}.</div>`
      : html`<div class="problem" role="alert"><h2>Chain does not verify</h2><p>First bad entry: #${verify.first_bad ?? '?'} (${verify.reason ?? 'unknown'}). See the audit documentation, "Verifying".</p></div>`;
    if (problem) return { status: 400, page: page(ctx, HERE, 'Audit', html`${status}${filterForm(q)}${problemBox({ status: 400, code: 'invalid_request', title: 'Invalid filter', detail: problem })}`) };
    const params = new URLSearchParams({ order: 'desc', limit: String(PAGE_SIZE) });
    for (const n of ['type', 'actor', 'since', 'before']) if (field(q, n)) params.set(n, field(q, n)!);
    if (subject) params.set('subject', subject);
    const list = must(await api.call<{ entries: AuditEntryView[]; next_before?: number }>('GET', `/v1/audit?${params}`));
    const rows = list.entries.map(
      (e) => html`<tr><td>${e.seq}</td><td><time datetime="${e.at}">${e.at.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time></td><th scope="row">${e.type}</th><td>${e.actor}</td><td>${subjectLink(e.subject)}</td>
<td><details><summary>data</summary><pre>${JSON.stringify(e.data, null, 2)}</pre></details></td></tr>`,
    );
    const keep = Object.fromEntries(['type', 'actor', 'connection', 'agent', 'since'].map((n) => [n, field(q, n)]));
    const older = list.next_before ? html`<a href="${HERE}${query({ ...keep, before: list.next_before })}" rel="next">Older entries</a>` : '';
    const newest = q.get('before') ? html`<a href="${HERE}${query(keep)}">Newest</a>` : '';
    return page(
      ctx,
      HERE,
      'Audit',
      html`${status}${filterForm(q)}
<table><caption>Newest first${q.get('before') ? `, before #${q.get('before')}` : ''}</caption>
<thead><tr><th scope="col">#</th><th scope="col">Time (UTC)</th><th scope="col">Action</th><th scope="col">Actor</th><th scope="col">Subject</th><th scope="col">Data</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="6">No entries match.</td></tr>`}</tbody></table>
<nav class="pager" aria-label="Audit pages">${newest} ${older}</nav>`,
    );
  });
}
