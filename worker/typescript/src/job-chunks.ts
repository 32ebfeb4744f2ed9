// job-chunks.ts — one request's chunked values on the worker's side (PROTOCOL.md §7.9): its
// Chunked inputs (the caller's odd streams) received, checked and handed to the handler as plain
// bytes or, for a port declared `stream: true`, as a Readable it reads while they arrive; its
// large outputs sent as chunks of the even streams 2, 4, 6, ... within the caller's credit.
// Owns: the receivers and senders of one request, the credit it grants (the first window when the
// handler is about to run, then as bytes are consumed; resume Credits, PROTOCOL.md §7.9 R2-R4),
// the Chunked references of its Result, and its output streams' means to send again after the
// Result went (R11) until the worker closes it.
// Must never: grant input credit before the request runs; hand a handler bytes (or a clean end of
// its stream) whose size or sha256 is wrong: the request fails InvalidRequest "input <port>:
// chunked stream N: sha256 mismatch"; send output chunks to a caller that takes none
// (chunk_window_bytes 0) or past its credit; keep sending once the request was aborted or its
// answer confirmed.
import { Readable } from 'node:stream';

import {
  ByteSource,
  CHUNK_BYTES,
  CHUNK_WINDOW_BYTES,
  ChunkReceiver,
  ChunkSender,
  InputStream,
  MAX_CHUNK_STREAMS,
  type ChunkSource,
  MemoryConsumer,
  RESUME_AFTER_MS,
  bytesSource,
  fileSource,
  isStreamedValue,
  iterableReader,
  keptSource,
} from './chunks';
import { ErrorCode, MusterError } from './errors';
import type { WorkerBody } from './messages';
import { ChunkedValue, type MusterValue, type Values, entriesOf, mapFromEntries } from './value';

export interface JobChunkHooks {
  /** Queues a Credit or Chunk for the daemon, in order with the request's other messages. */
  post(body: WorkerBody & { type: 'Credit' | 'Chunk' }): void;
  /** A chunked input broke (wrong size or sha256, a chunk past its size): fail the request. */
  failInput(message: string): void;
  /**
   * An output stream could not be sent again after the Result went (a resume Credit for bytes
   * a stream no longer keeps, R10): the request's answer becomes a Failure{WorkerError} with it.
   */
  failOutput(message: string): void;
}

function invalid(message: string): MusterError {
  return new MusterError(ErrorCode.InvalidRequest, message);
}

