import { callSandboxControl } from '../sandbox/control-client.ts';
import { runBatch, type BatchEvent, type BatchOutcome } from './batch.ts';
import { ALERT_EVENTS, connectOwner, createAgent, subscribeAlerts } from './flow.ts';
import { createProgress, type ProgressCounts } from './progress.ts';
import { startRig, type Rig } from './rig.ts';
import { formatSummary, judge, refreshAnswersOf, type DemoFacts, type Window } from './summary.ts';

/**
 * `warrant demo`: the sandbox IdP with short rotating tokens, Warrant on a temporary store, the
 * real connect flow, an agent with a narrow grant, and an overnight batch through the proxy that
 * meets an IdP outage and then a revocation. Prints a summary, judges it against what Warrant
 * promises, and leaves nothing behind. Answers the exit code: 0 when every expectation held.
 */

export interface DemoOptions {
  calls: number;
  workers: number;
  ratePerSecond: number;
  tokenTtlSeconds: number;
  outageSeconds: number;
  /** Keep Warrant up after the summary until Enter or Ctrl-C (only on a terminal). */
  wait: boolean;
  verbose: boolean;
}

export const demoDefaults: Readonly<DemoOptions> = Object.freeze({
  calls: 1000,
  workers: 4,
  ratePerSecond: 60,
  tokenTtlSeconds: 3,
  outageSeconds: 4,
  wait: true,
  verbose: false,
});

/** Where in the batch (share of the calls) the outage and the revocation strike. */
const OUTAGE_AT = 0.3;
const REVOKE_AT = 0.8;
const CALL_DEADLINE_MS = 20_000;
const ALERT_WAIT_MS = 10_000;
/** The longest the demo keeps Warrant up for a look. */
const LOOK_MAX_MS = 30 * 60_000;

export interface DemoIo {
  write(s: string): void;
  tty: boolean;
  /** Resolves when the user presses Enter (on a terminal). */
  waitForEnter(signal: AbortSignal): Promise<void>;
}

export async function runDemo(opts: DemoOptions, io: DemoIo, signal: AbortSignal): Promise<number> {
  const started = Date.now();
  const say = (line: string) => io.write(`${line}\n`);
  const heading = (n: number, title: string) => say(`\n${n}. ${title}`);
  const step = (line: string) => say(`   ${line}`);

  say(`Warrant demo: ${opts.calls} proxied calls through ${opts.tokenTtlSeconds}-second rotating tokens, an IdP outage, a revocation.`);
  heading(1, 'Start');
  const rig = await startRig({ tokenTtlSeconds: opts.tokenTtlSeconds, verbose: opts.verbose });
  try {
    step(`sandbox IdP    ${rig.sandbox.issuer}  (API ${rig.sandbox.apiBaseUrl}, controls ${rig.sandbox.controlUrl})`);
    step(`Warrant        ${rig.warrantUrl}  (SQLite store in ${rig.dir})`);
    step(`alert receiver ${rig.alerts.url}`);
    step(`ports ${rig.ports.sandbox} ${rig.ports.warrant} ${rig.ports.alerts} on 127.0.0.1, closed when the demo ends`);

    heading(2, 'Connect');
    await subscribeAlerts(rig, step);
    const connection = await connectOwner(rig, step);

    heading(3, 'Agent');
    const agent = await createAgent(rig, connection, step);

    heading(4, 'Overnight batch');
    const outageAt = Math.min(opts.calls - 1, Math.floor(opts.calls * OUTAGE_AT));
    const revokeAt = Math.min(opts.calls - 1, Math.max(outageAt + 1, Math.floor(opts.calls * REVOKE_AT)));
    step(`${opts.calls} × GET /items through the proxy, ${opts.workers} workers at ${opts.ratePerSecond}/s; an IdP outage at call ${outageAt + 1}, the grant revoked at call ${revokeAt + 1}`);
    const { batch, outage, revocation } = await runTheBatch(rig, opts, io, signal, { connection, agentKey: agent.key, outageAt, revokeAt });

    heading(5, 'Alert');
    const reauth = await rig.alerts.waitFor('connection.reauth_required', ALERT_WAIT_MS);
    // A duplicate would arrive right after the first: give it a moment to show up.
    await new Promise((r) => setTimeout(r, 500));
    for (const a of reauth) {
      const reconnect = typeof a.data.reconnect_url === 'string' ? ', with a re-connect link for the owner (not shown: it is a capability)' : '';
      step(`${a.type} for ${String(a.data.subject ?? a.data.connection ?? connection)} (error ${String(a.data.error ?? '?')}), signature ${a.signatureValid ? 'verified' : 'INVALID'}${reconnect}`);
    }
    if (reauth.length === 0) step(`no connection.reauth_required alert within ${ALERT_WAIT_MS / 1000} s`);
    const audit = await rig.admin<{ entries?: unknown[] }>('GET', `/v1/audit?type=connection.reauth_required`).catch(() => undefined);
    if (audit?.entries) step(`audit log: ${audit.entries.length} connection.reauth_required entr${audit.entries.length === 1 ? 'y' : 'ies'} (GET /v1/audit?type=connection.reauth_required)`);

    heading(6, 'Summary');
    const answers = refreshAnswersOf(rig.sandboxLog);
    const facts: DemoFacts = {
      batch,
      outage,
      revocation,
      stats: rig.sandbox.stats(),
      refreshAnswers: answers.byStatus,
      outageRefusals: answers.outage,
      alerts: [...rig.alerts.alerts],
    };
    say(formatSummary(facts));
    const checks = judge(facts);
    say('');
    for (const c of checks) say(`  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.text}`);
    const ok = checks.every((c) => c.ok);
    say(ok ? '\nExpectations held: no call lost to expiry or to the outage; after the revocation every call is reauth_required, with one alert.' : '\nExpectations NOT met (see FAIL above).');

    await showDashboard(rig, say);
    if (opts.wait && io.tty) {
      say(`\nWarrant stays up so you can look around (at most ${LOOK_MAX_MS / 60_000} min). Press Enter or Ctrl-C to stop.`);
      await Promise.race([io.waitForEnter(signal), new Promise((r) => setTimeout(r, LOOK_MAX_MS).unref())]);
    }
    return ok ? 0 : 1;
  } finally {
    await rig.close();
    say(`\nStopped: ports ${rig.ports.sandbox}, ${rig.ports.warrant} and ${rig.ports.alerts} closed, ${rig.dir} removed (${((Date.now() - started) / 1000).toFixed(1)} s in all).`);
  }
}

