// chunks.ts — chunked bytes values (PROTOCOL.md §7.9, docs/STREAMS.md §3), the building blocks
// both halves of the SDK use: the client for its inputs (odd streams) and outputs, the worker for
// its inputs and outputs (even streams).
// Owns: the sizes (1 MiB chunks, a 4 MiB receive window, an 8 MiB default threshold, the 2 s
// `resume_after`), the byte sources a value may come from (bytes, a file, a Readable /
// AsyncIterable<Uint8Array>; read again for a resume: chunk-sources.ts), one stream's sender
// (ChunkSender: chunks within the receiver's credit, size and sha256 counted while sending, back
// to a resume Credit's offset) and receiver (ChunkReceiver: bytes taken in order, overlaps
// trimmed, gaps and stalls answered with resume Credits, size and sha256 checked at the end,
// credit granted as the application consumes), and the consumers a receiver feeds (in memory, a
// sink, a Readable for a handler).
// Must never: send past the credit (strict: offset + n <= granted); hash a byte twice (a resend
// is not hashed again); grant credit for bytes the application has not consumed (except when
// assembling in memory, where receipt is consumption); hand a consumer a byte twice, or the
// clean end of a value whose size or sha256 is wrong; leave a file handle, a spool file or a
// timer behind.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, type Writable } from 'node:stream';

import { type ChunkSource, type PieceReader, ResumeError, bytesSource, fileSource, keptSource } from './chunk-sources';

export { type ChunkSource, type PieceReader, RESUME_KEEP_BYTES, ResumeError, bytesSource, fileSource, keptSource } from './chunk-sources';

/** Bytes per Chunk message. */
export const CHUNK_BYTES = 1024 * 1024;
/** The credit window a receiver grants per stream. */
export const CHUNK_WINDOW_BYTES = 4 * 1024 * 1024;
/** Bytes values larger than this travel chunked (ClientOptions / WorkerOptions `chunkThreshold`). */
export const DEFAULT_CHUNK_THRESHOLD = 8 * 1024 * 1024;
/** How long a receiver waits for a chunk it granted before it sends a resume Credit (PROTOCOL.md §7.9 R3 `resume_after`). */
export const RESUME_AFTER_MS = 2000;
/** Streams with chunks per side and call (PROTOCOL.md §7.9 `kMaxChunkStreams`). */
export const MAX_CHUNK_STREAMS = 16;

/**
 * A bytes value given as a stream rather than in memory: a file, or a Readable /
 * AsyncIterable<Uint8Array>. As a client input, its size and sha256 must be known before the
 * Submit: a file is hashed first in one streaming pass; a stream is spooled to a temporary file
 * while it is hashed (bounded memory), unless `known` gives its size and sha256 (it is then sent
 * as it is read, and a stream that does not give exactly `size` bytes fails the call). As a
 * handler's output, a stream is sent as it is read (size and sha256 computed while sending).
 */
export class ByteSource {
  private constructor(
    readonly file: string | null,
    readonly stream: AsyncIterable<Uint8Array> | null,
    readonly known: { size: number; sha256: Uint8Array } | null,
  ) {}

  /** The bytes of the file at `filePath`, read when they are sent. */
  static file(filePath: string): ByteSource {
    if (typeof filePath !== 'string' || filePath === '') throw new TypeError('ByteSource.file needs a path');
    return new ByteSource(filePath, null, null);
  }

  /** The bytes a Readable or async iterable gives. `known`: their size and sha256 (32 bytes or 64 hex digits), if known. */
  static stream(source: AsyncIterable<Uint8Array>, known?: { size: number; sha256: Uint8Array | string }): ByteSource {
    if (!isByteStream(source)) throw new TypeError('ByteSource.stream needs a Readable or an AsyncIterable<Uint8Array>');
    let k: { size: number; sha256: Uint8Array } | null = null;
    if (known) {
      if (!Number.isSafeInteger(known.size) || known.size < 0) throw new TypeError(`ByteSource.stream: size must be a non-negative integer, not ${known.size}`);
      const sha = typeof known.sha256 === 'string' ? Buffer.from(known.sha256, 'hex') : known.sha256;
      if (!(sha instanceof Uint8Array) || sha.length !== 32) throw new TypeError('ByteSource.stream: sha256 must be 32 bytes (or 64 hex digits)');
      k = { size: known.size, sha256: Uint8Array.from(sha) };
    }
    return new ByteSource(null, source, k);
  }
}

