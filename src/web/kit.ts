import type { Api } from './api.ts';
import type { SafeHtml } from './html.ts';
import type { PageContext } from './layout.ts';

/** What a dashboard handler gets: the query and form as sent, the route's params, the API as the signed-in credential. */
export interface UiRequest {
  params: Record<string, string>;
  query: URLSearchParams;
  /** The urlencoded form of a POST (empty for GET). */
  form: URLSearchParams;
  api: Api;
  ctx: PageContext;
}

/** A page, a redirect after a POST (303), or a page with its own status. */
export type UiResult = SafeHtml | { redirect: string } | { status: number; page: SafeHtml };

export type UiHandler = (req: UiRequest) => Promise<UiResult>;

/** How page modules declare their routes (routes.ts adds the session, CSRF and headers). */
export interface Ui {
  get(path: string, handler: UiHandler): void;
  post(path: string, handler: UiHandler): void;
}

/** A trimmed form or query value; empty → undefined. */
export function field(p: URLSearchParams, name: string): string | undefined {
  const v = p.get(name)?.trim();
  return v ? v : undefined;
}

/** Space- or comma-separated words (scopes, events). */
export const words = (v: string | undefined): string[] => (v ?? '').split(/[\s,]+/).filter(Boolean);

/** `/v1/x?…` from the named values present in `p`. */
export function apiQuery(path: string, p: URLSearchParams, names: readonly string[], extra: Record<string, string> = {}): string {
  const q = new URLSearchParams();
  for (const n of names) {
    const v = field(p, n);
    if (v !== undefined) q.set(n, v);
  }
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export const enc = encodeURIComponent;