async function showDashboard(rig: Rig, say: (line: string) => void): Promise<void> {
  say(`\nDashboard: ${rig.warrantUrl}/ui`);
  try {
    // A read-only key is enough to look at what happened; it dies with this run's store.
    const key = await rig.admin<{ api_key: string }>('POST', '/v1/admin-keys', { name: 'demo dashboard', role: 'read' });
    say(`  sign in with this read-only admin key (shown once, valid for this run only): ${key.api_key}`);
  } catch (err) {
    say(`  no sign-in key could be made: ${(err as Error).message}`);
  }
}

interface BatchPlan {
  connection: string;
  agentKey: string;
  outageAt: number;
  revokeAt: number;
}

async function runTheBatch(
  rig: Rig,
  opts: DemoOptions,
  io: DemoIo,
  signal: AbortSignal,
  plan: BatchPlan,
): Promise<{ batch: BatchOutcome; outage?: Window & { seconds: number }; revocation?: Window }> {
  const counts: ProgressCounts = { done: 0, ok: 0, retries: 0, failed: 0 };
  const progress = createProgress(opts.calls, { tty: io.tty, write: io.write });
  let outage: (Window & { seconds: number }) | undefined;
  let revocation: Window | undefined;
  let healTimer: NodeJS.Timeout | undefined;
  let saidWait = false;
  let saidReauth = false;
  const alertSeen = new Set<string>();

  const events: BatchEvent[] = [
    {
      atCall: plan.outageAt,
      name: 'outage',
      run: async () => {
        const at = Date.now();
        await callSandboxControl(rig.sandboxOrigin, 'POST', '/outage', { seconds: opts.outageSeconds });
        outage = { at, doneAt: Date.now(), seconds: opts.outageSeconds };
        progress.note(`IdP outage: the token endpoint answers 503 for ${opts.outageSeconds} s (= warrant sandbox outage --seconds ${opts.outageSeconds})`);
        healTimer = setTimeout(() => progress.note('the IdP is back'), opts.outageSeconds * 1000);
      },
    },
    {
      atCall: plan.revokeAt,
      name: 'revocation',
      run: async () => {
        const at = Date.now();
        const out = await callSandboxControl<{ revoked: number }>(rig.sandboxOrigin, 'POST', '/revoke', { all: true });
        revocation = { at, doneAt: Date.now() };
        progress.note(`the grant is revoked at the IdP, as a password reset would (= warrant sandbox revoke --all): ${out.revoked} grant(s)`);
      },
    },
  ];
  const alertWatch = setInterval(() => {
    for (const a of rig.alerts.alerts) {
      if (alertSeen.has(a.id) || !ALERT_EVENTS.includes(a.type)) continue;
      alertSeen.add(a.id);
      progress.note(`alert received: ${a.type}`);
    }
  }, 100);

  try {
    const batch = await runBatch({
      url: `${rig.warrantUrl}/v1/proxy/${plan.connection}/items`,
      agentKey: plan.agentKey,
      calls: opts.calls,
      workers: opts.workers,
      ratePerSecond: opts.ratePerSecond,
      callDeadlineMs: CALL_DEADLINE_MS,
      events,
      signal,
      onCall(r) {
        counts.done += 1;
        counts.retries += r.retries;
        if (r.ok) counts.ok += 1;
        else counts.failed += 1;
        if (!saidWait && r.waitedOn.length > 0) {
          saidWait = true;
          const waits = `${r.waitedOn.length} wait(s) on ${[...new Set(r.waitedOn)].join(', ')}`;
          progress.note(`call #${r.index + 1}: no valid token while the IdP was down; the agent honoured retry_after (${waits}) and the call ${r.ok ? 'succeeded' : `failed: ${r.code}`}`);
        }
        if (!saidReauth && r.code === 'reauth_required') {
          saidReauth = true;
          progress.note(`call #${r.index + 1}: 424 reauth_required; Warrant makes no more IdP calls for this grant until the owner re-connects`);
        }
        progress.update(counts);
      },
    });
    progress.finish(counts);
    return { batch, outage, revocation };
  } finally {
    clearInterval(alertWatch);
    clearTimeout(healTimer);
  }
}
