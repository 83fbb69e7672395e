// A browser's cookie jar reduced to what an IdP and Warrant's connect flow rely on: per origin,
// with paths and deletions. Used where code plays the owner's browser (the sandbox's automation,
// `warrant demo`).

interface Cookie {
  name: string;
  value: string;
  path: string;
}

/** Cookies per origin, with their paths and deletions: all the IdP and Warrant rely on. */
export class CookieJar {
  private readonly byOrigin = new Map<string, Map<string, Cookie>>();

  store(url: URL, setCookies: string[]): void {
    let jar = this.byOrigin.get(url.origin);
    if (!jar) this.byOrigin.set(url.origin, (jar = new Map()));
    for (const line of setCookies) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = url.pathname.replace(/\/[^/]*$/, '') || '/';
      let gone = value === '';
      for (const attr of attrs) {
        const [k = '', v = ''] = attr.split('=').map((s) => s.trim());
        const key = k.toLowerCase();
        if (key === 'path' && v.startsWith('/')) path = v;
        if (key === 'max-age' && Number(v) <= 0) gone = true;
        if (key === 'expires' && Date.parse(v) <= Date.now()) gone = true;
      }
      if (gone) jar.delete(`${name};${path}`);
      else jar.set(`${name};${path}`, { name, value, path });
    }
  }

  header(url: URL): string {
    const p = url.pathname;
    return [...(this.byOrigin.get(url.origin)?.values() ?? [])]
      .filter((c) => p === c.path || p.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}
