import { sql, type RawBuilder, type SqlBool } from 'kysely';
import type { Db, Dialect } from './db.ts';
import { tagColumns, type TagFilter, type TagPatch } from '../util/tags.ts';

// Tags in SQL (the rules are util/tags.ts). Labels are a JSON object in a text column; a label
// filter reads it with SQLite's json_extract/json_type or, on PostgreSQL, as jsonb with `@>` and
// `?`, which the GIN index on `labels::jsonb` (migration 017) serves. Label keys match
// LABEL_KEY_PATTERN (no quote, no backslash), and every key and value is a bound parameter.

export type TaggedTable = 'connections' | 'agents';

/** One condition per filter given, to AND into a query over `table` (which may be joined). */
export function tagPredicates(table: TaggedTable, filter: TagFilter, dialect: Dialect): RawBuilder<SqlBool>[] {
  const column = (name: string) => sql.ref(`${table}.${name}`);
  const out: RawBuilder<SqlBool>[] = [];
  if (filter.end_user !== undefined) out.push(sql<SqlBool>`${column('end_user')} = ${filter.end_user}`);
  if (filter.organization !== undefined) out.push(sql<SqlBool>`${column('organization')} = ${filter.organization}`);
  for (const s of filter.labels ?? []) {
    if (dialect === 'postgres') {
      out.push(
        s.value === undefined
          ? sql<SqlBool>`(${column('labels')}::jsonb ? ${s.key})`
          : sql<SqlBool>`(${column('labels')}::jsonb @> ${JSON.stringify({ [s.key]: s.value })}::jsonb)`,
      );
    } else {
      const path = `$."${s.key}"`;
      // json_type: a label set to "" is still set; only a missing key is null.
      out.push(
        s.value === undefined
          ? sql<SqlBool>`(json_type(${column('labels')}, ${path}) is not null)`
          : sql<SqlBool>`(json_type(${column('labels')}, ${path}) = 'text' and json_extract(${column('labels')}, ${path}) = ${s.value})`,
      );
    }
  }
  return out;
}

export function createTagsRepo(db: Db, dialect: Dialect) {
  return {
    predicates: (table: TaggedTable, filter: TagFilter) => tagPredicates(table, filter, dialect),

    /**
     * Writes a tag change on a connection or an agent; false when there is no such row. Leaves
     * `version` alone: tags are not a token write, and a refresh in flight must still land.
     */
    async set(table: TaggedTable, id: string, patch: TagPatch, trx: Db = db): Promise<boolean> {
      const columns = tagColumns(patch);
      if (!Object.keys(columns).length) return (await trx.selectFrom(table).select('id').where('id', '=', id).executeTakeFirst()) !== undefined;
      const r = await trx.updateTable(table).set(columns).where('id', '=', id).executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
  };
}

export type TagsRepo = ReturnType<typeof createTagsRepo>;
