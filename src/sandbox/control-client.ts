// A client for a running sandbox's /_sandbox controls (control.ts), for `warrant sandbox revoke|…`
// and `warrant demo`. Light on purpose: it loads nothing of the IdP.

const timeoutMs = 10_000;

/** Calls one control of the sandbox at `sandboxUrl` (its origin); answers its JSON body, or throws an Error whose message is fit for stderr. */
export async function callSandboxControl<T>(sandboxUrl: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const base = URL.parse(sandboxUrl);
  if (!base || (base.protocol !== 'http:' && base.protocol !== 'https:')) throw new Error(`the sandbox URL must be an http(s) URL, not ${JSON.stringify(sandboxUrl)} (--sandbox-url)`);
  const url = `${base.origin}/_sandbox${path}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const c = (err as { cause?: { code?: string; message?: string } }).cause;
    const cause = c?.code ?? c?.message ?? (err as Error).message;
    throw new Error(`could not reach the sandbox at ${base.origin} (${cause}); is \`warrant sandbox\` running there? (--sandbox-url)`);
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const e = parsed as { error?: string; error_description?: string } | undefined;
    throw new Error(`the sandbox answered ${res.status}${e?.error ? ` ${e.error}` : ''}${e?.error_description ? `: ${e.error_description}` : ''}`);
  }
  return parsed as T;
}
