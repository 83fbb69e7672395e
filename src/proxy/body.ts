import { Readable } from 'node:stream';

/**
 * Reads up to `limit` bytes of a stream. When it ends within the limit the whole body is returned
 * as a buffer (replayable: retries can send it again); otherwise a stream that yields what was read
 * and then the rest, for a single pass.
 */
export async function readUpTo(
  stream: Readable,
  limit: number,
  /** The declared length, when known: a body that fits is read in one go, without an iterator. */
  declaredLength = NaN,
): Promise<{ complete: true; buffer: Buffer } | { complete: false; stream: Readable }> {
  if (declaredLength <= limit && typeof (stream as { arrayBuffer?: unknown }).arrayBuffer === 'function') {
    return { complete: true, buffer: Buffer.from(await (stream as unknown as { arrayBuffer(): Promise<ArrayBuffer> }).arrayBuffer()) };
  }
  const chunks: Buffer[] = [];
  let size = 0;
  const iterator = stream[Symbol.asyncIterator]();
  for (;;) {
    const { value, done } = await iterator.next();
    if (done) return { complete: true, buffer: Buffer.concat(chunks, size) };
    const chunk = Buffer.isBuffer(value) ? value : Buffer.from(value as Uint8Array);
    chunks.push(chunk);
    size += chunk.length;
    if (size > limit) {
      return {
        complete: false,
        stream: Readable.from(
          (async function* () {
            yield* chunks;
            for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value as Buffer;
          })(),
          { objectMode: false },
        ),
      };
    }
  }
}

/** Drains and discards a body, so its connection goes back to the pool. */
export async function discard(stream: Readable | undefined): Promise<void> {
  if (!stream) return;
  try {
    for await (const _ of stream) {
      // discard
    }
  } catch {
    // a broken body is as good as a discarded one
  }
}
