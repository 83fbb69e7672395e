import { createWriteStream, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { request } from 'undici';
import { loadConfig } from '../config/index.ts';
import { fileKeyRingSource, keyFileName, parseKeyRing, staticKeyRing } from '../crypto/index.ts';
import { createAuditLog, readChainKey, type AuditVerification } from '../events/index.ts';
import { createStore } from '../store/index.ts';
import { AdminApiError, adminApiOf, callAdminApi, runAdminCommand, withAdminApi, type AdminApiOptions } from './admin-api.ts';
import { auditTailCommand } from './audit-tail.ts';

// `warrant audit verify` and `warrant audit export` (docs/audit.md). Verify asks the running
// Warrant (GET /v1/audit/verify) or, with --store, reads the database itself with the chain key
// opened by the key ring: a verifier that trusts the server it verifies is weaker, since a
// compromised server can answer `ok` for any log. Export pages GET /v1/audit/export from a cursor.

type ApiOpts = { url: string; token?: string; timeout?: number };

const REASONS: Record<NonNullable<AuditVerification['reason']>, string> = {
  hash_mismatch: "the entry's content does not match its hash: it was edited",
  chain_break: "its prev_hash is not the previous entry's hash: an entry before it was removed or inserted, or entries were reordered",
  unkeyed_rewritten: 'the unkeyed entries before the chain key no longer end where the key says: they were rewritten',
  truncated: 'the sealed head names this entry and it is gone or differs: the newest entries were removed',
  seal_invalid: "the sealed head's MAC does not hold: it was edited",
  seal_missing: 'the log has keyed entries but no sealed head: it was deleted',
};

/** What `warrant audit verify` prints; exit code 1 unless the log verifies. */
export function verificationReport(v: AuditVerification): { ok: boolean; text: string } {
  const keyed = v.keyed_from !== undefined ? ` (keyed from seq ${v.keyed_from})` : ' (unkeyed: no chain key)';
  if (v.ok) return { ok: true, text: `audit log verifies: ${v.entries} entries${keyed}` };
  const id = v.first_bad_id ? ` (${v.first_bad_id})` : '';
  const why = v.reason ? `${v.reason}: ${REASONS[v.reason]}` : 'it does not verify';
  return { ok: false, text: `audit log does NOT verify: first bad position seq ${v.first_bad}${id}: ${why}; ${v.entries} entries walked${keyed}` };
}

/** Verifies the store named by the environment (WARRANT_DATA_DIR / DATABASE_URL, the key ring) without a server. */
export async function verifyStore(env: NodeJS.ProcessEnv = process.env, notice: (m: string) => void = () => {}): Promise<AuditVerification> {
  const config = loadConfig(env);
  let ring;
  if (config.masterKey) ring = staticKeyRing(parseKeyRing(config.masterKey));
  else {
    // Never generate a key here: a new key opens nothing.
    const path = join(config.dataDir, keyFileName);
    if (!existsSync(path)) throw new AdminApiError(`no key ring: set WARRANT_MASTER_KEY, or point WARRANT_DATA_DIR at the data dir holding ${keyFileName}`);
    ring = fileKeyRingSource(path);
  }
  const store = await createStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, ring });
  try {
    const chain = await readChainKey(store.vault);
    if (!chain) notice('no audit chain key in this store (no keyed Warrant has started on it): verifying as unkeyed SHA-256');
    return await createAuditLog({ db: store.db, dialect: store.dialect, now: Date.now, chain }).verify();
  } finally {
    await store.close();
  }
}

/** Where an interrupted page leaves off: the last complete line's seq and hash (jsonl or ocsf). */
function cursorOfLine(line: string): string | undefined {
  try {
    const v = JSON.parse(line) as { seq?: number; hash?: string; metadata?: { sequence?: number }; unmapped?: { hash?: string } };
    const seq = v.seq ?? v.metadata?.sequence;
    const hash = v.hash ?? v.unmapped?.hash;
    return typeof seq === 'number' && typeof hash === 'string' ? `${seq}-${hash.slice(0, 16)}` : undefined;
  } catch {
    return undefined;
  }
}

interface ExportOptions {
  format: 'jsonl' | 'ocsf';
  since?: string;
  cursor?: string;
  limit: number;
  /** Lines go here, complete lines only. */
  write(chunk: string): Promise<void>;
  /** Called with the cursor after every page (and after the last complete line of a broken one). */
  onCursor(cursor: string): void;
}

