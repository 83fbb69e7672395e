import { EventEmitter } from 'node:events';

/**
 * Tells the forwarder that the agent closed its connection before the answer. It speaks undici's
 * signal protocol (an emitter of 'abort'), so the upstream call in flight is abandoned at once
 * instead of holding a socket, a limit permit and the shutdown drain until the upstream answers.
 */
export class ClientGone extends EventEmitter {
  gone = false;

  leave(): void {
    if (this.gone) return;
    this.gone = true;
    this.emit('abort');
  }
}
