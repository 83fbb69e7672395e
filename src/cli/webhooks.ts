import { Command, Option } from 'commander';
import { AdminApiError, adminApiOf, callAdminApi, runAdminCommand, withAdminApi } from './admin-api.ts';
import { fields, printJson, printLines, processIo, relative, statusColour, table, type CliIo } from './table.ts';
import type { DeliveryView, WebhookView } from '../http/routes/webhooks.ts';

// `warrant webhooks create | list | delete | deliveries | redeliver` through the admin API.

type ApiOpts = { url: string; token?: string; timeout?: number; json?: boolean };

const path = (id: string) => `/v1/webhooks/${encodeURIComponent(id)}`;

function deliveryRows(ds: DeliveryView[], io: CliIo): string[] {
  const now = Date.now();
  return table(
    [{ header: 'DELIVERY', keep: true }, 'EVENT', { header: 'STATUS', colour: statusColour }, 'ATTEMPTS', 'LAST', 'NEXT ATTEMPT', 'CREATED'],
    ds.map((d) => [
      d.id,
      d.event_type ?? d.event_id,
      d.status,
      String(d.attempts),
      d.last_error ?? (d.last_status === null ? '-' : `HTTP ${d.last_status}`),
      d.next_attempt_at ? relative(d.next_attempt_at, now) : '-',
      relative(d.created_at, now),
    ]),
    io,
  );
}

export function webhooksCommand(io: CliIo = processIo()): Command {
  const webhooks = new Command('webhooks').description('Signed webhooks (Standard Webhooks) for alerts and lifecycle events, and their deliveries');
  const run = (body: () => Promise<void>) => runAdminCommand(body, io);

  // The target is an argument: --url names the Warrant to talk to, as on every admin command.
  withAdminApi(webhooks.command('create').argument('<target>', 'the https URL that receives the events').description('Register a webhook (role admin); its signing secret is printed once'))
    .requiredOption('--events <list>', 'comma-separated event types, prefixes like connection.* or *')
    .option('--json', 'print the API’s JSON (the secret included)')
    .action((target: string, opts: ApiOpts & { events: string }) =>
      run(async () => {
        const events = opts.events.split(',').map((e) => e.trim()).filter(Boolean);
        if (!events.length) throw new AdminApiError('--events: name at least one event type');
        const w = await callAdminApi<WebhookView & { secret: string }>(adminApiOf(opts), 'POST', '/v1/webhooks', { url: target, events });
        if (opts.json) return printJson(io, w);
        printLines(io, [
          ...fields([
            ['webhook', w.id],
            ['url', w.url],
            ['events', w.events.join(', ')],
          ]),
          '',
          `signing secret: ${w.secret}`,
          'Store it now: it will not be shown again. Verify each delivery’s webhook-signature with it.',
        ]);
      }),
    );

  withAdminApi(webhooks.command('list').description('List webhooks'))
    .option('--json', 'print the API’s JSON')
    .action((opts: ApiOpts) =>
      run(async () => {
        const res = await callAdminApi<{ webhooks: WebhookView[] }>(adminApiOf(opts), 'GET', '/v1/webhooks');
        if (opts.json) return printJson(io, res);
        if (!res.webhooks.length) return printLines(io, ['no webhooks']);
        printLines(
          io,
          table(
            [{ header: 'ID', keep: true }, 'URL', 'EVENTS', { header: 'STATUS', colour: statusColour }, 'CREATED'],
            res.webhooks.map((w) => [w.id, w.url, w.events.join(','), w.status, w.created_at]),
            io,
          ),
        );
      }),
    );

  withAdminApi(webhooks.command('delete').argument('<id>', 'the webhook id').description('Delete a webhook, its secret and its pending deliveries (role admin)'))
    .option('--json', 'print the API’s JSON')
    .action((id: string, opts: ApiOpts) =>
      run(async () => {
        const r = await callAdminApi<{ id: string; deleted: true }>(adminApiOf(opts), 'DELETE', path(id));
        if (opts.json) return printJson(io, r);
        printLines(io, [`deleted: ${r.id}`]);
      }),
    );

  withAdminApi(webhooks.command('deliveries').argument('<id>', 'the webhook id').description("A webhook's most recent deliveries, newest first"))
    .addOption(new Option('--status <status>', 'only in this status').choices(['pending', 'delivered', 'failed']))
    .addOption(new Option('--limit <n>', 'how many (1 to 500)').default('50'))
    .option('--json', 'print the API’s JSON')
    .action((id: string, opts: ApiOpts & { status?: string; limit: string }) =>
      run(async () => {
        const q = new URLSearchParams({ limit: opts.limit, ...(opts.status ? { status: opts.status } : {}) });
        const res = await callAdminApi<{ deliveries: DeliveryView[] }>(adminApiOf(opts), 'GET', `${path(id)}/deliveries?${q}`);
        if (opts.json) return printJson(io, res);
        if (!res.deliveries.length) return printLines(io, ['no deliveries']);
        printLines(io, deliveryRows(res.deliveries, io));
      }),
    );

  withAdminApi(
    webhooks
      .command('redeliver')
      .argument('<id>', 'the webhook id')
      .argument('<delivery>', 'the delivery id (its webhook-id header; see `warrant webhooks deliveries`)')
      .description('Send a delivered or failed delivery again, now, with a fresh retry budget and the same webhook-id (role operate)'),
  )
    .option('--json', 'print the API’s JSON')
    .action((id: string, delivery: string, opts: ApiOpts) =>
      run(async () => {
        const d = await callAdminApi<DeliveryView>(adminApiOf(opts), 'POST', `${path(id)}/deliveries/${encodeURIComponent(delivery)}/redeliver`);
        if (opts.json) return printJson(io, d);
        printLines(io, [`queued again: ${d.id} (${d.event_type ?? d.event_id}); follow it with: warrant webhooks deliveries ${id}`]);
      }),
    );

  return webhooks;
}
