// An upstream redirect handed back to the agent. The proxy never follows one, so a redirect to
// another host reaches nobody with the connection's token; one back into an API base of the
// connection is rewritten to go through the proxy again, where its path and policy are judged
// anew.

import { chooseApiHost, type ApiBases } from './hosts.ts';
import { scrubText } from './scrub.ts';

/**
 * Scrubs the injected credential from `Location`, and rewrites a location inside one of the
 * connection's API bases to `/v1/proxy/{connection}/…` when that proxy path would be routed to
 * the same host again without a `Warrant-Api-Host` header. Anything else is left as it is.
 */
export function rewriteLocation(headers: Record<string, string | string[]>, bases: ApiBases, connectionId: string, injected: string): void {
  if (typeof headers.location !== 'string') return;
  const location = (headers.location = scrubText(headers.location, injected));
  for (const key of [undefined, ...Object.keys(bases.hosts)]) {
    try {
      const base = new URL(bases.baseOf(key));
      const to = new URL(location, base);
      const basePath = base.pathname.replace(/\/+$/, '');
      if (to.origin !== base.origin || !(to.pathname === basePath || to.pathname.startsWith(`${basePath}/`))) continue;
      const path = to.pathname.slice(basePath.length) || '/';
      if (chooseApiHost(bases.hosts, undefined, path) !== key) continue;
      headers.location = `/v1/proxy/${connectionId}${path}${to.search}`;
      return;
    } catch {
      // not a URL, a host whose base cannot be filled, or a path several hosts claim: leave it
    }
  }
}