/** A Readable or another AsyncIterable (not a Map, list or bytes value). */
export function isByteStream(v: unknown): v is AsyncIterable<Uint8Array> {
  return v !== null && typeof v === 'object' && typeof (v as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}

/** A value the chunker takes as a stream: a ByteSource, a Readable or an AsyncIterable. */
export function isStreamedValue(v: unknown): v is ByteSource | AsyncIterable<Uint8Array> {
  return v instanceof ByteSource || isByteStream(v);
}

/** Re-cuts what an async iterable yields into pieces of at most `max` bytes. */
export function iterableReader(source: AsyncIterable<Uint8Array>): PieceReader {
  const it = source[Symbol.asyncIterator]();
  let rest: Uint8Array | null = null;
  let done = false;
  return {
    read: async (max) => {
      while (!rest || rest.length === 0) {
        if (done) return null;
        const r = await it.next();
        if (r.done) {
          done = true;
          return null;
        }
        const v: unknown = r.value;
        if (typeof v === 'string') rest = Buffer.from(v);
        else if (v instanceof Uint8Array) rest = v;
        else throw new TypeError(`a byte stream yielded a ${v === null ? 'null' : typeof v}, not a Uint8Array`);
      }
      const piece: Uint8Array = rest.length <= max ? rest : rest.subarray(0, max);
      rest = rest.length <= max ? null : rest.subarray(max);
      return piece;
    },
    close: async () => {
      if (!done) {
        done = true;
        await it.return?.(undefined)?.catch?.(() => undefined);
      }
    },
  };
}

/** A caller's input ready to be announced: its size and sha256 known, its bytes readable. */
export interface PreparedSource {
  size: number;
  sha256: Uint8Array;
  /**
   * Where the sender reads it (checked by the sender: exactly `size` bytes must come, for a
   * stream given with `known`); bytes, files and spooled streams are read again from any offset.
   */
  open(): ChunkSource;
  /** Removes what preparing made (a spool file). */
  cleanup(): Promise<void>;
}

export function sha256Of(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

/**
 * Size and sha256 of an input before its Submit: bytes are hashed at once, a file in one
 * streaming pass, a stream without `known` is spooled to a temporary file (removed by cleanup()).
 */
export async function prepareSource(v: Uint8Array | ByteSource | AsyncIterable<Uint8Array>): Promise<PreparedSource> {
  const none = async () => undefined;
  if (v instanceof Uint8Array) return { size: v.length, sha256: sha256Of(v), open: () => bytesSource(v), cleanup: none };
  if (v instanceof ByteSource && v.file !== null) {
    const file = v.file;
    const { size, sha256 } = await hashFile(file);
    return { size, sha256, open: () => fileSource(file), cleanup: none };
  }
  if (v instanceof ByteSource && v.known !== null) {
    const stream = v.stream!;
    return { size: v.known.size, sha256: v.known.sha256, open: () => keptSource(iterableReader(stream)), cleanup: none };
  }
  const stream = v instanceof ByteSource ? v.stream! : v;
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'muster-spool-'));
  const cleanup = () => fs.promises.rm(dir, { recursive: true, force: true });
  try {
    const file = path.join(dir, 'value');
    const hash = createHash('sha256');
    let size = 0;
    const out = await fs.promises.open(file, 'w');
    try {
      const reader = iterableReader(stream);
      for (;;) {
        const piece = await reader.read(CHUNK_BYTES);
        if (!piece) break;
        hash.update(piece);
        size += piece.length;
        await out.write(piece);
      }
    } finally {
      await out.close();
    }
    return { size, sha256: new Uint8Array(hash.digest()), open: () => fileSource(file), cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

async function hashFile(file: string): Promise<{ size: number; sha256: Uint8Array }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const piece of fs.createReadStream(file, { highWaterMark: CHUNK_BYTES })) {
    hash.update(piece as Buffer);
    size += (piece as Buffer).length;
  }
  return { size, sha256: new Uint8Array(hash.digest()) };
}

/** A stream stopped from outside (the call ended, was cancelled or aborted). */
export class StreamClosed extends Error {}

/**
 * Sends one stream: reads the value piece by piece from its source and posts chunks of at most
 * CHUNK_BYTES, each only once it lies within the receiver's credit (offset + n <= granted).
 * Counts the size and the sha256 of the value, each byte once (PROTOCOL.md §7.9 R9: `hashed` is
 * the high-water mark of what was sent). A resume Credit sends it back to an earlier offset; it
 * keeps doing so after run() resolved, until close() (R11: the answer naming the stream may not
 * have been confirmed yet).
 */
export class ChunkSender {
  private granted: number;
  /** The offset of the next chunk. */
  private next = 0;
  /** Bytes sent (and hashed) at least once: the high-water mark. */
  private hashed = 0;
  /** Known once the source ended. */
  private size: number | null = null;
  /** Counts resumes: a read or post under way when one came does not move `next`. */
  private resumes = 0;
  private closedWith: Error | null = null;
  private waiter: (() => void) | null = null;
  private readonly hash = createHash('sha256');
  private loop: Promise<void> | null = null;
  private settle!: { resolve: (v: { size: number; sha256: Uint8Array }) => void; reject: (e: Error) => void };
  private readonly finished: Promise<{ size: number; sha256: Uint8Array }> = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
  private settled = false;

  constructor(
    readonly stream: number,
    private readonly source: ChunkSource,
    initialGrant: number,
    /** Sends the chunk; may wait (the socket's own backpressure). */
    private readonly post: (offset: number, data: Uint8Array) => void | Promise<void>,
    /** The size announced before sending (a caller's input): more or fewer bytes fail run(). */
    private readonly expectedSize?: number,
    /** Sending again after run() resolved failed (a resume the source cannot serve): the stream is over. */
    private readonly onLateError?: (error: Error) => void,
  ) {
    this.granted = initialGrant;
    this.finished.catch(() => undefined);
  }

  /** Bytes sent at least once. */
  get bytesSent(): number {
    return this.hashed;
  }

  /** A cumulative grant from the receiver; a lower one changes nothing. */
  grant(total: number): void {
    if (total > this.granted) {
      this.granted = total;
      this.wake();
    }
  }

  /**
   * A resume Credit (R9): the receiver has the first `offset` bytes; send again from there. One
   * beyond what was sent is ignored (returns false).
   */
  resume(offset: number, total: number): boolean {
    if (this.closedWith || offset > this.hashed || offset < 0) return false;
    if (total > this.granted) this.granted = total;
    this.next = offset;
    this.resumes += 1;
    this.wake();
    return true;
  }

  /** Stops sending: run() rejects with `error` if it had not resolved. */
  close(error: Error): void {
    if (this.closedWith) return;
    this.closedWith = error;
    this.wake();
    if (!this.loop) void this.source.close();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Sends every chunk, waiting for credit; resolves to the size and sha256 of the value. */
  run(): Promise<{ size: number; sha256: Uint8Array }> {
    this.loop ??= this.sendLoop();
    return this.finished;
  }

  private canSend(): boolean {
    return this.next < this.granted && (this.size === null || this.next < this.size);
  }

  private async sendLoop(): Promise<void> {
    try {
      for (;;) {
        while (!this.closedWith && !this.canSend()) await new Promise<void>((r) => (this.waiter = r));
        if (this.closedWith) throw this.closedWith;
        const at = this.next;
        const gen = this.resumes;
        let piece: Uint8Array | null;
        try {
          piece = await this.source.readAt(at, Math.min(CHUNK_BYTES, this.granted - at));
        } catch (e) {
          if (e instanceof ResumeError) throw new ResumeError(`chunked stream ${this.stream}: cannot resume at offset ${at}: ${e.message}`);
          throw e;
        }
        if (this.closedWith) throw this.closedWith;
        if (gen !== this.resumes) continue; // sent back meanwhile: read from there
        if (!piece) {
          if (at !== this.hashed) throw new Error(`the source ended at offset ${at}, before the ${this.hashed} bytes already sent`);
          if (this.expectedSize !== undefined && at !== this.expectedSize) {
            throw new Error(`the stream gave ${at} bytes, not the ${this.expectedSize} announced`);
          }
          this.size = at;
          if (!this.settled) {
            this.settled = true;
            this.settle.resolve({ size: at, sha256: new Uint8Array(this.hash.digest()) });
          }
          continue;
        }
        const end = at + piece.length;
        if (this.expectedSize !== undefined && end > this.expectedSize) {
          throw new Error(`the stream gave more than the ${this.expectedSize} bytes announced`);
        }
        if (end > this.hashed) {
          // each byte hashed once: the part beyond the high-water mark (R9)
          this.hash.update(at === this.hashed ? piece : piece.subarray(this.hashed - at));
          this.hashed = end;
        }
        await this.post(at, piece);
        if (gen === this.resumes) this.next = end;
      }
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e));
      if (!this.settled) {
        this.settled = true;
        this.settle.reject(error);
      } else if (!this.closedWith) {
        this.closedWith = error;
        this.onLateError?.(error);
      }
    } finally {
      await this.source.close();
    }
  }
}

