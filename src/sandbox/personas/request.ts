import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyError, readBody, sendEmpty, sendJson } from '../http.ts';
import type { Answer, ClientAuth } from './types.ts';

// Reading a persona request (form or JSON body, client credentials) and sending its answers.

export interface ParsedBody {
  /** `form`, `json`, or `other` (anything else, or no body). */
  format: 'form' | 'json' | 'other';
  contentType?: string;
  params: Record<string, string>;
  raw: string;
}

export async function parseBody(req: IncomingMessage): Promise<ParsedBody> {
  const raw = await readBody(req);
  const contentType = req.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
  if (contentType === 'application/x-www-form-urlencoded') {
    return { format: 'form', contentType, params: Object.fromEntries(new URLSearchParams(raw)), raw };
  }
  if (contentType === 'application/json' || contentType?.endsWith('+json')) {
    let value: unknown;
    try {
      value = raw.trim() === '' ? {} : JSON.parse(raw);
    } catch {
      throw new BodyError('request body is not valid JSON');
    }
    const params: Record<string, string> = {};
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) if (typeof v === 'string' || typeof v === 'number') params[k] = String(v);
    }
    return { format: 'json', contentType, params, raw };
  }
  return { format: 'other', contentType, params: {}, raw };
}

export interface PresentedClient {
  auth: ClientAuth;
  clientId?: string;
  secret?: string;
}

/** The client credentials a request carries: HTTP Basic (RFC 6749 §2.3.1, form-encoded parts) or body members. */
export function presentedClient(req: IncomingMessage, body: ParsedBody): PresentedClient {
  const basic = /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(req.headers.authorization ?? '')?.[1];
  if (basic) {
    const text = Buffer.from(basic, 'base64').toString('utf8');
    const colon = text.indexOf(':');
    const decode = (s: string) => {
      try {
        return decodeURIComponent(s.replace(/\+/g, ' '));
      } catch {
        return s;
      }
    };
    if (colon > 0) return { auth: 'basic', clientId: decode(text.slice(0, colon)), secret: decode(text.slice(colon + 1)) };
  }
  const { client_id: clientId, client_secret: secret } = body.params;
  if (secret !== undefined) return { auth: body.format === 'json' ? 'json' : 'post', clientId, secret };
  return { auth: 'none', clientId };
}

/** The bearer token; any visible characters, as providers' tokens go beyond RFC 6750's b64token (Salesforce's `!`). */
export function bearerOf(req: IncomingMessage): string | undefined {
  return /^Bearer +([\x21-\x7e]+) *$/i.exec(req.headers.authorization ?? '')?.[1];
}

export function send(res: ServerResponse, answer: Answer): void {
  if (answer.body === undefined) sendEmpty(res, answer.status, answer.headers);
  else sendJson(res, answer.status, answer.body, answer.headers);
}

/** A flat object as `application/x-www-form-urlencoded` (GitHub's default token answer). */
export function sendForm(res: ServerResponse, status: number, body: Record<string, unknown>): void {
  const text = new URLSearchParams(
    Object.entries(body)
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => [k, String(v)]),
  ).toString();
  res.writeHead(status, { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** `*` one segment, `**` any rest, `{name}` one segment captured. */
export function compilePattern(pattern: string): { re: RegExp; names: string[] } {
  const names: string[] = [];
  const source = pattern
    .split('/')
    .map((seg) => {
      if (seg === '**') return '.*';
      return seg
        .split(/(\{[a-z_]+\}|\*)/)
        .map((part) => {
          if (part === '*') return '[^/]+';
          const m = /^\{([a-z_]+)\}$/.exec(part);
          if (m) {
            names.push(m[1]!);
            return '([^/]+)';
          }
          return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        })
        .join('');
    })
    .join('/')
    .replace(/\/\.\*$/, '(?:/.*)?');
  return { re: new RegExp(`^${source}$`), names };
}
