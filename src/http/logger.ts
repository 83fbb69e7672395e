import pino, { type Logger, type LoggerOptions } from 'pino';
import pretty from 'pino-pretty';

// Anything that may carry a secret is censored wherever it appears in a log object.
export const redactPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.client_secret',
  '*.private_key',
  '*.client_private_key',
  '*.api_key',
  '*.code_verifier',
  '*.password',
  '*.secret',
  '*.token',
  'access_token',
  'refresh_token',
  'client_secret',
  'private_key',
  'api_key',
  'token',
];

// Query values may be codes, states or tokens: log the keys only.
export function safeUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const keys = [...new URLSearchParams(url.slice(q + 1)).keys()];
  return `${url.slice(0, q)}?${keys.map((k) => `${k}=…`).join('&')}`;
}

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: { paths: redactPaths, censor: '[redacted]' },
    serializers: {
      req: (req: { method: string; url: string; id: string }) => ({ id: req.id, method: req.method, url: safeUrl(req.url) }),
      res: (res: { statusCode: number }) => ({ status: res.statusCode }),
      err: pino.stdSerializers.err,
    },
  };
}

export interface LoggerSettings {
  /** `pretty`: human-readable lines; `json`: one JSON object a line. Unset: pretty on a TTY. */
  format?: 'json' | 'pretty';
  destination?: pino.DestinationStream;
  isTty?: boolean;
}

/** Redaction applies before formatting, so a pretty line hides the same fields as a JSON one. */
export function createLogger(level: string, settings: LoggerSettings = {}): Logger {
  const format = settings.format ?? ((settings.isTty ?? process.stdout.isTTY) ? 'pretty' : 'json');
  if (format === 'pretty') {
    const stream = pretty({
      colorize: settings.destination ? false : undefined,
      destination: settings.destination ?? 1,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
      sync: true,
    });
    return pino(loggerOptions(level), stream);
  }
  return settings.destination ? pino(loggerOptions(level), settings.destination) : pino(loggerOptions(level));
}
