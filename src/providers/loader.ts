import { readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { describeIssues, providerSchema, type Provider } from './schema.ts';

export class ProviderDefinitionError extends Error {
  override name = 'ProviderDefinitionError';
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}

const builtinDir = fileURLToPath(new URL('./catalog/', import.meta.url));
const definitionExtensions = new Set(['.yaml', '.yml', '.json']);

function parseYamlText(text: string, file: string): unknown {
  try {
    return parseYaml(text);
  } catch (err) {
    throw new ProviderDefinitionError(file, `not valid YAML or JSON (${(err as Error).message.split('\n')[0]})`);
  }
}

function validate(raw: unknown, file: string): Provider {
  const result = providerSchema.safeParse(raw);
  if (!result.success) throw new ProviderDefinitionError(file, describeIssues(result.error));
  return result.data;
}

/** Parses one definition's text; YAML is a superset of JSON, so one parser reads both. */
export function parseProviderText(text: string, file: string): Provider {
  return validate(parseYamlText(text, file), file);
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Objects merge key by key, deeply; anything else (lists included) is replaced. */
function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in out ? deepMerge(out[k], v) : v;
  return out;
}

/**
 * The definitions of a file (one, or a list) or of every definition file in a folder (sorted by
 * name, so the merge order is stable), resolved against `known` (and each other, in order): a
 * definition with `extends: <id>` is that entry with its own fields merged over it.
 */
export function readProviderPath(path: string, known: ReadonlyMap<string, Provider> = new Map()): Provider[] {
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((f) => definitionExtensions.has(extname(f)))
        .sort()
        .map((f) => join(path, f))
    : [path];
  const seen = new Map(known);
  const out: Provider[] = [];
  for (const file of files) {
    const raw = parseYamlText(readFileSync(file, 'utf8'), file);
    for (const [i, def] of (Array.isArray(raw) ? raw : [raw]).entries()) {
      const where = Array.isArray(raw) ? `${file}[${i}]` : file;
      let resolved = def;
      if (isPlainObject(def) && def.extends !== undefined) {
        const { extends: baseId, ...own } = def;
        const base = typeof baseId === 'string' ? seen.get(baseId) : undefined;
        if (!base) throw new ProviderDefinitionError(where, `extends: no provider ${String(baseId)} in the catalog`);
        resolved = deepMerge(base, own);
      }
      const provider = validate(resolved, where);
      seen.set(provider.id, provider);
      out.push(provider);
    }
  }
  return out;
}

export function readProviderFile(file: string): Provider {
  return parseProviderText(readFileSync(file, 'utf8'), file);
}

export function loadBuiltinProviders(): Provider[] {
  return readProviderPath(builtinDir);
}

/** The built-in catalog with `extraPath` (WARRANT_PROVIDERS) merged over it: a user definition replaces the built-in one of the same id. */
export function loadCatalog(extraPath?: string): Map<string, Provider> {
  const catalog = new Map<string, Provider>();
  for (const p of loadBuiltinProviders()) {
    if (catalog.has(p.id)) throw new ProviderDefinitionError(builtinDir, `duplicate provider id ${p.id}`);
    catalog.set(p.id, p);
  }
  if (extraPath) for (const p of readProviderPath(extraPath, catalog)) catalog.set(p.id, p);
  return catalog;
}

/** `${env:NAME}` → the variable's value; a literal passes through. Resolved at use, so secrets never sit in the parsed catalog. */
export function resolveSecretRef(value: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (value === undefined) return undefined;
  const m = /^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(value);
  if (!m) return value;
  return env[m[1]!] || undefined;
}
