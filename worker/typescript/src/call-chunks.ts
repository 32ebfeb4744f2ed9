// call-chunks.ts — one call's chunked values on the caller's side (PROTOCOL.md §7.9): its large
// inputs sent as chunks of the odd streams 1, 3, 5, ... within the worker's credit, and the
// worker's chunked outputs (even streams) received, checked and turned into plain bytes or
// written to the caller's sink.
// Owns: which inputs travel chunked (bytes over the threshold, ByteSource, Readable,
// AsyncIterable), their preparation (size and sha256 known before the Submit), the senders and
// receivers of the call (an input sent again from a resume Credit's offset until the call ends,
// an output's gaps and stalls answered with resume Credits: PROTOCOL.md §7.9 R1-R3, R9-R10), and
// the outputs' final check at the Result.
// Must never: send an input chunk before the worker's first Credit; hold a sink's output in
// memory; hand the application an output whose size or sha256 is wrong ("output <port>:
// chunked stream N: sha256 mismatch" as a WorkerError); leave a sender, a sink or a spool file
// open after the call ended, whatever way it ended.
import {
  type ByteSource,
  CHUNK_WINDOW_BYTES,
  ChunkReceiver,
  ChunkSender,
  MAX_CHUNK_STREAMS,
  MemoryConsumer,
  type OutputSink,
  type PreparedSource,
  RESUME_AFTER_MS,
  ResumeError,
  SinkConsumer,
  StreamClosed,
  isStreamedValue,
  prepareSource,
} from './chunks';
import { ErrorCode, MusterError } from './errors';
import type { StreamOffset } from './messages';
import { ChunkedValue, type MusterValue, type Values, entriesOf, mapFromEntries } from './value';

/** What a call sends through its client. */
export interface CallChunkHooks {
  /** Sends a Chunk of an input stream; resolves once the socket took it. */
  sendChunk(stream: number, offset: number, data: Uint8Array): Promise<void>;
  /** Grants the worker credit on an output stream (a cumulative total); with `resumeAt`, a resume Credit at that offset (PROTOCOL.md §7.9 R2/R3). */
  sendCredit(stream: number, total: number, resumeAt?: number): void;
  /** The call cannot go on (an input cannot be read, an output stream broke): cancel it and fail it with `error`. */
  abandon(error: MusterError): void;
}

/** Whether any input travels chunked (so the Submit waits for the inputs to be prepared). */
export function hasChunkedInputs(inputs: Values, threshold: number): boolean {
  for (const [, v] of entriesOf(inputs)) {
    if (isStreamedValue(v)) return true;
    if (v instanceof Uint8Array && v.length > threshold) return true;
  }
  return false;
}

/**
 * Replaces each input that travels chunked by its Chunked reference (stream 1, 3, 5, ...), once
 * its size and sha256 are known. Top-level inputs only; the order of the inputs is kept.
 */
export async function prepareInputs(inputs: Values, threshold: number): Promise<{ inputs: Values; sources: Map<number, { port: string; source: PreparedSource }> }> {
  const sources = new Map<number, { port: string; source: PreparedSource }>();
  const out = new Map<string, MusterValue>();
  let stream = 1;
  try {
    for (const [port, v] of entriesOf(inputs)) {
      if (isStreamedValue(v) || (v instanceof Uint8Array && v.length > threshold)) {
        if (sources.size >= MAX_CHUNK_STREAMS) {
          throw new MusterError(ErrorCode.InvalidRequest, `a call sends at most ${MAX_CHUNK_STREAMS} chunked inputs`);
        }
        let source: PreparedSource;
        try {
          source = await prepareSource(v as Uint8Array | ByteSource | AsyncIterable<Uint8Array>);
        } catch (e) {
          throw new MusterError(ErrorCode.InvalidRequest, `input ${port}: ${(e as Error).message}`);
        }
        sources.set(stream, { port, source });
        out.set(port, new ChunkedValue(stream, source.size, source.sha256));
        stream += 2;
      } else {
        out.set(port, v);
      }
    }
  } catch (e) {
    await Promise.all([...sources.values()].map((s) => s.source.cleanup()));
    throw e;
  }
  return { inputs: mapFromEntries(out), sources };
}

/** The chunked values of one call, from its Submit to its terminal reply. */
export class CallChunks {
  private readonly senders = new Map<number, { port: string; sender: ChunkSender; source: PreparedSource }>();
  private readonly receivers = new Map<number, { receiver: ChunkReceiver; memory: MemoryConsumer | null; sink: SinkConsumer | null }>();
  private sinkStream = 0;
  private over = false;

  constructor(
    sources: Map<number, { port: string; source: PreparedSource }>,
    private readonly sink: OutputSink | undefined,
    private readonly hooks: CallChunkHooks,
    /** PROTOCOL.md §7.9 R2/R3 `resume_after` of its output streams. */
    private readonly resumeAfterMs = RESUME_AFTER_MS,
  ) {
    for (const [stream, { port, source }] of sources) {
      const sender = new ChunkSender(
        stream,
        source.open(),
        0,
        (offset, data) => hooks.sendChunk(stream, offset, data),
        source.size,
        (e) => {
          if (!this.over) this.fail(port, e);
        },
      );
      this.senders.set(stream, { port, sender, source });
    }
  }