/** What a receiver hands its bytes to; `consumed(n)` is called as the consumer takes them. */
export interface ChunkConsumer {
  /** A piece of the value, in order. */
  put(data: Uint8Array): void;
  /** Every byte arrived and the size and sha256 are right. */
  complete(): void;
  /** The stream failed (a wrong size or sha256, the call ended): the consumer must not see a clean end. */
  fail(error: Error): void;
}

/**
 * Receives one stream: takes chunks in order and not past `size` (when known), hashes them,
 * hands them to its consumer, and grants credit (cumulative: consumed + window) as the consumer
 * reports bytes consumed, once a chunk's worth (or half the window) more is due.
 * Resumption (PROTOCOL.md §7.9 R1-R3): `received` is R, the bytes it has in order. A chunk that
 * overlaps R gives its bytes from R on, one wholly before R is dropped (R1); one past R (a gap)
 * is dropped and answered with a resume Credit at R, at most one per `resumeAfterMs` until a
 * chunk is taken (R2); a stream with granted bytes not received and no chunk for `resumeAfterMs`
 * (a stall) sends a resume Credit, and again after each further `resumeAfterMs` (R3).
 */
export class ChunkReceiver {
  received = 0;
  private consumedBytes = 0;
  private granted: number;
  private readonly hash = createHash('sha256');
  private digest: Uint8Array | null = null;
  private over = false;
  /** When the last resume Credit went (0: none), and whether a chunk was taken since. */
  private resumeSentAt = 0;
  private takenSinceResume = true;
  /** When the last chunk of the stream came (or the stall clock was last reset). */
  private lastChunkAt = Date.now();
  private stallTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly stream: number,
    /** Names the value in errors: "input data", "output data". */
    readonly what: string,
    private readonly window: number,
    /** The grant the sender holds already (a Submit's chunk_window_bytes; 0 for a worker's input). */
    initiallyGranted: number,
    /** Sends a Credit: the cumulative grant, and with `resumeAt` a resume Credit at that offset. */
    private readonly credit: (total: number, resumeAt?: number) => void,
    private consumer: ChunkConsumer | null,
    /** Known up front for inputs (the reference comes first); for outputs at the Result. */
    private expected: { size: number; sha256: Uint8Array } | null = null,
    /** R2/R3's `resume_after`. */
    private readonly resumeAfterMs = RESUME_AFTER_MS,
  ) {
    this.granted = initiallyGranted;
    this.watchStall();
  }

  setConsumer(consumer: ChunkConsumer): void {
    this.consumer = consumer;
  }

  /** The full error text of a reason accept() or finish() gave, as PROTOCOL.md §7.9 words it. */
  error(reason: string): string {
    return `${this.what}: chunked stream ${this.stream}: ${reason}`;
  }

  /** Grants the first window (a worker's input streams: nothing is sent before it). */
  open(): void {
    this.grantIfDue(true);
  }

  /** A Chunk; returns why the value or the stream is broken (a reason for error()), or null. */
  accept(offset: bigint | number, data: Uint8Array): string | null {
    if (this.over) return null;
    if (data.length === 0) return `an empty chunk at offset ${offset}`;
    this.lastChunkAt = Date.now();
    const at = BigInt(offset);
    const r = BigInt(this.received);
    if (at > r) {
      // a gap: the bytes in between were lost (R2)
      this.resumeAfterGap();
      return null;
    }
    if (at + BigInt(data.length) <= r) return null; // bytes it has: sent before the sender went back (R1)
    const take = at === r ? data : data.subarray(Number(r - at));
    if (this.expected && this.received + take.length > this.expected.size) {
      return `chunks beyond its size of ${this.expected.size} bytes`;
    }
    this.takenSinceResume = true;
    this.hash.update(take);
    this.received += take.length;
    this.consumer?.put(take);
    if (this.expected && this.received === this.expected.size) return this.finish(this.expected.size, this.expected.sha256);
    return null;
  }

  private resumeAfterGap(): void {
    const now = Date.now();
    if (this.resumeSentAt > 0 && now - this.resumeSentAt < this.resumeAfterMs && !this.takenSinceResume) return;
    this.sendResume(now);
  }

  /** Sends a resume Credit at R now (R2, R3; a worker after re-attaching, R4), unless the stream is over. */
  resume(): void {
    if (!this.over) this.sendResume(Date.now());
  }

  private sendResume(now: number): void {
    this.resumeSentAt = now;
    this.takenSinceResume = false;
    this.credit(Math.max(this.granted, this.received), this.received);
  }

  /** Whether bytes it granted have not come (R3's stall, when no chunk came for a while). */
  private missingGranted(): boolean {
    const until = this.expected ? Math.min(this.granted, this.expected.size) : this.granted;
    return this.received < until;
  }

  /** Arms the stall timer while granted bytes are missing (one timer per stream, not per chunk). */
  private watchStall(): void {
    if (this.over || this.stallTimer || !this.missingGranted() || !(this.resumeAfterMs > 0)) return;
    const check = () => {
      this.stallTimer = null;
      if (this.over || !this.missingGranted()) return;
      const now = Date.now();
      const due = this.lastChunkAt + this.resumeAfterMs;
      if (now >= due) {
        this.lastChunkAt = now; // again after each further resume_after without a chunk
        this.sendResume(now);
      }
      this.stallTimer = setTimeout(check, Math.max(1, this.lastChunkAt + this.resumeAfterMs - now));
      this.stallTimer.unref();
    };
    this.stallTimer = setTimeout(check, Math.max(1, this.lastChunkAt + this.resumeAfterMs - Date.now()));
    this.stallTimer.unref();
  }

  private stopWatching(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }

  /**
   * Every byte should be here (a worker's input: when the size is reached; a caller's output: at
   * the Result): checks the size and the sha256, and ends the consumer; returns why not (a reason for error()) or null.
   */
  finish(size: number, sha256: Uint8Array): string | null {
    if (this.over) return null;
    this.expected = { size, sha256 };
    if (this.received !== size) return `${this.received} bytes arrived where ${size} were announced`;
    this.digest ??= new Uint8Array(this.hash.digest());
    if (!Buffer.from(this.digest).equals(Buffer.from(sha256))) return 'sha256 mismatch';
    this.over = true;
    this.stopWatching();
    this.consumer?.complete();
    return null;
  }

  /** The stream ends without its value (a failure of the call or of this stream). */
  fail(error: Error): void {
    if (this.over) return;
    this.over = true;
    this.stopWatching();
    this.consumer?.fail(error);
  }

  get done(): boolean {
    return this.over;
  }

  /** Whether it granted anything yet (a worker's input: its first Credit went). */
  get opened(): boolean {
    return this.granted > 0;
  }

  /** The consumer took `n` more bytes: grant more once it is due. */
  consumed(n: number): void {
    this.consumedBytes += n;
    this.grantIfDue(false);
  }

  private grantIfDue(force: boolean): void {
    if (this.over && !force) return;
    const total = this.consumedBytes + this.window;
    const step = Math.max(1, Math.min(CHUNK_BYTES, Math.floor(this.window / 2)));
    if (total > this.granted && (force || total - this.granted >= step)) {
      if (!this.missingGranted()) this.lastChunkAt = Date.now(); // the stall clock starts with the grant
      this.granted = total;
      this.credit(total);
      this.watchStall();
    }
  }
}

