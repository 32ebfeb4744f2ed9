// chunks.ts — chunked bytes values (PROTOCOL.md §7.9, docs/STREAMS.md §3), the building blocks
// both halves of the SDK use: the client for its inputs (odd streams) and outputs, the worker for
// its inputs and outputs (even streams).
// Owns: the sizes (1 MiB chunks, a 4 MiB receive window, an 8 MiB default threshold), the byte
// sources a value may come from (bytes, a file, a Readable / AsyncIterable<Uint8Array>), one
// stream's sender (ChunkSender: chunks within the receiver's credit, size and sha256 counted while
// sending) and receiver (ChunkReceiver: offsets in order, size and sha256 checked at the end,
// credit granted as the application consumes), and the consumers a receiver feeds (in memory, a
// sink, a Readable for a handler).
// Must never: send past the credit (strict: offset + n <= granted); grant credit for bytes the
// application has not consumed (except when assembling in memory, where receipt is consumption);
// hand a consumer the clean end of a value whose size or sha256 is wrong; leave a file handle or
// a spool file behind.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, type Writable } from 'node:stream';

/** Bytes per Chunk message. */
export const CHUNK_BYTES = 1024 * 1024;
/** The credit window a receiver grants per stream. */
export const CHUNK_WINDOW_BYTES = 4 * 1024 * 1024;
/** Bytes values larger than this travel chunked (ClientOptions / WorkerOptions `chunkThreshold`). */
export const DEFAULT_CHUNK_THRESHOLD = 8 * 1024 * 1024;
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

/** Reads a value's bytes in pieces of at most `max` bytes (at least 1); null at the end. */
export interface PieceReader {
  read(max: number): Promise<Uint8Array | null>;
  close(): Promise<void>;
}

export function bytesReader(bytes: Uint8Array): PieceReader {
  let at = 0;
  return {
    read: async (max) => {
      if (at >= bytes.length) return null;
      const piece = bytes.subarray(at, Math.min(bytes.length, at + max));
      at += piece.length;
      return piece;
    },
    close: async () => undefined,
  };
}

