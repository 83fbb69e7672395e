import type { AuditEventRow, Db } from '../store/index.ts';
import { tagsOf, type Tags } from '../util/tags.ts';

// Webhook payloads about a connection or an agent carry its tags (`end_user`, `organization`,
// `labels`): products route alerts per end user. An entry that holds them already (creation,
// revocation: the row is gone after it) is sent as it is; otherwise they are read as they are
// when the delivery is made.

const tables = { connection: 'connections', agent: 'agents' } as const;

export function createWebhookTags(deps: { db: Db }) {
  return async (event: Pick<AuditEventRow, 'subject' | 'data'>): Promise<Tags | undefined> => {
    const [kind, id] = (event.subject ?? '').split(':', 2);
    const table = tables[kind as keyof typeof tables];
    if (!table || !id) return undefined;
    const data = JSON.parse(event.data) as Record<string, unknown>;
    if ('end_user' in data && 'organization' in data && 'labels' in data) return undefined;
    const row = await deps.db.selectFrom(table).select(['end_user', 'organization', 'labels']).where('id', '=', id).executeTakeFirst();
    return row ? tagsOf(row) : undefined;
  };
}
