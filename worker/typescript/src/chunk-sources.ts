// chunk-sources.ts — where a chunk sender reads the bytes of one stream, read again from an
// earlier offset when the receiver asks it to go back (PROTOCOL.md §7.9 Resumption, R9/R10).
// Owns: the three kinds of source: bytes in memory and files (seekable: any offset is read
// again), and a stream that cannot seek (a Readable / AsyncIterable), which keeps a copy of the
// last RESUME_KEEP_BYTES it gave and can go back only that far.
// Must never: give other bytes for an offset than the first time (a stream's kept bytes are
// copies, so a producer reusing its buffer changes nothing); keep more than RESUME_KEEP_BYTES of
// a stream; read a stream ahead of what the sender asks (the sender reads within its credit).
import * as fs from 'node:fs';

/** How much of a stream that cannot seek a sender keeps, to send it again (PROTOCOL.md §7.9 `kResumeKeepBytes`). */
export const RESUME_KEEP_BYTES = 16 * 1024 * 1024;

/** Reads a value's bytes in order, in pieces of at most `max` bytes (at least 1); null at the end. */
export interface PieceReader {
  read(max: number): Promise<Uint8Array | null>;
  close(): Promise<void>;
}

/** A resume Credit asked for bytes the source can no longer give. */
export class ResumeError extends Error {}

/**
 * The bytes of one stream by offset. `readAt(offset, max)` gives at most `max` bytes from
 * `offset` (null at the end of the value); `offset` is at most `end`, the number of bytes read so
 * far (a sender never asks past what it sent plus the next piece). Throws ResumeError when the
 * bytes at `offset` cannot be had again.
 */
export interface ChunkSource {
  readAt(offset: number, max: number): Promise<Uint8Array | null>;
  close(): Promise<void>;
}

/** Bytes in memory: any offset, no copy. */
export function bytesSource(bytes: Uint8Array): ChunkSource {
  return {
    readAt: async (offset, max) => (offset >= bytes.length ? null : bytes.subarray(offset, Math.min(bytes.length, offset + max))),
    close: async () => undefined,
  };
}

/** A file, read with positioned reads (any offset again); opened at the first read. */
export function fileSource(filePath: string): ChunkSource {
  let handle: Promise<fs.promises.FileHandle> | null = null;
  let closed = false;
  return {
    readAt: async (offset, max) => {
      if (closed) return null;
      handle ??= fs.promises.open(filePath, 'r');
      const h = await handle;
      const buf = Buffer.allocUnsafe(Math.max(1, max));
      const { bytesRead } = await h.read(buf, 0, buf.length, offset);
      if (bytesRead === 0) return null;
      return bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    },
    close: async () => {
      closed = true;
      const h = handle;
      handle = null;
      await h?.then((x) => x.close()).catch(() => undefined);
    },
  };
}

/**
 * A stream that cannot seek: read in order from `reader`, keeping copies of the last `keep`
 * bytes it gave (in the pieces it gave them). An offset before those fails with ResumeError.
 */
export function keptSource(reader: PieceReader, keep = RESUME_KEEP_BYTES): ChunkSource {
  const kept: { offset: number; data: Uint8Array }[] = [];
  let keptBytes = 0;
  let end = 0; // bytes read from the reader so far
  let ended = false;
  return {
    readAt: async (offset, max) => {
      if (offset < end) {
        const first = kept[0];
        if (!first || offset < first.offset) {
          throw new ResumeError(
            `a stream that cannot seek keeps only the last ${keep} bytes sent (from offset ${first?.offset ?? end} on), not from offset ${offset}`,
          );
        }
        // the kept piece holding `offset` (pieces are in order, without gaps)
        let i = kept.length - 1;
        while (kept[i]!.offset > offset) i -= 1;
        const piece = kept[i]!;
        const from = offset - piece.offset;
        return piece.data.subarray(from, Math.min(piece.data.length, from + max));
      }
      if (ended) return null;
      const fresh = await reader.read(max);
      if (!fresh) {
        ended = true;
        return null;
      }
      const copy = Uint8Array.from(fresh);
      kept.push({ offset: end, data: copy });
      keptBytes += copy.length;
      end += copy.length;
      // drop the oldest pieces while the rest still holds `keep` bytes
      while (kept.length > 1 && keptBytes - kept[0]!.data.length >= keep) keptBytes -= kept.shift()!.data.length;
      return copy;
    },
    close: () => reader.close(),
  };
}
