// Several API hosts per environment (Dropbox's content host, QuickBooks payments): which one a
// proxied call goes to, and where under it. The agent names a host with `Warrant-Api-Host: <key>`
// (a `Warrant-*` header: never forwarded), or its path, relative to the main API, starts with one
// of exactly one host's `paths`. The path is then joined to that host's base exactly as to the
// main one (target.ts), so every host has the same SSRF guard; its scope rules are the ones that
// name it (`host:`), the main host's those that name none.

import { invalidRequest, isWarrantError, type WarrantError } from '../errors/index.ts';
import type { ProviderEnvironment } from '../providers/index.ts';
import { globSegments, pathSegments, type PathSegment } from './policy.ts';
import { resolveTargetWithPath } from './target.ts';

export const API_HOST_HEADER = 'warrant-api-host';

export type ApiHosts = NonNullable<ProviderEnvironment['api_hosts']>;

/** The API bases of one connection: the main one filled, each other one filled when first used. */
export interface ApiBases {
  main: string;
  hosts: ApiHosts;
  /** Whether `hosts` has any entry (checked on every call). */
  hasHosts: boolean;
  /**
   * The filled base URL of host `key` (undefined: the main one). Throws `conflict` naming the
   * param when the connection's value does not fit the template (as the main base would).
   */
  baseOf(key: string | undefined): string;
}

export function createApiBases(main: string, hosts: ApiHosts | undefined, fill: (template: string) => string): ApiBases {
  const filled = new Map<string, string | WarrantError>();
  const all = hosts ?? {};
  return {
    main,
    hosts: all,
    hasHosts: Object.keys(all).length > 0,
    baseOf(key) {
      if (key === undefined) return main;
      let base = filled.get(key);
      if (base === undefined) {
        try {
          base = fill(all[key]!.base_url);
        } catch (err) {
          if (!isWarrantError(err)) throw err;
          base = err;
        }
        filled.set(key, base);
      }
      if (typeof base !== 'string') throw base;
      return base;
    },
  };
}

/** Whether `segments` begin with the whole segments of `prefix` (`/files/download` is not a prefix of `/files/downloads`). */
function startsWithSegments(segments: readonly PathSegment[], prefix: readonly string[]): boolean {
  return prefix.length <= segments.length && prefix.every((p, i) => segments[i] === p);
}

/**
 * The key of the host a call goes to, or undefined for the main API. `named` is the agent's
 * `Warrant-Api-Host` header; without one, `path` (relative to the main API, still
 * percent-encoded) picks the one host whose `paths` it starts with. Throws `invalid_request`
 * naming the header for an unknown key, a repeated header, or a path several hosts claim.
 */
export function chooseApiHost(hosts: ApiHosts, named: string | string[] | undefined, path: string): string | undefined {
  const known = Object.keys(hosts);
  if (named !== undefined) {
    const key = Array.isArray(named) ? undefined : named.trim();
    if (key === undefined) throw invalidRequest(API_HOST_HEADER, 'Warrant-Api-Host is given more than once');
    if (Object.hasOwn(hosts, key)) return key;
    throw invalidRequest(API_HOST_HEADER, `Warrant-Api-Host names no API host of this connection (${known.length ? `known: ${known.join(', ')}` : 'it has only its main API'})`);
  }
  if (!known.length) return undefined;
  const segments = pathSegments(path);
  const claimed = known.filter((key) => (hosts[key]!.paths ?? []).some((prefix) => startsWithSegments(segments, globSegments(prefix))));
  if (claimed.length > 1) {
    throw invalidRequest(API_HOST_HEADER, `the path is under the paths of several API hosts (${claimed.join(', ')}); name one with Warrant-Api-Host`);
  }
  return claimed[0];
}

export interface Route {
  /** The API host key; undefined for the main API. */
  host?: string;
  /** The filled base URL of that host. */
  baseUrl: string;
  url: URL;
  /** The path relative to that base, as forwarded: what the scope rules are checked against. */
  path: string;
}

/** Where a proxied call goes: its host (see `chooseApiHost`) and the URL under it (`resolveTargetWithPath`). */
export function routeCall(bases: ApiBases, rawPath: string, rawQuery: string, named: string | string[] | undefined): Route {
  const main = resolveTargetWithPath(bases.main, rawPath, rawQuery);
  if (named === undefined && !bases.hasHosts) return { baseUrl: bases.main, url: main.url, path: main.path };
  const host = chooseApiHost(bases.hosts, named, main.path);
  if (host === undefined) return { baseUrl: bases.main, url: main.url, path: main.path };
  const baseUrl = bases.baseOf(host);
  const target = resolveTargetWithPath(baseUrl, rawPath, rawQuery);
  return { host, baseUrl, url: target.url, path: target.path };
}
