// The soak's own view of PostgreSQL: its throwaway schema, the fault that terminates Warrant's
// backends, and counts read straight from Warrant's tables once every instance has stopped.
import pg from 'pg';

/** A URL whose sessions live in `schema` and carry `appName` (to find them in pg_stat_activity). */
export function instanceUrl(base: string, schema: string, appName: string): string {
  const u = new URL(base);
  u.searchParams.set('options', `-c search_path=${schema}`);
  u.searchParams.set('application_name', appName);
  return u.href;
}

export interface SoakDb {
  createSchema(): Promise<void>;
  dropSchema(): Promise<void>;
  /** pg_terminate_backend on every session whose application_name starts with `prefix`. */
  terminate(prefix: string): Promise<number>;
  /** Audit entries of `types` after `afterSeq`, oldest first. */
  auditEntries(afterSeq: number, types: string[]): Promise<{ seq: number; id: string; type: string; subject: string | null; at: number; data: string }[]>;
  countAudit(type: string): Promise<number>;
  /** When each of these subjects was audited with `type`, oldest first. */
  auditTimes(type: string, subjects: string[]): Promise<Map<string, number[]>>;
  maxSeq(): Promise<number>;
  close(): Promise<void>;
}

export function soakDb(baseUrl: string, schema: string): SoakDb {
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error('schema must be a plain identifier');
  const admin = new pg.Pool({ connectionString: baseUrl, max: 2, application_name: 'warrant_soak_admin' });
  const inSchema = new pg.Pool({ connectionString: instanceUrl(baseUrl, schema, 'warrant_soak_admin'), max: 2 });
  admin.on('error', () => {});
  inSchema.on('error', () => {});
  return {
    async createSchema() {
      await admin.query(`create schema "${schema}"`);
    },
    async dropSchema() {
      await admin.query(`drop schema if exists "${schema}" cascade`);
    },
    async terminate(prefix) {
      const { rows } = await admin.query<{ n: number }>(
        `select count(pg_terminate_backend(pid))::int as n from pg_stat_activity where application_name like $1 and pid <> pg_backend_pid()`,
        [`${prefix.replace(/[\\%_]/g, '\\$&')}%`],
      );
      return rows[0]?.n ?? 0;
    },
    async auditEntries(afterSeq, types) {
      const { rows } = await inSchema.query(`select seq::int as seq, id, type, subject, at::float8 as at, data from audit_events where seq > $1 and type = any($2) order by seq`, [afterSeq, types]);
      return rows;
    },
    async countAudit(type) {
      const { rows } = await inSchema.query<{ n: number }>(`select count(*)::int as n from audit_events where type = $1`, [type]);
      return rows[0]?.n ?? 0;
    },
    async auditTimes(type, subjects) {
      const out = new Map<string, number[]>();
      if (!subjects.length) return out;
      const { rows } = await inSchema.query<{ subject: string; at: number }>(
        `select subject, at::float8 as at from audit_events where type = $1 and subject = any($2) order by seq`,
        [type, subjects],
      );
      for (const r of rows) out.set(r.subject, [...(out.get(r.subject) ?? []), r.at]);
      return out;
    },
    async maxSeq() {
      const { rows } = await inSchema.query<{ n: number | null }>(`select max(seq)::int as n from audit_events`);
      return rows[0]?.n ?? 0;
    },
    async close() {
      await Promise.all([admin.end(), inSchema.end()]);
    },
  };
}
