import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { EVENT_PATTERN, urlProblem, type Delivery, type Webhook, type Webhooks } from '../../events/index.ts';
import type { RouteContext } from '../app.ts';
import { adminActorOf } from '../auth.ts';
import { iso } from '../../util/time.ts';

const id = z.object({ id: z.string().min(1).max(64) });
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));

const createBody = z.strictObject({
  url: z.string().max(2048).superRefine((url, ctx) => {
    const problem = urlProblem(url);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
  events: z
    .array(z.string().max(200).regex(EVENT_PATTERN, 'must be an event type, a prefix like `connection.*`, or `*`'))
    .min(1)
    .max(100),
});

// The response schemas are the guard against leaking the secret: only `created` has it.
const webhookView = z.object({
  id: z.string(),
  url: z.string(),
  events: z.array(z.string()),
  status: z.enum(['active', 'disabled']),
  created_at: z.string(),
});

const created = webhookView.extend({
  /** Shown once: the store keeps it sealed. */
  secret: z.string(),
});

const deliveryView = z.object({
  /** The `webhook-id` header of every attempt. */
  id: z.string(),
  event_id: z.string(),
  event_type: z.string().nullable(),
  status: z.enum(['pending', 'delivered', 'failed']),
  attempts: z.number(),
  last_status: z.number().nullable(),
  last_error: z.string().nullable(),
  next_attempt_at: z.string().nullable(),
  created_at: z.string(),
  delivered_at: z.string().nullable(),
});

/** The wire shapes, for the API's own clients (the CLI, the dashboard). */
export type WebhookView = z.infer<typeof webhookView>;
export type DeliveryView = z.infer<typeof deliveryView>;

const viewOf = (w: Webhook) => ({ ...w, created_at: iso(w.created_at) });
const deliveryOf = (d: Delivery) => ({
  ...d,
  next_attempt_at: isoOrNull(d.next_attempt_at),
  created_at: iso(d.created_at),
  delivered_at: isoOrNull(d.delivered_at),
});

export function webhookRoutes(webhooks: Webhooks) {
  return async (app: FastifyInstance, ctx: RouteContext) => {
    const r = app.withTypeProvider<ZodTypeProvider>();
    r.addHook('onRequest', ctx.requireAdmin);
    const tags = ['webhooks'];
    const security = [{ admin: [] }];

    r.post(
      '/v1/webhooks',
      {
        schema: {
          tags,
          security,
          summary: 'Subscribe a webhook',
          description:
            'Events (exact types, a prefix like `connection.*`, or `*`) are posted to `url`, signed per the Standard Webhooks spec (`webhook-id`, `webhook-timestamp`, ' +
            '`webhook-signature`) with the `secret` in this answer, shown this once. Deliveries go through an outbox with retries. The URL must not point inside private networks unless allowed.',
          body: createBody.meta({ examples: [{ url: 'https://hooks.example.com/warrant', events: ['connection.*', 'agent.orphaned'] }] }),
          response: {
            201: created.meta({
              examples: [{ id: 'whk_9d2m', url: 'https://hooks.example.com/warrant', events: ['connection.*', 'agent.orphaned'], status: 'active', created_at: '2026-01-01T00:00:00.000Z', secret: 'whsec_…' }],
            }),
          },
        },
      },
      async (req, reply) => {
        const hook = await webhooks.create(req.body.url, req.body.events, adminActorOf(req));
        return reply.code(201).header('cache-control', 'no-store').send({ ...viewOf(hook), secret: hook.secret });
      },
    );

    r.get(
      '/v1/webhooks',
      { schema: { tags, security, summary: 'List webhooks', description: 'Every subscription with its events and status. Never a secret.', response: { 200: z.object({ webhooks: z.array(webhookView) }) } } },
      async () => ({
        webhooks: (await webhooks.list()).map(viewOf),
      }),
    );

    r.get(
      '/v1/webhooks/:id',
      { schema: { tags, security, summary: 'Read a webhook', description: 'One subscription. Never its secret.', problems: ['not_found'], params: id, response: { 200: webhookView } } },
      async (req) => viewOf(await webhooks.get(req.params.id)),
    );

    r.delete(
      '/v1/webhooks/:id',
      {
        schema: {
          tags,
          security,
          summary: 'Delete a webhook',
          description: 'Stops its deliveries; pending ones are dropped.',
          problems: ['not_found'],
          params: id,
          response: { 200: z.object({ id: z.string(), deleted: z.literal(true) }) },
        },
      },
      async (req) => {
        await webhooks.delete(req.params.id, adminActorOf(req));
        return { id: req.params.id, deleted: true as const };
      },
    );

    r.get(
      '/v1/webhooks/:id/deliveries',
      {
        schema: {
          tags,
          security,
          summary: "List a webhook's deliveries",
          description: 'Newest first: status (`pending`, `delivered`, `failed`), attempts, the last HTTP status or error, the next attempt.',
          problems: ['not_found'],
          params: id,
          querystring: z.object({
            status: z.enum(['pending', 'delivered', 'failed']).optional(),
            limit: z.coerce.number().int().min(1).max(500).default(50),
          }),
          response: { 200: z.object({ deliveries: z.array(deliveryView) }) },
        },
      },
      async (req) => ({ deliveries: (await webhooks.deliveries(req.params.id, req.query)).map(deliveryOf) }),
    );

    // Operators' retry after fixing a receiver (docs/webhooks.md, "Redelivery"): the outbox sends it again.
    r.post(
      '/v1/webhooks/:id/deliveries/:delivery/redeliver',
      {
        schema: {
          tags,
          security,
          summary: 'Queue a delivery again',
          description:
            'A delivered or failed delivery goes back to `pending`, due now, with a fresh retry budget; the worker sends it with the same ' +
            '`webhook-id`. A pending delivery answers `409 conflict`; an unknown webhook or delivery `404 not_found`. Audited as `webhook.redelivered`.',
          problems: ['not_found', 'conflict'],
          params: id.extend({ delivery: z.string().min(1).max(128) }),
          response: { 202: deliveryView },
        },
      },
      async (req, reply) => reply.code(202).send(deliveryOf(await webhooks.redeliver(req.params.id, req.params.delivery, adminActorOf(req)))),
    );
  };
}
