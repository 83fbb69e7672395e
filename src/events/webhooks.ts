import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import type { Logger } from 'pino';
import { invalidRequest, notFound, WarrantError } from '../errors/index.ts';
import type { AuditEventRow, Store, WebhookRow } from '../store/index.ts';
import type { AuditLog } from './audit.ts';
import type { EventBus } from './bus.ts';
import { deliverable } from './outbox.ts';
import {
  describe,
  generateSecret,
  payloadOf,
  retryDelayMs,
  sign,
  urlProblem,
  EVENT_PATTERN,
  type RetrySettings,
} from './webhook-messages.ts';
import { createWebhookTarget, type WebhookTargetOptions } from './webhook-target.ts';

// Signed webhooks (Standard Webhooks, https://www.standardwebhooks.com/). Operators' alerts are
// audit entries first, and the transaction that appends an entry also queues one
// `webhook_deliveries` row per active webhook whose `events` match it (outbox.ts), whose id is
// derived from (webhook, event). This module only sends: a worker claims due rows (SKIP LOCKED on
// PostgreSQL, so instances share the work), POSTs them, and retries with backoff; a publication on
// the bus only wakes it. Delivery is at least once: receivers dedupe on `webhook-id`, which
// retries, restarts and other instances keep.

/** 5 s, 20 s, 80 s, ~5 min, ~21 min, 1 h, 1 h (±20% jitter): about 2.5 h before giving up. */
export const defaultRetry: RetrySettings = { baseMs: 5_000, factor: 4, capMs: 3_600_000, maxAttempts: 8 };

export interface WebhooksOptions {
  store: Store;
  bus: EventBus;
  logger: Logger;
  /** When given, creating and deleting a webhook is audited (`webhook.created`, `webhook.deleted`). */
  audit?: AuditLog;
  clock?: { now(): number };
  /** Whole-request deadline of one delivery attempt (connect, headers and body). */
  fetchTimeoutMs?: number;
  /** How often the worker looks for due deliveries; new ones also wake it at once. */
  pollIntervalMs?: number;
  /** Deliveries claimed per look. */
  batchSize?: number;
  /** Requests in flight at once, per instance. */
  concurrency?: number;
  /** How long a claimed delivery is hidden from other workers; past it, a crashed attempt is retried. */
  leaseMs?: number;
  retry?: Partial<RetrySettings>;
  random?: () => number;
  /**
   * Members added to an event's `data` as it is sent, never stored: e.g. a fresh single-use
   * re-connect link for `connection.reauth_required`, which the audit entry must not hold.
   */
  extend?: (event: AuditEventRow) => Promise<Record<string, unknown> | undefined>;
  /**
   * Networks webhooks may reach although they are not public (WARRANT_WEBHOOK_ALLOWED_NETWORKS);
   * none by default: private, loopback and link-local targets are refused (webhook-target.ts).
   */
  allowedNetworks?: WebhookTargetOptions['allowedNetworks'];
  /** Name resolution for the target check (default node:dns). */
  lookup?: WebhookTargetOptions['lookup'];
}

export interface Webhook {
  id: string;
  url: string;
  events: string[];
  status: WebhookRow['status'];
  created_at: number;
}

export interface Delivery {
  id: string;
  event_id: string;
  event_type: string | null;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_attempt_at: number | null;
  last_status: number | null;
  last_error: string | null;
  created_at: number;
  delivered_at: number | null;
}

const originOf = (url: string) => new URL(url).origin;
const parseEvents = (json: string) => JSON.parse(json) as string[];
const toWebhook = (row: WebhookRow): Webhook => ({ ...row, events: parseEvents(row.events) });

interface Outcome {
  ok: boolean;
  status?: number;
  error?: string;
  retryAfterMs?: number;
  aborted?: boolean;
}