/** Pages through GET /v1/audit/export until caught up; answers the next cursor and how many lines were written. */
export async function exportAudit(api: AdminApiOptions, o: ExportOptions): Promise<{ cursor?: string; lines: number }> {
  if (!api.token) throw new AdminApiError('no admin credential: set WARRANT_ADMIN_TOKEN (or pass --token)');
  let cursor = o.cursor;
  let lines = 0;
  for (;;) {
    const q = new URLSearchParams({ format: o.format, limit: String(o.limit), ...(o.since ? { since: o.since } : {}), ...(cursor ? { cursor } : {}) });
    let res;
    try {
      res = await request(`${api.url}/v1/audit/export?${q}`, {
        headers: { authorization: `Bearer ${api.token}`, accept: 'application/x-ndjson' },
        headersTimeout: api.timeoutMs,
        bodyTimeout: api.timeoutMs,
      });
    } catch (err) {
      const e = err as { code?: string; name?: string };
      throw new AdminApiError(`could not reach Warrant at ${api.url} (${e.code ?? e.name ?? 'error'})`);
    }
    if (res.statusCode >= 400) {
      const text = await res.body.text();
      let p: Record<string, unknown> = {};
      try {
        p = JSON.parse(text) as Record<string, unknown>;
      } catch {
        // not a problem document
      }
      throw new AdminApiError(`${typeof p.code === 'string' ? `${p.code}: ` : ''}${typeof p.detail === 'string' ? p.detail : `HTTP ${res.statusCode}`}`, res.statusCode, p);
    }
    const next = res.headers['warrant-next-cursor'];
    const caughtUp = res.headers['warrant-export-caught-up'] === 'true';
    let rest = '';
    let last: string | undefined;
    try {
      for await (const chunk of res.body) {
        const text = rest + (chunk as Buffer).toString('utf8');
        const end = text.lastIndexOf('\n');
        if (end < 0) {
          rest = text;
          continue;
        }
        const complete = text.slice(0, end + 1);
        rest = text.slice(end + 1);
        await o.write(complete);
        const parts = complete.split('\n');
        lines += parts.length - 1;
        last = parts.at(-2);
      }
    } catch (err) {
      // Resume exactly after the last complete line written.
      const at = last !== undefined ? cursorOfLine(last) : undefined;
      if (at) o.onCursor(at);
      throw new AdminApiError(`the export broke off (${(err as { code?: string }).code ?? (err as Error).message}); resume from ${at ?? cursor ?? 'the start'}`);
    }
    if (typeof next === 'string') {
      cursor = next;
      o.onCursor(next);
    }
    if (caughtUp || typeof next !== 'string') return { cursor, lines };
  }
}

/** Where the commands print (tests pass their own). */
export interface AuditIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processIo: AuditIo = { stdout: (t) => void process.stdout.write(t), stderr: (t) => void process.stderr.write(t) };

export function auditCommand(io: AuditIo = processIo): Command {
  const audit = new Command('audit').description('Follow the tamper-evident audit log, check it, export it (JSON Lines or OCSF) for a SIEM');

  withAdminApi(
    audit
      .command('verify')
      .description(
        'Walk the audit chain and its sealed head; exit 1 naming the first bad position (seq, event id, why). By default the running ' +
          'Warrant verifies (WARRANT_URL, WARRANT_ADMIN_TOKEN); --store reads the database here with the key ring instead, trusting no server.',
      ),
  )
    .option('--store', 'verify the store named by WARRANT_DATA_DIR / DATABASE_URL directly, with the key ring (WARRANT_MASTER_KEY or the key file)')
    .option('--json', 'print the verification as JSON')
    .action((opts: ApiOpts & { store?: boolean; json?: boolean }) =>
      runAdminCommand(async () => {
        const notice = (m: string) => io.stderr(`warrant: ${m}\n`);
        const v = opts.store ? await verifyStore(process.env, notice) : await callAdminApi<AuditVerification>(adminApiOf(opts), 'GET', '/v1/audit/verify');
        const report = verificationReport(v);
        io.stdout(`${opts.json ? JSON.stringify(v) : report.text}\n`);
        if (!report.ok) process.exitCode = 1;
      }),
    );

  withAdminApi(
    audit
      .command('export')
      .description(
        'Write the audit log as JSON Lines (entries as stored) or OCSF 1.8 events, from a cursor, until caught up; the next cursor ' +
          'goes to stderr (and to --cursor-file): pass it back to resume exactly after the last event written.',
      ),
  )
    .addOption(new Option('--format <format>', 'jsonl: entries as stored; ocsf: OCSF API Activity / Account Change events').choices(['jsonl', 'ocsf']).default('jsonl'))
    .option('--since <time>', 'only entries at or after this time (RFC 3339, or epoch ms)')
    .option('--cursor <cursor>', 'resume after this cursor (as printed by an earlier export)')
    .option('--cursor-file <file>', 'read the cursor from this file when it exists, and keep it updated after every page')
    .option('--out <file>', 'append the lines to this file (default: stdout)')
    .addOption(new Option('--limit <n>', 'entries per page').default('5000').argParser((v) => Number.parseInt(v, 10)))
    .action((opts: ApiOpts & { format: 'jsonl' | 'ocsf'; since?: string; cursor?: string; cursorFile?: string; out?: string; limit: number | string }) =>
      runAdminCommand(async () => {
        const limit = typeof opts.limit === 'number' ? opts.limit : Number.parseInt(opts.limit, 10);
        if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new AdminApiError('--limit: expected an integer from 1 to 100000');
        let cursor = opts.cursor;
        if (!cursor && opts.cursorFile && existsSync(opts.cursorFile)) cursor = readFileSync(opts.cursorFile, 'utf8').trim() || undefined;
        const file = opts.out ? createWriteStream(opts.out, { flags: 'a' }) : undefined;
        const sink = file ?? process.stdout;
        const write = (chunk: string) => new Promise<void>((resolve, reject) => sink.write(chunk, (err) => (err ? reject(err) : resolve())));
        let latest = cursor;
        const onCursor = (c: string) => {
          latest = c;
          if (opts.cursorFile) {
            writeFileSync(`${opts.cursorFile}.tmp`, `${c}\n`);
            renameSync(`${opts.cursorFile}.tmp`, opts.cursorFile);
          }
        };
        try {
          const done = await exportAudit(adminApiOf(opts), { format: opts.format, since: opts.since, cursor, limit, write, onCursor });
          io.stderr(`exported ${done.lines} entries; next cursor: ${done.cursor ?? '(none: the log is empty)'}\n`);
        } catch (err) {
          if (latest) io.stderr(`next cursor: ${latest}\n`);
          throw err;
        } finally {
          if (file) await new Promise<void>((resolve) => file.end(resolve));
        }
      }),
    );

  audit.addCommand(auditTailCommand(io));
  return audit;
}
