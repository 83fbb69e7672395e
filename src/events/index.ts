export { createAuditLog, type AuditLog, type AuditInput, type AuditEntry, type AuditQuery } from './audit.ts';
export { createEventBus, type EventBus } from './bus.ts';
export { createAuditQueue, type AuditQueue, type Reservation } from './audit-queue.ts';