export function fileReader(filePath: string): PieceReader {
  let handle: fs.promises.FileHandle | null = null;
  let position = 0;
  let closed = false;
  return {
    read: async (max) => {
      if (closed) return null;
      if (!handle) handle = await fs.promises.open(filePath, 'r');
      const buf = Buffer.allocUnsafe(Math.min(max, CHUNK_BYTES));
      const { bytesRead } = await handle.read(buf, 0, buf.length, position);
      if (bytesRead === 0) return null;
      position += bytesRead;
      return bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    },
    close: async () => {
      closed = true;
      const h = handle;
      handle = null;
      await h?.close().catch(() => undefined);
    },
  };
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

/** A reader whose first piece was already read (to tell an empty stream from another). */
export function prependReader(first: Uint8Array, reader: PieceReader): PieceReader {
  let head: Uint8Array | null = first;
  return {
    read: async (max) => {
      if (!head) return reader.read(max);
      const piece = head.length <= max ? head : head.subarray(0, max);
      head = head.length <= max ? null : head.subarray(max);
      return piece;
    },
    close: () => reader.close(),
  };
}

/** A caller's input ready to be announced: its size and sha256 known, its bytes readable. */
export interface PreparedSource {
  size: number;
  sha256: Uint8Array;
  /** Checked by the sender: exactly `size` bytes must come (a stream given with `known`). */
  open(): PieceReader;
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
  if (v instanceof Uint8Array) return { size: v.length, sha256: sha256Of(v), open: () => bytesReader(v), cleanup: none };
  if (v instanceof ByteSource && v.file !== null) {
    const file = v.file;
    const { size, sha256 } = await hashFile(file);
    return { size, sha256, open: () => fileReader(file), cleanup: none };
  }
  if (v instanceof ByteSource && v.known !== null) {
    const stream = v.stream!;
    return { size: v.known.size, sha256: v.known.sha256, open: () => iterableReader(stream), cleanup: none };
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
    return { size, sha256: new Uint8Array(hash.digest()), open: () => fileReader(file), cleanup };
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
 * Sends one stream: reads the value piece by piece and posts chunks of at most CHUNK_BYTES, each
 * only once it lies within the receiver's credit (offset + n <= granted). Counts the size and
 * the sha256 of what it sent.
 */
export class ChunkSender {
  private granted: number;
  private sent = 0;
  private closedWith: Error | null = null;
  private waiter: (() => void) | null = null;
  private readonly hash = createHash('sha256');

  constructor(
    readonly stream: number,
    private readonly reader: PieceReader,
    initialGrant: number,
    /** Sends the chunk; may wait (the socket's own backpressure). */
    private readonly post: (offset: number, data: Uint8Array) => void | Promise<void>,
    /** The size announced before sending (a caller's input): more or fewer bytes fail run(). */
    private readonly expectedSize?: number,
  ) {
    this.granted = initialGrant;
  }

  get bytesSent(): number {
    return this.sent;
  }

  /** A cumulative grant from the receiver; a lower one changes nothing. */
  grant(total: number): void {
    if (total > this.granted) {
      this.granted = total;
      this.wake();
    }
  }

  /** Stops sending: run() rejects with `error`. */
  close(error: Error): void {
    if (this.closedWith) return;
    this.closedWith = error;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Sends every chunk, waiting for credit; resolves to the size and sha256 sent. */
  async run(): Promise<{ size: number; sha256: Uint8Array }> {
    try {
      for (;;) {
        while (!this.closedWith && this.granted <= this.sent) await new Promise<void>((r) => (this.waiter = r));
        if (this.closedWith) throw this.closedWith;
        const piece = await this.reader.read(Math.min(CHUNK_BYTES, this.granted - this.sent));
        if (this.closedWith) throw this.closedWith;
        if (!piece) break;
        if (this.expectedSize !== undefined && this.sent + piece.length > this.expectedSize) {
          throw new Error(`the stream gave more than the ${this.expectedSize} bytes announced`);
        }
        this.hash.update(piece);
        await this.post(this.sent, piece);
        this.sent += piece.length;
      }
      if (this.expectedSize !== undefined && this.sent !== this.expectedSize) {
        throw new Error(`the stream gave ${this.sent} bytes, not the ${this.expectedSize} announced`);
      }
      return { size: this.sent, sha256: new Uint8Array(this.hash.digest()) };
    } finally {
      await this.reader.close();
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
 * Receives one stream: checks that chunks come in order and not past `size` (when known), hashes
 * them, hands them to its consumer, and grants credit (cumulative: consumed + window) as the
 * consumer reports bytes consumed, once a chunk's worth (or half the window) more is due.
 */
export class ChunkReceiver {
  received = 0;
  private consumedBytes = 0;
  private granted: number;
  private readonly hash = createHash('sha256');
  private digest: Uint8Array | null = null;
  private over = false;

  constructor(
    readonly stream: number,
    /** Names the value in errors: "input data", "output data". */
    readonly what: string,
    private readonly window: number,
    /** The grant the sender holds already (a Submit's chunk_window_bytes; 0 for a worker's input). */
    initiallyGranted: number,
    private readonly credit: (total: number) => void,
    private consumer: ChunkConsumer | null,
    /** Known up front for inputs (the reference comes first); for outputs at the Result. */
    private expected: { size: number; sha256: Uint8Array } | null = null,
  ) {
    this.granted = initiallyGranted;
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
    if (BigInt(offset) !== BigInt(this.received)) return `a chunk at offset ${offset} where offset ${this.received} was due`;
    if (data.length === 0) return `an empty chunk at offset ${offset}`;
    if (this.expected && this.received + data.length > this.expected.size) {
      return `chunks beyond its size of ${this.expected.size} bytes`;
    }
    this.hash.update(data);
    this.received += data.length;
    this.consumer?.put(data);
    if (this.expected && this.received === this.expected.size) return this.finish(this.expected.size, this.expected.sha256);
    return null;
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
    this.consumer?.complete();
    return null;
  }

  /** The stream ends without its value (a failure of the call or of this stream). */
  fail(error: Error): void {
    if (this.over) return;
    this.over = true;
    this.consumer?.fail(error);
  }

  get done(): boolean {
    return this.over;
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
      this.granted = total;
      this.credit(total);
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