/**
 * Assembles a value in memory (plain bytes for the application); receipt counts as consumption.
 * With the size known up front (a worker's input) the pieces are copied into one buffer of that
 * size as they come, so the value is held once, not twice.
 */
export class MemoryConsumer implements ChunkConsumer {
  private pieces: Uint8Array[] = [];
  private whole: Buffer | null = null;
  private filled = 0;
  private bytes: Uint8Array | null = null;
  receiver: ChunkReceiver | null = null;
  private settle!: { resolve: (v: Uint8Array) => void; reject: (e: Error) => void };
  /** The value once complete; rejects with the stream's error. */
  readonly result: Promise<Uint8Array> = new Promise((resolve, reject) => (this.settle = { resolve, reject }));

  constructor(private readonly size?: number) {
    this.result.catch(() => undefined); // whoever awaits it still gets the error
  }

  put(data: Uint8Array): void {
    if (this.size !== undefined) {
      // the receiver refuses bytes past the size, so they fit
      this.whole ??= Buffer.allocUnsafe(this.size);
      this.whole.set(data, this.filled);
      this.filled += data.length;
    } else {
      this.pieces.push(data);
    }
    this.receiver?.consumed(data.length);
  }
  complete(): void {
    if (this.size !== undefined) this.bytes = this.whole ?? Buffer.alloc(0);
    else this.bytes = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces); // a Buffer is bytes: no second copy
    this.pieces = [];
    this.whole = null;
    this.settle.resolve(this.bytes);
  }
  fail(error: Error): void {
    this.pieces = [];
    this.whole = null;
    this.settle.reject(error);
  }
  /** The value, once complete() was called. */
  value(): Uint8Array {
    if (!this.bytes) throw new Error('the value is not complete');
    return this.bytes;
  }
}

