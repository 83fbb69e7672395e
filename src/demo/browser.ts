// The owner's browser in the connect flow: follows the redirects from Warrant's link to the IdP
// and back, keeping each site's cookies (Warrant binds the session to this browser by one, the
// IdP keeps its login and interaction in others), as a real browser would.
import { CookieJar } from '../util/cookie-jar.ts';

export interface Hop {
  method: string;
  /** Origin and path only: queries carry codes and states. */
  where: string;
  status: number;
}

export interface Visit {
  hops: Hop[];
  /** The last page's status and its text without tags. */
  status: number;
  text: string;
}

const maxHops = 15;

/** Opens `start` and follows every redirect (GET, as after a 302/303) to the first page that is not one. */
export async function visit(start: string, onHop: (hop: Hop) => void = () => {}): Promise<Visit> {
  const jar = new CookieJar();
  const hops: Hop[] = [];
  let url = new URL(start);
  for (let n = 0; n < maxHops; n++) {
    const cookie = jar.header(url);
    const res = await fetch(url, { redirect: 'manual', headers: { accept: 'text/html', ...(cookie ? { cookie } : {}) }, signal: AbortSignal.timeout(15_000) });
    jar.store(url, res.headers.getSetCookie());
    const hop = { method: 'GET', where: `${url.origin}${url.pathname}`, status: res.status };
    hops.push(hop);
    onHop(hop);
    const location = res.headers.get('location');
    if (res.status < 300 || res.status > 399 || !location) {
      const text = (await res.text())
        .replace(/<head[\s\S]*?<\/head>|<(style|script)[^>]*>[\s\S]*?<\/\1>/gi, ' ')
        .replace(/<[^>]+>/g, ' ')
        .replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
        .replace(/\s+/g, ' ')
        .trim();
      return { hops, status: res.status, text };
    }
    await res.body?.cancel();
    url = new URL(location, url);
  }
  throw new Error(`the connect flow did not end within ${maxHops} redirects`);
}
