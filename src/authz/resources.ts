// Which resource indicators (RFC 8707) Warrant's authorization server issues tokens for: its own
// API (`{public}/v1`) and MCP server (`{public}/mcp/warrant`). Later layers add theirs with `add()`:
// the MCP gateway adds `{public}/mcp/{name}` for each server registered.

/** A resource Warrant serves: the scopes a token for it may carry. */
export interface ResourceInfo {
  /** The canonical indicator: the token's `aud`. */
  resource: string;
  scopes: string[];
}

export type ResourceMatcher = (url: URL, publicUrl: string) => ResourceInfo | undefined;

const MCP_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Scopes of the built-in resources. */
export const builtInScopes = {
  api: ['warrant:api'],
  mcp: ['mcp'],
  /** Warrant's own MCP server (`{public}/mcp/warrant`): one scope per kind of tool (src/mcp/caller.ts). */
  warrantMcp: ['warrant:read', 'warrant:call', 'warrant:request'],
} as const;

/** `{public}/v1` and `{public}/mcp/warrant`. */
export const warrantResources: ResourceMatcher = (url, publicUrl) => {
  const base = new URL(publicUrl);
  if (url.origin !== base.origin) return undefined;
  const prefix = base.pathname.replace(/\/+$/, '');
  if (!url.pathname.startsWith(`${prefix}/`)) return undefined;
  const path = url.pathname.slice(prefix.length).replace(/\/+$/, '');
  if (path === '/v1') return { resource: `${base.origin}${prefix}/v1`, scopes: [...builtInScopes.api] };
  if (path === '/mcp/warrant') return { resource: `${base.origin}${prefix}/mcp/warrant`, scopes: [...builtInScopes.warrantMcp] };
  return undefined;
};

/**
 * `{public}/mcp/{name}` for the names `isServer` knows (the MCP gateway's registered servers): no
 * token is issued for an endpoint nothing serves.
 */
export function mcpServerResources(isServer: (name: string) => boolean): ResourceMatcher {
  return (url, publicUrl) => {
    const base = new URL(publicUrl);
    if (url.origin !== base.origin) return undefined;
    const prefix = base.pathname.replace(/\/+$/, '');
    const m = /^\/mcp\/([^/]+)\/?$/.exec(url.pathname.slice(prefix.length));
    if (!url.pathname.startsWith(`${prefix}/`) || !m || !MCP_NAME.test(m[1]!) || !isServer(m[1]!)) return undefined;
    return { resource: `${base.origin}${prefix}/mcp/${m[1]}`, scopes: [...builtInScopes.mcp] };
  };
}

/** Parses an indicator as RFC 8707 §2 wants it: an absolute URI, no fragment; no query either here. */
function parseIndicator(indicator: string): URL | undefined {
  if (indicator.includes('#')) return undefined;
  let url: URL;
  try {
    url = new URL(indicator); // not URL.parse: Node 20
  } catch {
    return undefined;
  }
  if ( (url.protocol !== 'https:' && url.protocol !== 'http:') || url.search || url.username || url.password) return undefined;
  return url;
}

export function createResources(publicUrl: () => string) {
  const matchers: ResourceMatcher[] = [warrantResources];
  return {
    /** Adds a kind of resource (first match wins, built-ins first). */
    add(matcher: ResourceMatcher): void {
      matchers.push(matcher);
    },
    /** The resource an indicator names, or undefined when Warrant issues no token for it. */
    resolve(indicator: string): ResourceInfo | undefined {
      const url = parseIndicator(indicator);
      if (!url) return undefined;
      for (const m of matchers) {
        const info = m(url, publicUrl());
        if (info) return info;
      }
      return undefined;
    },
    isKnownResource(indicator: string): boolean {
      return this.resolve(indicator) !== undefined;
    },
  };
}

export type Resources = ReturnType<typeof createResources>;
