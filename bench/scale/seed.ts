// Seeds a fresh, migrated PostgreSQL schema (the real migrations, so the real indexes) with N
// connections, their sealed tokens, owners, and the agents and grants of the active set.
//
// Row i (1 … N) of `connections`:
//   id      con_ + 16 characters (what randomToken(12, 'con_') makes), owner user<(i-1)/10>: 10 per owner
//   provider scale-0 … scale-9, 24 h tokens whose expiries are spread evenly over the next 24 h
//           (refresh_due_at = expiry − 300 s, the default skew for a 24 h token)
//   secrets  access_token + refresh_token, AES-256-GCM envelopes of realistic length: 4 in 5
//           opaque (256-character access, 128-character refresh token, Google/Slack-like), 1 in 5
//           JWT-shaped (1,600 / 1,000 characters, Microsoft-like).
// Rows 1 … active (the ones the instance phase calls through) expire 2 h to 24 h out, so no call
// refreshes, and their tokens are sealed one by one with their own record binding (they must
// open). The other rows' secrets are generated in SQL from one sealed template per shape: the
// same bytes per row, bound to another record (never opened).
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { createStore, type Store } from '../../src/store/index.ts';
import { parseKeyRing, seal, type KeyRing } from '../../src/crypto/index.ts';
import { mintApiKey } from '../../src/agents/keys.ts';

export const PROVIDERS = 10;
export const CONNECTIONS_PER_OWNER = 10;
export const DAY_MS = 86_400_000;
export const SKEW_MS = 300_000;
const ACTIVE_MIN_TTL_MS = 2 * 3_600_000;
const SCOPES = '["items:read","items:write","openid","email","profile","offline_access"]';
const SHAPES = { opaque: { access: 256, refresh: 128 }, jwt: { access: 1_600, refresh: 1_000 } };

export interface SeededAgent {
  apiKey: string;
  connections: string[];
}

export interface Seeded {
  store: Store;
  schema: string;
  n: number;
  seedMs: number;
  agents: SeededAgent[];
}

const idSql = (i: string) => `'con_' || substr(md5('scale-' || ${i}), 1, 16)`;
const randomText = (prefix: string, length: number) => (prefix + randomBytes(length).toString('base64url')).slice(0, length);

function tokenPair(jwt: boolean): { access: string; refresh: string } {
  const s = jwt ? SHAPES.jwt : SHAPES.opaque;
  if (!jwt) return { access: randomText('ya29.', s.access), refresh: randomText('1//', s.refresh) };
  const part = (n: number) => randomBytes(n).toString('base64url');
  const access = `eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.${part(Math.floor(((s.access - 380) * 3) / 4))}.${part(256)}`.slice(0, s.access);
  return { access, refresh: randomText('0.A', s.refresh) };
}

export function keyRingOf(masterKey: string): KeyRing {
  return parseKeyRing(masterKey);
}

/** Opens (creates and migrates) a store on `schema`. */
export async function openStore(databaseUrl: string, schema: string, ring: KeyRing, poolSize = 4): Promise<Store> {
  return createStore({ databaseUrl, pgSchema: schema, ring: { current: () => ring }, poolSize });
}

/** The SQL-generated rows of connections (and owners) in [lo, hi]. */
async function seedConnectionChunk(store: Store, t0: number, active: number, lo: number, hi: number): Promise<void> {
  const off = `(('x' || substr(md5('exp-' || i), 1, 8))::bit(32)::bigint % ${DAY_MS})`;
  const expires = `(case when i <= ${active} then ${t0 + ACTIVE_MIN_TTL_MS} + ${off} % ${DAY_MS - ACTIVE_MIN_TTL_MS} else ${t0} + ${off} end)`;
  await sql
    .raw(
      `insert into connections (id, provider, environment, owner, status, scopes, requested_scopes, params, subject,
         expires_at, refresh_due_at, last_refreshed_at, failure_count, version, refresh_fence, grant_started_at,
         credential_issued_at, created_at, updated_at)
       select ${idSql('i')}, 'scale-' || (i % ${PROVIDERS}), 'production', 'user' || ((i - 1) / ${CONNECTIONS_PER_OWNER}) || '@example.com',
         'active', '${SCOPES}', '${SCOPES}', '{}', 'sub-' || md5('sub-' || i),
         e, e - ${SKEW_MS}, e - ${DAY_MS}, 0, i % 90, i % 90, e - ${DAY_MS} - (i % 90) * ${DAY_MS},
         e - ${DAY_MS}, e - ${DAY_MS} - (i % 90) * ${DAY_MS}, e - ${DAY_MS}
       from (select i, ${expires} as e from generate_series(${lo}::bigint, ${hi}::bigint) as i) s`,
    )
    .execute(store.db);
}

async function seedSecretChunk(store: Store, lo: number, hi: number, templates: { kek: string; wrap: string; ct: Record<string, string> }): Promise<void> {
  const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
  const ct = templates.ct;
  await sql
    .raw(
      `insert into secrets (scope, ref, field, kek_id, wrapped_key, ciphertext, updated_at)
       select 'connection', ${idSql('i')}, f.field, ${lit(templates.kek)}, ${lit(templates.wrap)},
         case when f.field = 'access_token' then (case when i % 5 = 0 then ${lit(ct.jwtA!)} else ${lit(ct.opA!)} end)
              else (case when i % 5 = 0 then ${lit(ct.jwtR!)} else ${lit(ct.opR!)} end) end,
         ${Date.now()}
       from generate_series(${lo}, ${hi}) as i cross join (values ('access_token'), ('refresh_token')) as f(field)`,
    )
    .execute(store.db);
}

