// builder-pool.ts — one spare flatbuffers Builder that the encoders reuse: a new Builder costs a
// zeroed buffer, a TextEncoder and its vtable bookkeeping, per message.
// Owns: the spare, and the rule for giving one back (finished, its buffer at most KEEP_BYTES).
// Must never: hand out a builder that is in use (taking one leaves no spare until it is given
// back, so a nested encoding gets a new one, and an encoder that throws midway just drops its
// builder), or keep a large message's buffer alive.
import * as flatbuffers from 'flatbuffers';

/** The largest buffer kept for reuse; a builder grown past it is left to the GC. */
export const KEEP_BYTES = 64 * 1024;

let spare: flatbuffers.Builder | null = null;

/** A cleared builder with room for at least `initialSize` bytes: the spare, or a new one. */
export function takeBuilder(initialSize: number): flatbuffers.Builder {
  const b = spare;
  if (b !== null && b.dataBuffer().capacity() >= initialSize) {
    spare = null;
    b.clear();
    return b;
  }
  return new flatbuffers.Builder(initialSize);
}

/** Finishes `b` with `root`, returns a copy of its bytes, and keeps `b` as the spare. */
export function finishBuilder(b: flatbuffers.Builder, root: flatbuffers.Offset, identifier?: string): Uint8Array {
  b.finish(root, identifier);
  const bytes = b.asUint8Array().slice();
  if (b.dataBuffer().capacity() <= KEEP_BYTES) spare = b;
  return bytes;
}
