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

/** Parses one definition file's text; YAML is a superset of JSON, so one parser reads both. */
export function parseProviderText(text: string, file: string): Provider {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ProviderDefinitionError(file, `not valid YAML or JSON (${(err as Error).message.split('\n')[0]})`);
  }
  const result = providerSchema.safeParse(raw);
  if (!result.success) throw new ProviderDefinitionError(file, describeIssues(result.error));
  return result.data;
}

export function readProviderFile(file: string): Provider {
  return parseProviderText(readFileSync(file, 'utf8'), file);
}

/** Reads a file, or every definition file in a folder (sorted by name, so the merge order is stable). */
export function readProviderPath(path: string): Provider[] {
  if (!statSync(path).isDirectory()) return [readProviderFile(path)];
  return readdirSync(path)
    .filter((f) => definitionExtensions.has(extname(f)))
    .sort()
    .map((f) => readProviderFile(join(path, f)));
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
  if (extraPath) for (const p of readProviderPath(extraPath)) catalog.set(p.id, p);
  return catalog;
}

/** `${env:NAME}` → the variable's value; a literal passes through. Resolved at use, so secrets never sit in the parsed catalog. */
export function resolveSecretRef(value: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (value === undefined) return undefined;
  const m = /^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(value);
  if (!m) return value;
  return env[m[1]!] || undefined;
}
