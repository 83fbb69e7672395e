// Requests that never reach a route: what Node's HTTP parser refuses (oversized headers, CR or LF
// inside a header value, a malformed request line or chunked body), what Fastify's router refuses
// (a path that is not valid percent-encoded UTF-8, an over-long id), and JSON bodies that are not
// valid UTF-8. Each answers an RFC 9457 problem with code `invalid_request` and the field at fault,
// never an echo of the input (a path or header can carry a secret); the connection that sent a
// request Node could not parse is closed, and the server goes on serving the others.

import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { invalidRequest, WarrantError } from '../errors/index.ts';
import { problemResponse, sendProblem } from './problems.ts';
import { newRequestId } from './request-id.ts';

/** Node's llhttp error codes → the part of the request at fault. */
function parserProblem(err: NodeJS.ErrnoException): WarrantError {
  const code = err.code ?? '';
  if (code === 'HPE_HEADER_OVERFLOW') {
    // RFC 6585 §5.
    return new WarrantError('invalid_request', 'headers: the request line and headers together are larger than the server accepts', { field: 'headers' }, { status: 431 });
  }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new WarrantError('invalid_request', 'the request was not received in time', {}, { status: 408 });
  }
  if (/HPE_INVALID_(METHOD|URL|VERSION|CONSTANT)/.test(code)) return invalidRequest('request_line', 'is not a valid HTTP/1.1 request line');
  if (/HPE_(INVALID_CHUNK_SIZE|INVALID_EOF_STATE|CB_CHUNK|STRICT)/.test(code)) return invalidRequest('body', 'is not valid HTTP/1.1 framing');
  // HPE_INVALID_HEADER_TOKEN, HPE_LF_EXPECTED, HPE_CR_EXPECTED, HPE_UNEXPECTED_CONTENT_LENGTH,
  // HPE_INVALID_TRANSFER_ENCODING, …: a bare CR/LF or NUL in a header, conflicting framing headers.
  return invalidRequest('headers', 'are not valid HTTP/1.1 headers (a control character in a value, or conflicting framing headers)');
}

/**
 * Fastify's `clientErrorHandler`: Node could not parse the request, so there is no request object;
 * the answer is written on the socket as Node's own would be, then the socket is closed (after a
 * parse error the rest of its bytes cannot be trusted to frame another request).
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  // As Node does: only when no answer to an earlier request on this socket is half written.
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const { status, headers, body } = problemResponse(parserProblem(err), newRequestId());
    const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Bad Request'}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    lines.push(`content-length: ${Buffer.byteLength(body)}`, 'connection: close');
    socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
  }
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** Fastify's `frameworkErrors`: the router could not even match the path. */
export function frameworkErrors(err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  let problem: WarrantError;
  if (err.code === 'FST_ERR_BAD_URL') problem = invalidRequest('path', 'is not valid percent-encoded UTF-8');
  else if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    problem = new WarrantError('invalid_request', 'path: a segment is longer than any id Warrant issues', { field: 'path' }, { status: 414 });
  } else problem = new WarrantError('invalid_request', 'the request could not be routed', {});
  void sendProblem(reply, problem);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * Fastify's own JSON parser (same prototype-poisoning rules), fed only valid UTF-8: by default a
 * body's invalid bytes would become U+FFFD and be stored as if the client had sent them.
 */
export function installStrictJsonParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    let text: string;
    try {
      text = strictUtf8.decode(body as Buffer);
    } catch {
      done(invalidRequest('body', 'is not valid UTF-8'), undefined);
      return;
    }
    parse(request, text, done);
  });
}