/** Where a caller's output goes instead of memory: a file path, a Writable, or a function of each piece. */
export type OutputSink = string | Writable | ((data: Uint8Array) => void | Promise<void>);

/**
 * Writes a value to a sink piece by piece, in order, counting a piece consumed once written
 * (a Writable's write callback), so credit follows the sink's speed. A path sink is a file this
 * consumer creates and closes (removed on failure); a Writable is ended on success and destroyed
 * on failure; a function is called for each piece.
 */
export class SinkConsumer implements ChunkConsumer {
  private chain: Promise<void> = Promise.resolve();
  private error: Error | null = null;
  private readonly writable: Writable | null;
  private readonly fn: ((data: Uint8Array) => void | Promise<void>) | null;
  private readonly filePath: string | null;
  private readonly hash = createHash('sha256');
  size = 0;
  receiver: ChunkReceiver | null = null;

  constructor(sink: OutputSink) {
    if (typeof sink === 'string') {
      this.filePath = sink;
      this.writable = fs.createWriteStream(sink);
      this.fn = null;
    } else if (typeof sink === 'function') {
      this.filePath = null;
      this.writable = null;
      this.fn = sink;
    } else if (sink && typeof (sink as Writable).write === 'function') {
      this.filePath = null;
      this.writable = sink;
      this.fn = null;
    } else {
      throw new TypeError('an output sink is a file path, a Writable or a function');
    }
    // an 'error' without a listener would end the process: it is reported through the chain
    this.writable?.on('error', (e) => (this.error ??= e));
  }

