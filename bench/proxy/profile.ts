// Reads the V8 CPU profile Warrant's process wrote (--cpu-prof) and sums self time over the
// windows of Warrant's rounds only (setup and the pass-through's rounds are left out), grouped by
// where the time goes: our code per file, fastify, undici, pino, kysely/pg, GC, socket writes.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  /** µs of samples inside the windows (idle included). */
  windowUs: number;
  idleUs: number;
  groups: { group: string; us: number }[];
  functions: { name: string; group: string; us: number }[];
}

const families: [RegExp, string][] = [
  [/^(fastify|@fastify\/.*|find-my-way|avvio|light-my-request|fast-json-stringify|fast-querystring|fast-uri|toad-cache|secure-json-parse|ret|safe-regex2|rfdc|fast-decode-uri-component|process-warning|abstract-logging|fastify-type-provider-zod|fastify-plugin)$/, 'fastify'],
  [/^undici$/, 'undici'],
  [/^(pino|pino-.*|sonic-boom|thread-stream|on-exit-leak-free|fast-redact|@pinojs\/.*|quick-format-unescaped|atomic-sleep|slow-redact)$/, 'pino'],
  [/^(kysely|pg|pg-.*|postgres-.*|better-sqlite3|pgpass|split2)$/, 'kysely/pg/sqlite'],
  [/^(ioredis|@ioredis\/.*|redis-.*|denque|cluster-key-slot|standard-as-callback)$/, 'ioredis'],
  [/^zod$/, 'zod'],
];

const socketWrites = new Set(['writev', 'writeBuffer', 'writeUtf8String', 'writeLatin1String', 'writeAsciiString', 'writeGeneric', 'writevGeneric']);

function groupOf(fn: string, url: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)') return '(program: native, unattributed)';
  if (fn === '(idle)') return '(idle)';
  if (socketWrites.has(fn)) return 'socket writes (writev …)';
  // undici parses HTTP/1.1 answers with llhttp compiled to WebAssembly.
  if (url.startsWith('wasm://')) return 'undici';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    const pkg = rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
    return families.find(([re]) => re.test(pkg))?.[1] ?? pkg;
  }
  const src = url.indexOf('/src/');
  if (src >= 0 && url.startsWith('file://')) return `src/${url.slice(src + 5)}`;
  if (url.startsWith('node:')) {
    const parts = url.slice(5).split('/');
    return `node:${parts[0] === 'internal' && parts.length > 2 ? `internal/${parts[1]}` : parts.join('/')}`;
  }
  if (!url) return `(native) ${fn || '(anonymous)'}`;
  return url.replace(/^file:\/\/.*\/(bench|test)\//, '$1/');
}

/** The main thread's profile of process `pid` in `dir` (Node names it CPU.<date>.<time>.<pid>.0.<seq>.cpuprofile). */
export function findProfile(dir: string, pid: number): string | undefined {
  const f = readdirSync(dir).find((n) => n.endsWith('.cpuprofile') && n.includes(`.${pid}.0.`));
  return f ? join(dir, f) : undefined;
}

/** Main thread only: the SQLite audit writer thread's CPU is in process.cpuUsage(), not here. */
export function summarize(file: string, windows: [number, number][]): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const inWindow = (t: number) => windows.some(([a, b]) => t >= a && t < b);
  const groups = new Map<string, number>();
  const fns = new Map<string, { group: string; us: number }>();
  let t = p.startTime;
  let windowUs = 0;
  let idleUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]!;
    const dt = p.timeDeltas[i + 1] ?? 0;
    if (!inWindow(t)) continue;
    const node = byId.get(p.samples[i]!)!;
    const { functionName, url, lineNumber } = node.callFrame;
    const group = groupOf(functionName, url);
    windowUs += dt;
    if (group === '(idle)') {
      idleUs += dt;
      continue;
    }
    groups.set(group, (groups.get(group) ?? 0) + dt);
    const name = `${functionName || '(anonymous)'} ${url ? `${url.replace(/^.*\/(node_modules|src)\//, '$1/')}:${lineNumber + 1}` : ''}`.trim();
    const f = fns.get(name) ?? { group, us: 0 };
    f.us += dt;
    fns.set(name, f);
  }
  return {
    file,
    windowUs,
    idleUs,
    groups: [...groups].map(([group, us]) => ({ group, us })).sort((a, b) => b.us - a.us),
    functions: [...fns].map(([name, f]) => ({ name, ...f })).sort((a, b) => b.us - a.us),
  };
}

/** The summary as text, in µs per request of Warrant (`requests` completed inside the windows). */
export function formatProfile(s: ProfileSummary, requests: number, top = 25): string {
  const per = (us: number) => (us / requests).toFixed(1);
  const busy = s.windowUs - s.idleUs;
  const out = [
    `CPU profile ${s.file}: ${(busy / 1000).toFixed(0)} ms busy of ${(s.windowUs / 1000).toFixed(0)} ms in Warrant's rounds, ${requests} requests: ${per(busy)} µs/request`,
    '',
    '| self time, grouped | µs/request | share |',
    '|---|---:|---:|',
    ...s.groups.filter((g) => g.us / requests >= 0.5).map((g) => `| ${g.group} | ${per(g.us)} | ${((100 * g.us) / busy).toFixed(1)}% |`),
    '',
    `| top ${top} functions (self) | group | µs/request |`,
    '|---|---|---:|',
    ...s.functions.slice(0, top).map((f) => `| ${f.name} | ${f.group} | ${per(f.us)} |`),
  ];
  return out.join('\n');
}
