// Reading the hosted connect page as a browser does: its forms' actions and hidden fields, and
// the cookie the page sets (the CSRF token that the form's must equal).

export interface PageForm {
  action: string;
  fields: Record<string, string>;
}

const unescape = (s: string) => s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

/** The `continue` or `cancel` form of a connect page, or undefined when the page has none. */
export function pageForm(html: string, which: 'continue' | 'cancel' = 'continue'): PageForm | undefined {
  const m = new RegExp(`<form method="post" action="([^"]*/${which})">([\\s\\S]*?)</form>`).exec(html);
  if (!m) return undefined;
  const fields: Record<string, string> = {};
  for (const [, name, value] of m[2]!.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) fields[name!] = unescape(value!);
  return { action: unescape(m[1]!), fields };
}

/** `name=value` pairs of `Set-Cookie` headers, for a `Cookie` header. */
export function cookiePairs(setCookie: string | string[] | undefined): string[] {
  return [setCookie ?? []].flat().map((c) => c.split(';')[0]!);
}
