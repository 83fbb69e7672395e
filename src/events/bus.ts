import { EventEmitter } from 'node:events';
import type { AuditEntry } from './audit.ts';

/**
 * Events that matter to operators (`connection.reauth_required`, `connection.recovered` …) are
 * audit entries first; once committed they are published here, where webhook delivery and
 * metrics subscribe. Publishing after commit means an alert never announces a change that
 * rolled back.
 */
export function createEventBus() {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(100);
  return {
    publish(entries: AuditEntry[]): void {
      for (const e of entries) {
        emitter.emit(e.type, e);
        emitter.emit('*', e);
      }
    },
    on(type: string, listener: (e: AuditEntry) => void): () => void {
      emitter.on(type, listener);
      return () => emitter.off(type, listener);
    },
  };
}

export type EventBus = ReturnType<typeof createEventBus>;