export function createWebhooks(opts: WebhooksOptions) {
  const { store, bus, logger } = opts;
  const db = store.db;
  const now = () => (opts.clock ?? Date).now();
  const random = opts.random ?? Math.random;
  const retry: RetrySettings = { ...defaultRetry, ...opts.retry };
  const fetchTimeoutMs = opts.fetchTimeoutMs ?? 10_000;
  const pollIntervalMs = opts.pollIntervalMs ?? 1_000;
  const batchSize = opts.batchSize ?? 50;
  const concurrency = opts.concurrency ?? 8;
  const leaseMs = opts.leaseMs ?? fetchTimeoutMs + 30_000;
  const secretKey = (id: string) => ({ scope: 'webhook', ref: id, field: 'secret' });
  const target = createWebhookTarget({ allowedNetworks: opts.allowedNetworks, lookup: opts.lookup });

  // Deliveries are queued by the event's own transaction; a committed event only means "look now".
  let unsubscribe: (() => void) | undefined;
  const subscribe = () => {
    unsubscribe ??= bus.on('*', (e) => {
      if (deliverable(e.type)) wake();
    });
  };

  // ---- delivery worker ----

  let stopped = true;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let abort = new AbortController();
  let dispatcher: Agent | undefined;

  type DeliveryRow = Awaited<ReturnType<typeof claim>>[number];

  async function claim(at: number) {
    // One statement: pick due ids and push them a lease ahead, as connections.claimDue does.
    return db
      .updateTable('webhook_deliveries')
      .set({ next_attempt_at: at + leaseMs })
      .where('id', 'in', (eb) => {
        let pick = eb
          .selectFrom('webhook_deliveries')
          .select('id')
          .where('status', '=', 'pending')
          .where('next_attempt_at', '<=', at)
          .orderBy('next_attempt_at')
          .limit(batchSize);
        if (store.dialect === 'postgres') pick = pick.forUpdate().skipLocked();
        return pick;
      })
      .returningAll()
      .execute();
  }

  async function send(url: string, headers: Record<string, string>, body: string): Promise<Outcome> {
    const deadline = AbortSignal.timeout(fetchTimeoutMs);
    const signal = AbortSignal.any([abort.signal, deadline]);
    // The connector re-checks the address at connect time (DNS rebinding).
    dispatcher ??= new Agent({ connect: target.connector({ timeout: fetchTimeoutMs }), headersTimeout: fetchTimeoutMs, bodyTimeout: fetchTimeoutMs });
    try {
      // undici's request() never follows redirects: a 3xx is a failed attempt like any non-2xx.
      const res = await request(url, { method: 'POST', headers, body, signal, dispatcher });
      await res.body.dump({ limit: 64 * 1024, signal }).catch(() => undefined);
      const retryAfter = Number(res.headers['retry-after']);
      return {
        ok: res.statusCode >= 200 && res.statusCode < 300,
        status: res.statusCode,
        error: `HTTP ${res.statusCode}`,
        ...((res.statusCode === 429 || res.statusCode === 503) && retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
      };
    } catch (err) {
      if (abort.signal.aborted) return { ok: false, aborted: true };
      return { ok: false, error: deadline.aborted ? `timeout after ${fetchTimeoutMs} ms` : describe(err) };
    }
  }

  /** Writes the attempt's result, unless another worker took the row over (lease expired). */
  async function settle(row: DeliveryRow, patch: Partial<Pick<Delivery, 'status' | 'attempts' | 'next_attempt_at' | 'last_status' | 'last_error' | 'delivered_at'>>) {
    await db
      .updateTable('webhook_deliveries')
      .set(patch)
      .where('id', '=', row.id)
      .where('status', '=', 'pending')
      .where('attempts', '=', row.attempts)
      .execute();
  }

  async function attempt(row: DeliveryRow): Promise<void> {
    const hook = await db.selectFrom('webhooks').selectAll().where('id', '=', row.webhook_id).executeTakeFirst();
    const event = await db.selectFrom('audit_events').selectAll().where('id', '=', row.event_id).executeTakeFirst();
    const secret = hook && (await store.vault.get(secretKey(hook.id)));
    const missing = !hook ? 'webhook deleted' : hook.status !== 'active' ? 'webhook disabled' : !event ? 'event not found' : !secret ? 'secret missing' : undefined;
    if (missing || !hook || !event || !secret) {
      await settle(row, { status: 'failed', next_attempt_at: null, last_error: missing ?? 'unknown' });
      return;
    }
    const body = await payloadFor(event);
    const timestamp = Math.floor(now() / 1000);
    const outcome = await send(hook.url, {
      'content-type': 'application/json',
      'user-agent': 'Warrant-Webhooks/1',
      'webhook-id': row.id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': sign(secret, row.id, timestamp, body),
    }, body);
    const log = { webhook: hook.id, delivery: row.id, event: event.id, type: event.type, origin: originOf(hook.url) };
    if (outcome.aborted) {
      // Stopping: hand the row back without counting the attempt (the receiver may still have it; same webhook-id).
      await db.updateTable('webhook_deliveries').set({ next_attempt_at: now() }).where('id', '=', row.id).where('attempts', '=', row.attempts).execute();
      return;
    }
    const attempts = row.attempts + 1;
    const at = now();
    if (outcome.ok) {
      await settle(row, { status: 'delivered', attempts, next_attempt_at: null, last_status: outcome.status ?? null, last_error: null, delivered_at: at });
      logger.debug({ ...log, attempts, status: outcome.status }, 'webhook delivered');
    } else if (attempts >= retry.maxAttempts) {
      await settle(row, { status: 'failed', attempts, next_attempt_at: null, last_status: outcome.status ?? null, last_error: outcome.error ?? null });
      logger.error({ ...log, attempts, status: outcome.status, error: outcome.error }, 'webhook delivery failed; giving up');
    } else {
      const delay = retryDelayMs(attempts, retry, outcome.retryAfterMs, random);
      await settle(row, { attempts, next_attempt_at: at + delay, last_status: outcome.status ?? null, last_error: outcome.error ?? null });
      logger.warn({ ...log, attempts, status: outcome.status, error: outcome.error, retry_in_ms: delay }, 'webhook delivery failed; will retry');
    }
  }

  async function payloadFor(event: AuditEventRow): Promise<string> {
    const body = payloadOf(event);
    const extra = opts.extend ? await opts.extend(event).catch(() => undefined) : undefined;
    if (!extra) return body;
    const parsed = JSON.parse(body) as { data: Record<string, unknown> };
    return JSON.stringify({ ...parsed, data: { ...parsed.data, ...extra } });
  }

  async function tick(): Promise<number> {
    const rows = await claim(now());
    const queue = [...rows];
    const work = async () => {
      for (let row = queue.shift(); row; row = queue.shift()) {
        await attempt(row).catch((err) => logger.error({ err, delivery: row!.id }, 'webhook attempt failed'));
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, rows.length) }, work));
    return rows.length;
  }

  function loop(): void {
    timer = undefined;
    if (stopped) return;
    running = tick()
      .then((n) => {
        if (n === batchSize) again = true; // a full batch: more may be due
      })
      .catch((err) => logger.error({ err }, 'webhook worker tick failed'))
      .finally(() => {
        running = undefined;
        if (stopped) return;
        const delay = again ? 0 : pollIntervalMs * (0.9 + random() * 0.2);
        again = false;
        timer = setTimeout(loop, delay);
      });
  }

  /** Look now: a new delivery should not wait for the next poll. */
  function wake(): void {
    if (stopped) return;
    if (running) again = true;
    else {
      clearTimeout(timer);
      timer = setTimeout(loop, 0);
    }
  }

  const deliveryQuery = (webhookId: string) =>
    db
      .selectFrom('webhook_deliveries as d')
      .leftJoin('audit_events as e', 'e.id', 'd.event_id')
      .select(['d.id', 'd.event_id', 'e.type as event_type', 'd.status', 'd.attempts', 'd.next_attempt_at', 'd.last_status', 'd.last_error', 'd.created_at', 'd.delivered_at'])
      .where('d.webhook_id', '=', webhookId);

  async function get(id: string): Promise<Webhook> {
    const row = await db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound(`webhook ${id}`);
    return toWebhook(row);
  }

  return {
    /** Registers a webhook. The secret is returned here only; the store keeps it sealed. */
    async create(url: string, events: string[], actor = 'admin'): Promise<Webhook & { secret: string }> {
      const bad = urlProblem(url);
      if (bad) throw invalidRequest('url', bad);
      const refused = await target.problem(url);
      if (refused) throw invalidRequest('url', refused);
      if (!Array.isArray(events) || !events.length) throw invalidRequest('events', 'must list at least one event type');
      const wrong = events.findIndex((e) => typeof e !== 'string' || !EVENT_PATTERN.test(e));
      if (wrong >= 0) throw invalidRequest(`events[${wrong}]`, 'must be an event type, a prefix like `connection.*`, or `*`');
      const row: WebhookRow = {
        id: `whk_${randomUUID().replaceAll('-', '')}`,
        url,
        events: JSON.stringify([...new Set(events)]),
        status: 'active',
        created_at: now(),
      };
      const secret = generateSecret();
      const entries = await store.transaction(async (trx) => {
        await trx.insertInto('webhooks').values(row).execute();
        await store.vault.put(secretKey(row.id), secret, trx);
        // The origin only: a hook URL's path can be a credential of its own.
        const data = { origin: originOf(url), events: parseEvents(row.events) };
        return opts.audit ? opts.audit.append({ type: 'webhook.created', actor, subject: `webhook:${row.id}`, data }, trx) : [];
      });
      bus.publish(entries);
      return { ...toWebhook(row), secret };
    },

    async list(): Promise<Webhook[]> {
      const rows = await db.selectFrom('webhooks').selectAll().orderBy('created_at').orderBy('id').execute();
      return rows.map(toWebhook);
    },

    get,

    /** Deletes the webhook, its secret and its deliveries; nothing more is sent to it. */
    async delete(id: string, actor = 'admin'): Promise<void> {
      const entries = await store.transaction(async (trx) => {
        const row = await trx.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
        if (!row) throw notFound(`webhook ${id}`);
        await trx.deleteFrom('webhook_deliveries').where('webhook_id', '=', id).execute();
        await trx.deleteFrom('webhooks').where('id', '=', id).execute();
        await store.vault.delete({ scope: 'webhook', ref: id }, trx);
        const data = { origin: originOf(row.url), events: parseEvents(row.events) };
        return opts.audit ? opts.audit.append({ type: 'webhook.deleted', actor, subject: `webhook:${id}`, data }, trx) : [];
      });
      bus.publish(entries);
    },

    /** The webhook's most recent deliveries, newest first. */
    async deliveries(id: string, q: { limit?: number; status?: Delivery['status'] } = {}): Promise<Delivery[]> {
      await get(id);
      let query = deliveryQuery(id);
      if (q.status) query = query.where('d.status', '=', q.status);
      const rows = await query.orderBy('d.created_at', 'desc').orderBy('d.id', 'desc').limit(Math.min(q.limit ?? 50, 500)).execute();
      return rows.map((r) => ({ ...r, event_type: r.event_type ?? null }));
    },

    /**
     * Queues one of the webhook's deliveries again (a receiver that was down, or lost what it got):
     * a delivered or failed delivery goes back to `pending`, due now, with a fresh retry budget, and
     * is sent by the worker like any other (same `webhook-id`: a receiver that dedupes on it sees a
     * duplicate). A pending one is refused (`conflict`): the worker already holds or will send it.
     * Audited as `webhook.redelivered`.
     */
    async redeliver(id: string, deliveryId: string, actor = 'admin'): Promise<Delivery> {
      const entries = await store.transaction(async (trx) => {
        const hook = await trx.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
        if (!hook) throw notFound(`webhook ${id}`);
        const row = await trx.selectFrom('webhook_deliveries').selectAll().where('id', '=', deliveryId).where('webhook_id', '=', id).executeTakeFirst();
        if (!row) throw notFound(`delivery ${deliveryId} of webhook ${id}`);
        if (hook.status !== 'active') throw new WarrantError('conflict', `webhook ${id} is ${hook.status}: nothing would be sent`);
        // Conditional on the settled state: a worker's settle() only ever writes a pending row, so the two never race.
        const done = await trx
          .updateTable('webhook_deliveries')
          .set({ status: 'pending', attempts: 0, next_attempt_at: now(), delivered_at: null })
          .where('id', '=', deliveryId)
          .where('status', 'in', ['delivered', 'failed'])
          .executeTakeFirst();
        if (Number(done.numUpdatedRows) !== 1) throw new WarrantError('conflict', `delivery ${deliveryId} is already pending: the worker will send it`);
        const data = { delivery: deliveryId, event_id: row.event_id, previous_status: row.status, origin: originOf(hook.url) };
        return opts.audit ? opts.audit.append({ type: 'webhook.redelivered', actor, subject: `webhook:${id}`, data }, trx) : [];
      });
      bus.publish(entries);
      wake();
      const view = await deliveryQuery(id).where('d.id', '=', deliveryId).executeTakeFirstOrThrow();
      return { ...view, event_type: view.event_type ?? null };
    },

    /** Runs one round of deliveries now (tests, `warrant` commands). */
    tick,

    /** Starts the delivery worker; pending deliveries left by an earlier run are picked up at once. */
    start(): void {
      if (!stopped) return;
      stopped = false;
      abort = new AbortController();
      subscribe();
      timer = setTimeout(loop, 0);
    },

    /** Stops the worker; attempts in flight are abandoned uncounted and retried on the next start. */
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
      unsubscribe?.();
      unsubscribe = undefined;
      abort.abort();
      await running;
      await dispatcher?.close().catch(() => undefined);
      dispatcher = undefined;
    },
  };
}

export type Webhooks = ReturnType<typeof createWebhooks>;
