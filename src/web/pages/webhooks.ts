import { html } from '../html.ts';
import { enc, field, words, type Ui } from '../kit.ts';
import { must } from '../api.ts';
import { action, badge, confirmPage, csrfField, notice, page, when } from '../layout.ts';
import type { DeliveryView, WebhookView } from '../../http/routes/webhooks.ts';

const HERE = '/ui/webhooks';

export function webhookPages(ui: Ui): void {
  ui.get(HERE, async ({ api, ctx }) => {
    const list = must(await api.call<{ webhooks: WebhookView[] }>('GET', '/v1/webhooks'));
    const rows = list.webhooks.map(
      (w) => html`<tr><th scope="row"><a href="${HERE}/${enc(w.id)}">${w.url}</a><div class="muted">${w.id}</div></th><td>${w.events.join(' ')}</td><td>${badge(w.status)}</td>
<td>${when(w.created_at, ctx.now)}</td><td class="actions">${action(ctx, `${HERE}/${enc(w.id)}/delete`, 'Delete', { danger: true, confirm: `Delete the webhook to ${w.url}?` })}</td></tr>`,
    );
    return page(
      ctx,
      HERE,
      'Webhooks',
      html`<details class="panel"><summary>New webhook</summary><form method="post" action="${HERE}" class="stack">${csrfField(ctx)}
<label for="w-url">URL</label><input id="w-url" name="url" type="url" required placeholder="https://hooks.example.com/warrant">
<label for="w-events">Events (space-separated: a type, a prefix like connection.*, or *)</label><input id="w-events" name="events" required value="*">
<button type="submit">Create webhook</button></form></details>
<table><caption>${list.webhooks.length} webhook${list.webhooks.length === 1 ? '' : 's'}</caption>
<thead><tr><th scope="col">URL</th><th scope="col">Events</th><th scope="col">Status</th><th scope="col">Created</th><th scope="col">Actions</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="5">No webhooks.</td></tr>`}</tbody></table>`,
    );
  });

  ui.post(HERE, async ({ api, form, ctx }) => {
    const w = must(await api.call<WebhookView & { secret: string }>('POST', '/v1/webhooks', { url: field(form, 'url') ?? '', events: words(field(form, 'events')) }));
    return page(
      ctx,
      HERE,
      'Webhook created',
      html`${notice('Copy the signing secret now: it is shown this once and never again.')}
<p><label for="secret">Signing secret of ${w.url}</label><br><input id="secret" class="wide mono" readonly value="${w.secret}"> <button type="button" data-copy="secret" hidden>Copy</button></p>
<p><a href="${HERE}/${enc(w.id)}">Deliveries of ${w.id}</a> · <a href="${HERE}">Back to webhooks</a></p>`,
    );
  });

  ui.get(`${HERE}/:id`, async ({ api, params, query: q, ctx }) => {
    const id = enc(params.id!);
    const status = field(q, 'status');
    const [w, d] = await Promise.all([
      api.call<WebhookView>('GET', `/v1/webhooks/${id}`).then(must),
      api.call<{ deliveries: DeliveryView[] }>('GET', `/v1/webhooks/${id}/deliveries${status ? `?status=${enc(status)}` : ''}`).then(must),
    ]);
    const rows = d.deliveries.map(
      (x) => html`<tr><th scope="row">${x.event_type ?? x.event_id}<div class="muted">${x.id}</div></th><td>${badge(x.status)}</td><td>${x.attempts}</td>
<td>${x.last_status ?? '—'}${x.last_error ? html`<div class="muted">${x.last_error}</div>` : ''}</td><td>${when(x.created_at, ctx.now)}</td>
<td>${x.status === 'pending' ? when(x.next_attempt_at, ctx.now) : when(x.delivered_at, ctx.now)}</td>
<td class="actions">${x.status === 'pending' ? '' : action(ctx, `${HERE}/${id}/deliveries/${enc(x.id)}/redeliver`, 'Redeliver')}</td></tr>`,
    );
    return page(
      ctx,
      HERE,
      `Webhook ${w.url}`,
      html`<p>${badge(w.status)} Events: ${w.events.join(' ')} · <code>${w.id}</code></p>
<form method="get" action="${HERE}/${id}" class="filters" aria-label="Filter deliveries"><div><label for="f-status">Status</label><select id="f-status" name="status"><option value="">any</option>${['pending', 'delivered', 'failed'].map(
        (s) => html`<option value="${s}"${status === s ? html` selected` : ''}>${s}</option>`,
      )}</select></div><div><button type="submit">Filter</button></div></form>
<table><caption>Deliveries, newest first</caption>
<thead><tr><th scope="col">Event</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Last answer</th><th scope="col">Created</th><th scope="col">Next attempt / delivered</th><th scope="col">Actions</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="7">No deliveries.</td></tr>`}</tbody></table>`,
    );
  });

  ui.post(`${HERE}/:id/deliveries/:delivery/redeliver`, async ({ api, params }) => {
    must(await api.call('POST', `/v1/webhooks/${enc(params.id!)}/deliveries/${enc(params.delivery!)}/redeliver`));
    return { redirect: `${HERE}/${enc(params.id!)}` };
  });

  ui.post(`${HERE}/:id/delete`, async ({ api, params, form, ctx }) => {
    const href = `${HERE}/${enc(params.id!)}/delete`;
    if (form.get('confirm') !== 'yes') return confirmPage(ctx, HERE, href, `Delete webhook ${params.id}? No further deliveries are made to it.`, 'Delete');
    must(await api.call('DELETE', `/v1/webhooks/${enc(params.id!)}`));
    return { redirect: HERE };
  });
}