  /** Starts the input senders (each waits for the worker's first Credit). */
  start(): void {
    for (const [, s] of this.senders) {
      s.sender.run().then(
        () => undefined,
        (e) => {
          if (e instanceof StreamClosed || this.over) return;
          this.fail(s.port, e as Error);
        },
      );
    }
  }

  /**
   * An input could not be sent: a resume Credit for bytes its source no longer has (R10) is
   * Unavailable (the call is cancelled), a source that cannot be read InvalidRequest.
   */
  private fail(port: string, e: Error): void {
    const code = e instanceof ResumeError ? ErrorCode.Unavailable : ErrorCode.InvalidRequest;
    this.hooks.abandon(new MusterError(code, `input ${port}: ${e.message}`));
  }

  /** A Credit from the worker (odd streams: its grant for an input); with `resume`, the input goes again from `resumeOffset` (R9). */
  onCredit(stream: number, bytes: bigint, resume = false, resumeOffset = 0n): void {
    if (stream % 2 !== 1) return;
    const n = (v: bigint) => (v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v));
    const s = this.senders.get(stream);
    if (!s) return;
    if (resume) s.sender.resume(n(resumeOffset), n(bytes));
    else s.sender.grant(n(bytes));
  }

  /** A Chunk of an output stream; returns why the call is broken, or null. */
  onChunk(stream: number, offset: bigint, data: Uint8Array): string | null {
    if (this.over) return null;
    if (stream === 0 || stream % 2 !== 0) return `a chunk on stream ${stream}, which is not an output stream`;
    let r = this.receivers.get(stream);
    if (!r) {
      if (this.receivers.size >= MAX_CHUNK_STREAMS) return `chunks on more than ${MAX_CHUNK_STREAMS} output streams`;
      const useSink = this.sink !== undefined && this.sinkStream === 0;
      let sink: SinkConsumer | null = null;
      let memory: MemoryConsumer | null = null;
      if (useSink) {
        try {
          sink = new SinkConsumer(this.sink!);
        } catch (e) {
          return `the output sink: ${(e as Error).message}`;
        }
        this.sinkStream = stream;
      } else memory = new MemoryConsumer();
      const receiver = new ChunkReceiver(
        stream,
        'output',
        CHUNK_WINDOW_BYTES,
        CHUNK_WINDOW_BYTES,
        (total, resumeAt) => this.hooks.sendCredit(stream, total, resumeAt),
        sink ?? memory,
        null,
        this.resumeAfterMs,
      );
      if (sink) sink.receiver = receiver;
      if (memory) memory.receiver = receiver;
      r = { receiver, memory, sink };
      this.receivers.set(stream, r);
    }
    const broken = r.receiver.accept(offset, data);
    return broken === null ? null : `chunked stream ${stream}: ${broken}`;
  }

  /** The bytes of each output stream chunks came of that the caller has, in order (what a CallResume tells musterd, PROTOCOL.md §8.3 C4). */
  outputOffsets(): StreamOffset[] {
    return [...this.receivers].sort(([a], [b]) => a - b).map(([stream, r]) => ({ stream, offset: BigInt(r.receiver.received) }));
  }

  /**
   * The Result's outputs: each Chunked output checked against its stream (size, sha256) and
   * replaced by its bytes, or, for the one written to the sink, by `{size, sha256}` (hex) once
   * the sink has everything. Throws MusterError(WorkerError) naming the output.
   */
  async finish(outputs: Values): Promise<Values> {
    const out = new Map<string, MusterValue>();
    const named = new Set<number>();
    try {
      for (const [port, v] of entriesOf(outputs)) {
        if (!(v instanceof ChunkedValue)) {
          out.set(port, v);
          continue;
        }
        const fail = (reason: string) => new MusterError(ErrorCode.WorkerError, `output ${port}: chunked stream ${v.stream}: ${reason}`);
        if (v.stream % 2 !== 0) throw fail('not a stream of the worker');
        if (named.has(v.stream)) throw fail('named by two outputs');
        named.add(v.stream);
        const size = v.size > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v.size);
        const r = this.receivers.get(v.stream);
        if (!r) {
          if (size !== 0) throw fail(`0 bytes arrived where ${v.size} were announced`);
          // an empty value needs no chunk
          out.set(port, new Uint8Array(0));
          continue;
        }
        const broken = r.receiver.finish(size, v.sha256);
        if (broken !== null) throw fail(broken);
        if (r.sink) {
          await r.sink.flushed();
          out.set(port, r.sink.summary());
        } else out.set(port, r.memory!.value());
      }
      for (const [stream] of this.receivers) {
        if (!named.has(stream)) throw new MusterError(ErrorCode.WorkerError, `chunked stream ${stream} is named by no output`);
      }
    } catch (e) {
      await this.close(e instanceof Error ? e : new Error(String(e)));
      throw e;
    }
    await this.close(null);
    return mapFromEntries(out);
  }

  /** The call ended (its Result was read, or it failed): stops every sender and receiver; closes the sink and spool files. */
  async close(error: Error | null): Promise<void> {
    if (this.over) return;
    this.over = true;
    const stop = new StreamClosed('the call is over');
    for (const [, s] of this.senders) s.sender.close(stop);
    await Promise.all([...this.senders.values()].map((s) => s.source.cleanup().catch(() => undefined)));
    for (const [, r] of this.receivers) {
      r.receiver.fail(error ?? stop); // a no-op for a stream that completed
      if (r.sink) await r.sink.close(error === null);
    }
  }
}
