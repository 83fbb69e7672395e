import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertOwnerOnly, ensurePrivateDir } from '../util/file-modes.ts';

/** The key-encryption keys Warrant knows; the first is active (new seals use it). */
export interface KeyRing {
  readonly activeId: string;
  readonly ids: readonly string[];
  get(id: string): Buffer | undefined;
}

export class KeyRingError extends Error {
  override name = 'KeyRingError';
}

const KEY_BYTES = 32;
const ID = /^[A-Za-z0-9_-]{1,64}$/;

/** A short, stable id for a bare key: a fingerprint, not the key. */
export function keyId(key: Buffer): string {
  return `k${createHash('sha256').update('warrant-kek-id').update(key).digest('hex').slice(0, 10)}`;
}

function decodeKey(text: string, label: string): Buffer {
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== KEY_BYTES) throw new KeyRingError(`${label}: a key is base64 of exactly 32 bytes`);
  return key;
}

/** `base64` or `id:base64,id:base64,…` (first one active). Messages never echo key material. */
export function parseKeyRing(spec: string, label = 'WARRANT_MASTER_KEY'): KeyRing {
  const entries: [string, Buffer][] = [];
  for (const part of spec.split(/[,\n]/).map((s) => s.trim()).filter(Boolean)) {
    const colon = part.indexOf(':');
    let id: string;
    let key: Buffer;
    if (colon > 0 && ID.test(part.slice(0, colon))) {
      id = part.slice(0, colon);
      key = decodeKey(part.slice(colon + 1), label);
    } else {
      key = decodeKey(part, label);
      id = keyId(key);
    }
    if (entries.some(([other]) => other === id)) throw new KeyRingError(`${label}: key id ${id} appears twice`);
    entries.push([id, key]);
  }
  if (!entries.length) throw new KeyRingError(`${label}: no key given`);
  return ringOf(entries);
}

function ringOf(entries: [string, Buffer][]): KeyRing {
  const map = new Map(entries);
  return Object.freeze({ activeId: entries[0]![0], ids: entries.map(([id]) => id), get: (id: string) => map.get(id) });
}

export function generateKeySpec(id = `k${Date.now().toString(36)}`): string {
  return `${id}:${randomBytes(KEY_BYTES).toString('base64')}`;
}

export const keyFileName = 'master.key';

/**
 * The embedded mode's key file: one `id:base64` per line, first active. Created with mode 0600 in a
 * 0700 data dir; an existing dir or file that other users may read stops start-up (FileModeError).
 * Returns the ring and whether the file was just created (the caller warns once).
 */
export function loadOrCreateKeyFile(dataDir: string): { ring: KeyRing; created: boolean; path: string } {
  const path = join(dataDir, keyFileName);
  ensurePrivateDir(dataDir);
  if (existsSync(path)) {
    assertOwnerOnly(path, 'file');
    return { ring: parseKeyRing(readFileSync(path, 'utf8'), path), created: false, path };
  }
  writeKeyFile(path, [generateKeySpec()]);
  return { ring: parseKeyRing(readFileSync(path, 'utf8'), path), created: true, path };
}

export function writeKeyFile(path: string, specs: string[]): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${specs.join('\n')}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export function readKeyFileSpecs(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n').map((s) => s.trim()).filter(Boolean);
}

export interface KeyRingSource {
  current(): KeyRing;
  /** Re-reads the ring (the embedded key file may have gained a key from `warrant keys rotate`). */
  reload?(): KeyRing;
}

export const staticKeyRing = (ring: KeyRing): KeyRingSource => ({ current: () => ring });

/**
 * A ring read from the embedded key file, re-read when the file changes (checked at most once a
 * second), so a running server seals under the new key soon after `warrant keys rotate` writes it.
 */
export function fileKeyRingSource(path: string, checkEveryMs = 1000): KeyRingSource {
  let ring = parseKeyRing(readFileSync(path, 'utf8'), path);
  let mtime = statSync(path).mtimeMs;
  let checkedAt = Date.now();
  const reload = () => {
    ring = parseKeyRing(readFileSync(path, 'utf8'), path);
    mtime = statSync(path).mtimeMs;
    return ring;
  };
  return {
    current() {
      const now = Date.now();
      if (now - checkedAt >= checkEveryMs) {
        checkedAt = now;
        if (statSync(path).mtimeMs !== mtime) reload();
      }
      return ring;
    },
    reload,
  };
}