function safeNumber(v: bigint): number {
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

export class JobChunks {
  private readonly inputs = new Map<number, { port: string; size: number; sha256: Uint8Array; receiver: ChunkReceiver; stream: InputStream | null; taken: boolean }>();
  private readonly byPort = new Map<string, number>();
  private readonly outputs = new Map<number, { port: string; sender: ChunkSender }>();
  /** Why it closed: an Error, or a function making it, called only once something needs it. */
  private closedBy: Error | (() => Error) | null = null;

  /** Why the request is over (null while it runs); made on first use (an Error's stack costs). */
  private get closedWith(): Error | null {
    if (typeof this.closedBy === 'function') this.closedBy = this.closedBy();
    return this.closedBy;
  }

  constructor(
    private readonly requestId: bigint,
    /** WorkRequest.chunk_window_bytes: the initial credit of each output stream (0: no chunked outputs). */
    readonly outputWindow: number,
    private readonly hooks: JobChunkHooks,
    /** PROTOCOL.md §7.9 R2/R3 `resume_after` of its input streams. */
    private readonly resumeAfterMs = RESUME_AFTER_MS,
  ) {}

  /** Whether any stream of the request went through the daemon (an input granted, an output chunk sent). */
  get streaming(): boolean {
    for (const [, input] of this.inputs) if (input.receiver.opened) return true;
    for (const [, output] of this.outputs) if (output.sender.bytesSent > 0) return true;
    return false;
  }

  /** Whether its outputs went as chunks: the means to send them again are kept until the answer is confirmed (R11). */
  get hasOutputStreams(): boolean {
    return this.outputs.size > 0 && this.closedBy === null;
  }

  /**
   * After the worker attached again to the same daemon instance (R4): a resume Credit for each
   * input stream that was granted and has not come whole.
   */
  resumeInputs(): void {
    if (this.closedBy) return;
    for (const [, input] of this.inputs) if (input.receiver.opened && !input.receiver.done) input.receiver.resume();
  }

  /**
   * Opens the request's Chunked inputs (top-level ports; odd, distinct streams) and grants each
   * its first window. Ports in `streamed` keep their ChunkedValue in the inputs and are read with
   * inputStream(); the others are assembled, checked, and replaced by their bytes before this
   * resolves (the inputs themselves when none is Chunked). Rejects with InvalidRequest for a bad
   * reference or a value that fails its check.
   */
  async openInputs(inputs: Values, streamed: ReadonlySet<string>): Promise<Values> {
    if (this.closedWith) throw this.closedWith;
    const entries = entriesOf(inputs);
    if (!entries.some(([, v]) => v instanceof ChunkedValue)) return inputs; // the common case: no copy
    const out = new Map<string, MusterValue>();
    const waiting: [string, Promise<Uint8Array>][] = [];
    for (const [port, v] of entries) {
      out.set(port, v);
      if (!(v instanceof ChunkedValue)) continue;
      if (v.stream % 2 !== 1) throw invalid(`input ${port}: chunked stream ${v.stream} is not a caller's stream (odd numbers)`);
      if (this.inputs.has(v.stream)) throw invalid(`input ${port}: chunked stream ${v.stream} is named by two inputs`);
      if (this.inputs.size >= MAX_CHUNK_STREAMS) throw invalid(`more than ${MAX_CHUNK_STREAMS} chunked inputs`);
      if (v.size > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`input ${port}: chunked stream ${v.stream}: a size of ${v.size} bytes is too large`);
      const size = Number(v.size);
      const stream = streamed.has(port) ? new InputStream() : null;
      const memory = stream ? null : new MemoryConsumer(size);
      const receiver = new ChunkReceiver(
        v.stream,
        `input ${port}`,
        CHUNK_WINDOW_BYTES,
        0,
        (total, resumeAt) =>
          this.post({
            type: 'Credit',
            requestId: this.requestId,
            stream: v.stream,
            items: 0n,
            bytes: BigInt(total),
            resumeOffset: BigInt(resumeAt ?? 0),
            resume: resumeAt !== undefined,
          }),
        stream ?? memory,
        { size, sha256: v.sha256 },
        this.resumeAfterMs,
      );
      if (stream) stream.receiver = receiver;
      if (memory) {
        memory.receiver = receiver;
        waiting.push([port, memory.result]);
      }
      this.inputs.set(v.stream, { port, size, sha256: v.sha256, receiver, stream, taken: false });
      this.byPort.set(port, v.stream);
    }
    for (const [, input] of this.inputs) {
      if (input.receiver.done) continue;
      if (this.closedBy) break;
      input.receiver.open(); // the caller sends nothing before this first Credit
      // an empty value needs no chunk: checked at once
      if (input.size === 0) this.onBroken(input.receiver, input.receiver.finish(0, input.sha256));
    }
    for (const [port, p] of waiting) out.set(port, await p);
    return mapFromEntries(out);
  }

  /**
   * An input as a Readable (also an AsyncIterable<Buffer>): a streamed port's chunks as they
   * arrive (once per request), or the bytes of any other bytes input.
   */
  inputStream(port: string, value: MusterValue | undefined): Readable {
    const stream = this.byPort.get(port);
    const input = stream === undefined ? undefined : this.inputs.get(stream);
    if (input?.stream) {
      if (input.taken) throw new MusterError(ErrorCode.WorkerError, `ctx.inputStream('${port}') was called twice`);
      input.taken = true;
      return input.stream;
    }
    if (value instanceof Uint8Array) return Readable.from([Buffer.from(value.buffer, value.byteOffset, value.length)]);
    if (value === undefined || value === null) throw new MusterError(ErrorCode.WorkerError, `no input '${port}' to read as a stream`);
    throw new MusterError(ErrorCode.WorkerError, `input '${port}' is not bytes: it cannot be read as a stream`);
  }

  /** A Chunk of an input stream from the daemon. */
  onChunk(stream: number, offset: bigint, data: Uint8Array): void {
    const input = this.inputs.get(stream);
    if (!input || this.closedBy) return;
    this.onBroken(input.receiver, input.receiver.accept(offset, data));
  }

  private onBroken(receiver: ChunkReceiver, reason: string | null): void {
    if (reason === null) return;
    const message = receiver.error(reason);
    receiver.fail(invalid(message));
    this.hooks.failInput(message);
  }

  /** A Credit from the caller for an output stream (even numbers); with `resume`, it sends again from `resumeOffset` (R9). */
  onCredit(stream: number, bytes: bigint, resume = false, resumeOffset = 0n): void {
    const output = this.outputs.get(stream);
    if (!output) return;
    if (resume) output.sender.resume(safeNumber(resumeOffset), safeNumber(bytes));
    else output.sender.grant(safeNumber(bytes));
  }

  /**
   * Sends the outputs that travel chunked, one stream after another, and returns the outputs
   * with their Chunked references, as a Map in their order (for encodeValues): bytes over
   * `threshold`, and streamed values (a ByteSource, a Readable, an AsyncIterable<Uint8Array>:
   * read as they are sent). A caller that takes no chunked outputs (window 0) gets bytes inline
   * (too large ones fail when the Result is encoded); a stream is then read into memory up to
   * `inlineLimit` bytes, else WorkerError.
   */
  async sendOutputs(outputs: Values, threshold: number, inlineLimit: number): Promise<Values> {
    const out = new Map<string, MusterValue>();
    let next = 2;
    for (const [port, v] of entriesOf(outputs)) {
      if (this.closedWith) throw this.closedWith;
      if (isStreamedValue(v)) {
        const given = v instanceof ByteSource ? v : ByteSource.stream(v);
        // a file is read again at any offset; a stream keeps the last RESUME_KEEP_BYTES sent (R10)
        const source = given.file !== null ? fileSource(given.file) : keptSource(iterableReader(given.stream!));
        const first = await source.readAt(0, CHUNK_BYTES).catch(async (e) => {
          await source.close();
          throw new MusterError(ErrorCode.WorkerError, `output ${port}: ${(e as Error).message}`);
        });
        if (!first) {
          await source.close();
          out.set(port, new Uint8Array(0));
          continue;
        }
        if (this.outputWindow === 0) {
          out.set(port, await this.readInline(port, source, inlineLimit));
          continue;
        }
        out.set(port, await this.send(port, next, source, given.known?.size));
      } else if (v instanceof Uint8Array && v.length > threshold && this.outputWindow > 0) {
        out.set(port, await this.send(port, next, bytesSource(v)));
      } else {
        out.set(port, v);
        continue;
      }
      next += 2;
    }
    return out;
  }

  private async send(port: string, stream: number, source: ChunkSource, expectedSize?: number): Promise<ChunkedValue> {
    if (this.outputs.size >= MAX_CHUNK_STREAMS) {
      await source.close();
      throw new MusterError(ErrorCode.WorkerError, `more than ${MAX_CHUNK_STREAMS} chunked outputs`);
    }
    const sender = new ChunkSender(
      stream,
      source,
      this.outputWindow,
      (offset, data) => this.post({ type: 'Chunk', requestId: this.requestId, stream, offset: BigInt(offset), data }),
      expectedSize,
      // sending again after the Result went failed (R10): the answer becomes a Failure
      (e) => this.hooks.failOutput(`output ${port}: ${e.message}`),
    );
    this.outputs.set(stream, { port, sender });
    try {
      const { size, sha256 } = await sender.run();
      return new ChunkedValue(stream, size, sha256);
    } catch (e) {
      if (this.closedWith) throw this.closedWith;
      throw new MusterError(ErrorCode.WorkerError, `output ${port}: ${(e as Error).message}`);
    }
  }

  private async readInline(port: string, source: ChunkSource, limit: number): Promise<Uint8Array> {
    const pieces: Uint8Array[] = [];
    let size = 0;
    try {
      for (;;) {
        const piece = await source.readAt(size, CHUNK_BYTES);
        if (!piece) break;
        size += piece.length;
        if (limit > 0 && size > limit) {
          throw new MusterError(
            ErrorCode.WorkerError,
            `output ${port}: a stream of more than ${limit} bytes, and the caller takes no chunked outputs (chunk_window_bytes 0: a durable call, or a caller without chunks)`,
          );
        }
        pieces.push(piece);
      }
    } finally {
      await source.close();
    }
    return Buffer.concat(pieces);
  }

  private post(body: WorkerBody & { type: 'Credit' | 'Chunk' }): void {
    if (!this.closedBy) this.hooks.post(body);
  }

  /**
   * The request's Result went: its inputs are over, its finished output streams stay ready to
   * be sent again (R11) until close().
   */
  answered(error: Error | (() => Error)): void {
    if (this.inputs.size === 0) return;
    const e = typeof error === 'function' ? error() : error;
    for (const [, input] of this.inputs) input.receiver.fail(e);
  }

  /** The request is over (its answer confirmed, aborted, the worker stopping): everything stops. */
  close(error: Error | (() => Error)): void {
    if (this.closedBy) return;
    this.closedBy = error;
    if (this.inputs.size === 0 && this.outputs.size === 0) return; // no stream to tell: the error is made only if read
    const e = this.closedWith!;
    for (const [, input] of this.inputs) input.receiver.fail(e);
    for (const [, output] of this.outputs) output.sender.close(e);
  }
}
