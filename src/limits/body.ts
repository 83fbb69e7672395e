import { Readable } from 'node:stream';
import { WarrantError } from '../errors/index.ts';

// Bounds on an agent's request body on the raw proxy route, where Fastify's own limits do not
// apply: at most `limitBytes`, and never idle for `idleTimeoutMs` while Warrant waits for it.

export interface BodyLimits {
  limitBytes: number;
  idleTimeoutMs: number;
}

export const bodyTooLarge = (limitBytes: number) =>
  new WarrantError('payload_too_large', `the request body is larger than ${limitBytes} bytes`, { limit_bytes: limitBytes });

/** A body whose bytes stopped arriving: 408, as Node answers a request not received in time. */
export const bodyIdle = (idleTimeoutMs: number) =>
  new WarrantError('invalid_request', `body: no bytes arrived for ${idleTimeoutMs} ms`, { field: 'body' }, { status: 408 });

const bodyCutOff = () => new WarrantError('invalid_request', 'body: the client stopped sending it', { field: 'body' });

/**
 * The request body as a stream that fails with `payload_too_large` past the limit and with a 408
 * `invalid_request` when no bytes arrive for the idle timeout *while its reader waits for them*:
 * time the reader spends elsewhere (a token refresh, a slow upstream applying backpressure) is not
 * the client's idleness. `failure` keeps the error, for the answer, when a reader hides it.
 */
export class GuardedBody extends Readable {
  failure: WarrantError | undefined;
  private bytes = 0;
  private waiting = false;
  private ended = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly src: Readable,
    private readonly limits: BodyLimits,
  ) {
    super();
    src.on('readable', this.onReadable);
    src.on('end', this.onEnd);
    src.on('error', this.onError);
    src.on('close', this.onClose);
  }

  override _read(): void {
    this.pull();
  }

  private pull(): void {
    for (;;) {
      const chunk = this.src.read() as Buffer | null;
      if (chunk === null) {
        if (!this.ended) this.wait();
        return;
      }
      this.bytes += chunk.length;
      if (this.bytes > this.limits.limitBytes) return this.fail(bodyTooLarge(this.limits.limitBytes));
      if (!this.push(chunk)) return this.stopWaiting();
    }
  }

  private wait(): void {
    this.waiting = true;
    if (this.timer) this.timer.refresh();
    else this.timer = setTimeout(this.onIdle, this.limits.idleTimeoutMs);
  }

  private stopWaiting(): void {
    this.waiting = false;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private readonly onReadable = () => {
    if (!this.waiting) return;
    this.stopWaiting();
    this.pull();
  };

  private readonly onEnd = () => {
    this.ended = true;
    this.stopWaiting();
    this.push(null);
  };

  private readonly onIdle = () => {
    this.timer = undefined;
    if (this.waiting && !this.ended) this.fail(bodyIdle(this.limits.idleTimeoutMs));
  };

  private readonly onError = () => this.fail(bodyCutOff());

  private readonly onClose = () => {
    if (!this.ended) this.fail(bodyCutOff());
  };

  private fail(err: WarrantError): void {
    if (this.failure || this.destroyed) return;
    this.failure = err;
    this.destroy(err);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.stopWaiting();
    this.src.off('readable', this.onReadable);
    this.src.off('end', this.onEnd);
    this.src.off('close', this.onClose);
    // An error listener stays: a late socket error must not become an uncaught exception.
    callback(err);
  }
}