/** Runs `jobs` two at a time (two pooled connections: both cores of the database). */
async function twoAtATime(jobs: (() => Promise<void>)[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let j = next++; j < jobs.length; j = next++) await jobs[j]!();
  };
  await Promise.all([worker(), worker()]);
}

export async function seed(opts: {
  databaseUrl: string;
  schema: string;
  ring: KeyRing;
  n: number;
  activeConnections: number;
  t0: number;
  log: (s: string) => void;
}): Promise<Seeded> {
  const { n, t0, ring, log } = opts;
  const active = Math.min(opts.activeConnections, n);
  const store = await openStore(opts.databaseUrl, opts.schema, ring);
  const started = performance.now();
  const CHUNK = 50_000;
  const ranges: [number, number][] = [];
  for (let lo = 1; lo <= n; lo += CHUNK) ranges.push([lo, Math.min(n, lo + CHUNK - 1)]);
  await twoAtATime(ranges.map(([lo, hi]) => () => seedConnectionChunk(store, t0, active, lo, hi)));
  log(`  ${opts.schema}: ${n.toLocaleString('en-US')} connections in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const template = (jwt: boolean, field: string) => {
    const t = tokenPair(jwt);
    return seal(ring, field === 'access_token' ? t.access : t.refresh, 'connection|con_template000000|' + field);
  };
  const ts = { opA: template(false, 'access_token'), opR: template(false, 'refresh_token'), jwtA: template(true, 'access_token'), jwtR: template(true, 'refresh_token') };
  const templates = {
    kek: ts.opA.kekId,
    wrap: ts.opA.wrappedKey,
    ct: Object.fromEntries(Object.entries(ts).map(([k, v]) => [k, v.ciphertext])),
  };
  const bulk = ranges.map(([lo, hi]) => [Math.max(lo, active + 1), hi] as [number, number]).filter(([lo, hi]) => lo <= hi);
  await twoAtATime(bulk.map(([lo, hi]) => () => seedSecretChunk(store, lo, hi, templates)));

  // The active rows: sealed one by one, bound to their own record, as the vault writes them.
  const ids = (await sql.raw<{ i: number; id: string }>(`select i, ${idSql('i')} as id from generate_series(1, ${active}) as i`).execute(store.db)).rows;
  for (let k = 0; k < ids.length; k += 1000) {
    const rows = ids.slice(k, k + 1000).flatMap(({ i, id }) => {
      const pair = tokenPair(i % 5 === 0);
      return (['access_token', 'refresh_token'] as const).map((field) => {
        const s = seal(ring, field === 'access_token' ? pair.access : pair.refresh, `connection|${id}|${field}`);
        return { scope: 'connection', ref: id, field, kek_id: s.kekId, wrapped_key: s.wrappedKey, ciphertext: s.ciphertext, updated_at: Date.now() };
      });
    });
    await store.db.insertInto('secrets').values(rows).execute();
  }
  log(`  ${opts.schema}: + ${(2 * n).toLocaleString('en-US')} sealed tokens in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const owners = Math.ceil(n / CONNECTIONS_PER_OWNER);
  await sql
    .raw(
      `insert into owners (id, email, status, created_at, offboarded_at)
       select 'user' || o || '@example.com', 'user' || o || '@example.com', 'active', ${t0 - 90 * DAY_MS}, null from generate_series(0, ${owners - 1}) as o`,
    )
    .execute(store.db);

  // One agent per owner of the active set, granted items:read on its owner's 10 connections.
  const agents: SeededAgent[] = [];
  const agentRows = [];
  const grantRows = [];
  for (let o = 0; o * CONNECTIONS_PER_OWNER < active; o++) {
    const key = mintApiKey();
    const agentId = `agt_${randomBytes(12).toString('base64url')}`;
    const owner = `user${o}@example.com`;
    const connections = ids.slice(o * CONNECTIONS_PER_OWNER, (o + 1) * CONNECTIONS_PER_OWNER).map((r) => r.id);
    agents.push({ apiKey: key.apiKey, connections });
    agentRows.push({ id: agentId, name: `agent-${o}`, owner, key_id: key.keyId, key_hash: key.keyHash, status: 'active' as const, expires_at: null, last_used_at: null, created_at: t0, revoked_at: null, oauth_client: null });
    for (const c of connections) grantRows.push({ id: `gnt_${randomBytes(12).toString('base64url')}`, agent_id: agentId, connection_id: c, scopes: '["items:read"]', token_export: 0, created_at: t0 });
  }
  for (let k = 0; k < agentRows.length; k += 1000) await store.db.insertInto('agents').values(agentRows.slice(k, k + 1000)).execute();
  for (let k = 0; k < grantRows.length; k += 2000) await store.db.insertInto('grants').values(grantRows.slice(k, k + 2000)).execute();

  // What autovacuum does to a table that has lived a while: statistics and a visibility map.
  for (const t of ['connections', 'secrets', 'owners', 'agents', 'grants']) await sql.raw(`vacuum (analyze) ${t}`).execute(store.db);
  const seedMs = performance.now() - started;
  log(`  ${opts.schema}: seeded, vacuumed and analyzed in ${(seedMs / 1000).toFixed(1)} s (${agents.length} agents, ${grantRows.length} grants)`);
  return { store, schema: opts.schema, n, seedMs, agents };
}