  put(data: Uint8Array): void {
    this.size += data.length;
    this.hash.update(data);
    this.chain = this.chain.then(async () => {
      if (this.error) return;
      try {
        if (this.fn) await this.fn(data);
        else await new Promise<void>((resolve, reject) => this.writable!.write(data, (e) => (e ? reject(e) : resolve())));
      } catch (e) {
        this.error ??= e instanceof Error ? e : new Error(String(e));
        return;
      }
      this.receiver?.consumed(data.length);
    });
  }

  complete(): void {
    /* finished by close() */
  }

  fail(): void {
    /* finished by close() */
  }

  /** The writes so far are done; throws the sink's error if one failed. */
  async flushed(): Promise<void> {
    await this.chain;
    if (this.error) throw this.error;
  }

  /** Ends the sink: after success it is ended (a file closed); after a failure destroyed (a file removed). */
  async close(ok: boolean): Promise<void> {
    await this.chain.catch(() => undefined);
    const w = this.writable;
    if (w) {
      if (ok && !this.error) {
        await new Promise<void>((resolve, reject) => {
          w.once('error', reject);
          w.end(() => resolve());
        });
      } else {
        w.destroy();
        await new Promise<void>((resolve) => (w.closed ? resolve() : w.once('close', () => resolve())));
      }
    }
    if (!ok && this.filePath) await fs.promises.rm(this.filePath, { force: true });
    if (ok && this.error) throw this.error;
  }

