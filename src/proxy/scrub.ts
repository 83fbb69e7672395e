// The credential Warrant injected must never travel back to the agent: an upstream may echo it
// in an error body ("invalid token abc…"), or in a redirect's query when the token is sent as a
// query parameter. Whatever Warrant itself reads of an answer (buffered bodies, problem details,
// `Location`) is scrubbed; bodies streamed through unread are the upstream's business.

const REDACTED = '[redacted]';

/** The forms in which `secret` may appear in text: as is, and percent-encoded (query strings). */
function formsOf(secret: string): string[] {
  const forms = new Set([secret, encodeURIComponent(secret), encodeURIComponent(secret).replaceAll('%20', '+')]);
  return [...forms].filter((f) => f.length >= 8);
}

export function scrubText(text: string, secret: string): string {
  let out = text;
  for (const form of formsOf(secret)) if (out.includes(form)) out = out.replaceAll(form, REDACTED);
  return out;
}

/** A buffered body, rewritten only when it holds the secret (the common case costs one search). */
export function scrubBuffer(body: Buffer, secret: string): Buffer {
  if (!formsOf(secret).some((f) => body.includes(f))) return body;
  return Buffer.from(scrubText(body.toString('utf8'), secret));
}
