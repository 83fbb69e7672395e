export { createAuditLog, type AuditLog, type AuditInput, type AuditEntry, type AuditQuery, type AuditHead, type AuditVerification } from './audit.ts';
export { loadChainKey, CHAIN_KEY_SECRET } from './chain-key.ts';
export type { ChainKey } from './chain.ts';
export { createEventBus, type EventBus } from './bus.ts';
export { createAuditQueue, type AuditQueue, type Reservation } from './audit-queue.ts';
export { createWebhooks, defaultRetry, type Webhooks, type WebhooksOptions, type Webhook, type Delivery } from './webhooks.ts';
export { generateSecret, matches, messageId, payloadOf, retryDelayMs, sign, urlProblem, EVENT_PATTERN, type RetrySettings } from './webhook-messages.ts';
export { deliverable, outboxRows, writeOutbox } from './outbox.ts';