  /** What the caller's outputs show for a port written to a sink. */
  summary(): { size: number; sha256: string } {
    return { size: this.size, sha256: this.hash.copy().digest('hex') };
  }
}

/**
 * A chunked input read by a handler as it arrives (ctx.inputStream): a Readable (also an
 * AsyncIterable<Buffer>) that holds at most what the credit let in; each piece handed to the
 * Readable counts as consumed, so the sender goes as fast as the handler reads. It ends cleanly
 * only after the size and sha256 were checked; otherwise it is destroyed with the error.
 */
export class InputStream extends Readable implements ChunkConsumer {
  private queue: Uint8Array[] = [];
  private ended = false;
  private wanting = false;
  receiver: ChunkReceiver | null = null;

  constructor() {
    super({ highWaterMark: CHUNK_BYTES });
    // A handler that stopped reading (or never read) must not end the process with an
    // unhandled 'error' when the request ends; a reader (for await, pipe, 'data') still gets it.
    this.on('error', () => undefined);
  }

  put(data: Uint8Array): void {
    this.queue.push(data);
    if (this.wanting) this.pushSome();
  }

  complete(): void {
    this.ended = true;
    if (this.wanting) this.pushSome();
  }

  fail(error: Error): void {
    this.queue = [];
    this.destroy(error);
  }

  override _read(): void {
    this.wanting = true;
    this.pushSome();
  }

  private pushSome(): void {
    while (this.wanting && this.queue.length > 0) {
      const data = this.queue.shift()!;
      this.receiver?.consumed(data.length);
      this.wanting = this.push(Buffer.from(data.buffer, data.byteOffset, data.length));
    }
    if (this.wanting && this.queue.length === 0 && this.ended) {
      this.wanting = false;
      this.push(null);
    }
  }
}
