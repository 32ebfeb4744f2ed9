// client.ts — a muster client: calls nodes through musterd's client socket (PROTOCOL.md §8).
// Owns: one DEALER connection, request ids unique among its open requests, correlation of
// interleaved replies by request_id, and turning Failure replies into MusterError; for durable
// calls (docs/DURABILITY.md §6) their resumption after a reconnect, the acknowledgement of each
// terminal reply once handed over, and dropping a second one (jobs.ts keeps the books); for
// resumable calls (PROTOCOL.md §8.3) their binding to the next connection when this one breaks,
// with what they received (call-resume.ts).
// Must never: leave a caller waiting forever: a lost connection fails every open request with
// Unavailable (a durable call with its job id, a resumable call with its token, waits
// resumeTimeoutMs for a daemon to come back, the latter at most until its deadline), and a call
// with a timeout also has a local deadline in case the daemon vanished; hand a call's terminal
// reply to the application twice.
import * as zmq from 'zeromq';

import { type TransportSecurity, applySecurity, connectAll, defaultEndpoint, endpointList, endpointMayBeLive } from './endpoints';
import { type EnrollmentOptions, needsCurve, prepareCurve } from './enrollment';
import { ErrorCode, MusterError, errorCodeName } from './errors';
import { DurableJobs, type Job, type JobListing, jobFromReply, jobListing, terminalJobId } from './jobs';
import { type Received, asksResumable, givenUp, keepFor, rebind } from './call-resume';
import { localIdentityPaths } from './keys';
import { type LogLevel, type Logger, resolveLogger } from './log';
import {
  type ClientBody,
  type ClientReply,
  type ReplyBody,
  decodeClientReply,
  encodeClientMessage,
} from './messages';
import {
  type NodeListing,
  type NodeStatsListingReport,
  type StatusListing,
  type WorkerListing,
  nodeListing,
  nodeStatsListing,
  statusListing,
  workerListing,
} from './listings';
import { takeValues } from './decoded-payloads';
import { type Values, encodeValues } from './value';
import { DEFAULT_WINDOW_BYTES, DEFAULT_WINDOW_ITEMS } from './credit';
import { CHUNK_WINDOW_BYTES, DEFAULT_CHUNK_THRESHOLD, type OutputSink, RESUME_AFTER_MS } from './chunks';
import { CallChunks, hasChunkedInputs, prepareInputs } from './call-chunks';
import { type CallStream, ItemQueue, windowOption } from './stream';

/**
 * A tcp:// clientAddress without `curve` or `insecure` gets its CURVE keys from enrollment
 * (docs/SECURITY.md §5), before the first request: the identity saved in `dataDir`
 * (<name>-identity.json, name "client" by default), or a new enrollment as `role` ("client",
 * or "admin" for a token minted with --role admin).
 */
export interface ClientOptions extends TransportSecurity, EnrollmentOptions {
  /** The role to enroll as: "client" (default) or "admin". */
  role?: 'client' | 'admin';
  /**
   * The daemon's client endpoint, or both daemons' of a failover pair comma-separated
   * (docs/DURABILITY.md §12): only a completed handshake counts as connected, a message is sent
   * only on a completed connection (ZMQ_IMMEDIATE), and durable calls resume on whichever
   * daemon is active. Default ipc://<runtime dir>/client.sock.
   */
  clientAddress?: string;
  /** Local deadline for ListNodes, ListWorkers, GetStatus and GetNodeStats. Default 10000 ms. */
  requestTimeoutMs?: number;
  /** How long past a call's timeout to wait for the daemon's own Timeout before giving up. Default 5000 ms. */
  replyGraceMs?: number;
  /**
   * Open requests fail with Unavailable when no connection to the daemon (ZMTP handshake done)
   * exists this long after they were sent: a stale socket file, a wrong CURVE key. Default 5000 ms.
   */
  connectTimeoutMs?: number;
  /**
   * How long a durable call whose connection was lost waits for a daemon to come back (it is
   * then resumed); after that it fails Unavailable naming its job id. Default 60000 ms. A
   * resumable call (CallOptions.resumable) waits as long, at most until its deadline.
   */
  resumeTimeoutMs?: number;
  /**
   * Bytes inputs larger than this travel chunked (PROTOCOL.md §7.9, docs/STREAMS.md §3).
   * Default 8 MiB; at most the daemon's message limit less room for the rest of the Submit.
   */
  chunkThreshold?: number;
  /**
   * How long a chunked output may miss chunks it was granted before the client asks the
   * worker to send again from what it has (a resume Credit, PROTOCOL.md §7.9 R3), and the least
   * time between two resume Credits for the chunks after one gap (R2). Default 2000.
   */
  resumeAfterMs?: number;
  logger?: Logger | LogLevel;
}

/** The error of a durable call given a value that would travel chunked. */
export const DURABLE_CHUNKS_MESSAGE =
  'a durable call carries its values inline (at most the message limit); chunked values are for non-durable calls (docs/DURABILITY.md)';

export interface ProgressEvent {
  step: number;
  total: number;
  message: string;
}

export interface CallOptions {
  /** Deadline enforced by the daemon (0 or absent: the node's default, else 30 s). */
  timeoutMs?: number;
  parameters?: Values;
  /** Called for every Progress the worker reports (asks the daemon to forward them). */
  onProgress?: (progress: ProgressEvent) => void;
  /** Called when the daemon accepted the request (queued: waiting for a free worker; jobId: a durable call's, else 0n). */
  onAccepted?: (accepted: { queued: boolean; jobId: bigint }) => void;
  /** Cancels the call when aborted. */
  signal?: AbortSignal;
  traceId?: string;
  /**
   * Journal the call (docs/DURABILITY.md): it outlives a daemon crash or restart and this
   * connection. On a reconnect the client resumes it and it gets its terminal reply exactly once.
   */
  durable?: boolean;
  /**
   * Where the call's chunked output goes instead of memory (docs/STREAMS.md §3): a file path
   * (created; removed if the call fails), a Writable (ended after the last byte, destroyed if
   * the call fails) or a function called with each piece in order (awaited). The first output
   * the worker sends chunked is written there as it arrives, without being held; in the
   * outputs, that port then holds `{size, sha256}` (sha256 as hex, checked) instead of bytes.
   * Other chunked outputs, and outputs that came inline, are plain bytes as usual.
   */
  outputSink?: OutputSink;
  /**
   * The call survives a break of the connection to musterd while musterd lives on (PROTOCOL.md
   * §8.3): musterd's first reply is an Accepted with its token (`callToken`); when the
   * connection breaks the client keeps the call (resumeTimeoutMs, at most until its deadline)
   * and binds it to the next connection with what it received, and it goes on there (items,
   * chunks, the terminal reply, even one sent just before the break). Default: true for a call
   * that streams (`stream()`, chunked inputs, an `outputSink`), false otherwise (a small call
   * would pay an Accepted for nothing). Ignored for a durable call.
   */
  resumable?: boolean;
}

export interface StreamOptions extends Omit<CallOptions, 'durable'> {
  /** Items the worker may run ahead of this consumer (the credit window). Default 64. */
  windowItems?: number;
  /** Bytes of item values the worker may run ahead. Default 4 MiB (musterd caps it, 8 MiB by default). */
  windowBytes?: number;
}

/**
 * A submitted call. `Out` is the shape the caller expects of the outputs (`Values` unless
 * given): a compile-time statement of the caller, not checked at run time.
 */
export interface Call<Out extends object = Values> {
  /**
   * This client's id of the request: 1, 2, 3, ... per Client, a safe integer (the counter wraps
   * back to 1 after Number.MAX_SAFE_INTEGER; ids only need to be unique among open requests).
   * A durable call gets a new one when it is resumed after a reconnect.
   */
  readonly requestId: number;
  /** A durable call's job id, once the daemon accepted it (undefined before, and for other calls). */
  readonly jobId?: bigint;
  /** A resumable call's token, once the daemon accepted it (undefined before, and for other calls). */
  readonly callToken?: bigint;
  /**
   * The outputs, or a MusterError (Timeout, Cancelled, WorkerError, NoWorker, ...). It may be
   * awaited late: a failure that comes first is kept for it, never an unhandled rejection.
   */
  readonly result: Promise<Out>;
  /** Asks the daemon to cancel; the result then rejects with Cancelled (unless it finished first). */
  cancel(): Promise<void>;
}

interface Pending {
  kind: ClientBody['type'];
  resolve: (body: ReplyBody) => void;
  reject: (e: Error) => void;
  onProgress?: (p: ProgressEvent) => void;
  onAccepted?: (a: { queued: boolean; jobId: bigint }) => void;
  timer?: NodeJS.Timeout;
  /** Every request id it had, newest last (a resumed durable call keeps its old ones as aliases). */
  rids: number[];
  /** A durable call's job id, from its Accepted (0n: none). */
  jobId: bigint;
  /** Durable: fails it if no daemon comes back in time after its connection was lost. */
  resumeTimer?: NodeJS.Timeout;
  /** Durable: cancel asked while disconnected, sent once resumed. */
  cancelWanted?: boolean;
  /** A stream's: takes each Item; returns why the stream is broken, or null. */
  onItem?: (seq: bigint, values: Uint8Array) => string | null;
  /** Its chunked inputs and outputs (every non-durable Submit). */
  chunks?: CallChunks;
  /** A resumable call's token, from its Accepted (0n: none); kept through a break of the connection. */
  callToken: bigint;
  /** A call's node, and its deadline (Date.now() ms) when its Submit has a timeout. */
  node?: string;
  deadline?: number;
  /** A stream's: the items it received (a CallResume tells musterd), and its last item grant (sent again once resumed). */
  itemsReceived?: () => number;
  itemGrant?: [number, number];
}

/** What a Submit's pending request knows of its call beyond the request. */
interface CallInfo {
  node: string;
  timeoutMs: number;
  itemsReceived?: () => number;
}

/** How long a client with no open call keeps its connection (see scheduleIdleClose). */
const IDLE_CLOSE_MS = 200;

export class Client {
  readonly clientAddress: string;
  private readonly security: TransportSecurity;
  private readonly enrolls: boolean;
  private readonly role: 'client' | 'admin';
  private readonly enrollment: EnrollmentOptions;
  private keysPromise: Promise<void> | null = null;
  private readonly requestTimeoutMs: number;
  private readonly replyGraceMs: number;
  private readonly connectTimeoutMs: number;
  private readonly resumeTimeoutMs: number;
  private readonly chunkThreshold: number;
  private readonly resumeAfterMs: number;
  private readonly log: Logger;
  private readonly jobs = new DurableJobs<Pending>();
  /** The request id of the last JobResume (answered only if musterd refuses it as a whole). */
  private resumeId = -1;
  /** The request id of the last CallResume (likewise). */
  private callResumeId = -1;
  private connected = false;
  /** The next socket's first handshake resumes the durable calls (the last one was renewed). */
  private resumeOnConnect = false;
  private connectTimer: NodeJS.Timeout | null = null;
  private socket: zmq.Dealer | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private sendChain: Promise<void> = Promise.resolve();
  private closed = false;
  private reading = false;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(options: ClientOptions = {}) {
    this.clientAddress = options.clientAddress ?? defaultEndpoint('client');
    this.security = { curve: options.curve, insecure: options.insecure };
    this.enrolls = needsCurve([this.clientAddress], options.curve, options.insecure);
    this.role = options.role ?? 'client';
    if (this.role !== 'client' && this.role !== 'admin') {
      throw new MusterError(ErrorCode.InvalidRequest, `a client enrolls as "client" or "admin", not ${JSON.stringify(this.role)}`);
    }
    this.enrollment = {
      dataDir: options.dataDir,
      enrollmentAddress: options.enrollmentAddress,
      enrollmentTokenFile: options.enrollmentTokenFile,
      name: options.name ?? this.role, // "client" (or "admin"), as the C++ programs
      enrollmentTimeoutMs: options.enrollmentTimeoutMs,
    };
    if (this.enrolls) localIdentityPaths('.', this.enrollment.name!); // a bad name fails now
    applySecurity({}, this.clientAddress, this.enrolls ? { insecure: true } : this.security);
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10000;
    this.replyGraceMs = options.replyGraceMs ?? 5000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    this.resumeTimeoutMs = options.resumeTimeoutMs ?? 60000;
    this.chunkThreshold = options.chunkThreshold ?? DEFAULT_CHUNK_THRESHOLD;
    if (!Number.isSafeInteger(this.chunkThreshold) || this.chunkThreshold < 1) {
      throw new MusterError(ErrorCode.InvalidRequest, `chunkThreshold must be a positive integer, got ${options.chunkThreshold}`);
    }
    this.resumeAfterMs = options.resumeAfterMs ?? RESUME_AFTER_MS;
    if (!Number.isSafeInteger(this.resumeAfterMs) || this.resumeAfterMs < 1) {
      throw new MusterError(ErrorCode.InvalidRequest, `resumeAfterMs must be a positive integer, got ${options.resumeAfterMs}`);
    }
    this.log = resolveLogger('client', options.logger ?? 'warn');
  }

  /**
   * Calls a node and waits for its outputs; throws MusterError. The type arguments state the
   * shapes of the inputs and outputs, so that a misspelt or mistyped field is a compile error:
   * `client.call<{ name: string }, { greeting: string }>('hello', { name: 'Ada' })`. `Out` is
   * not checked at run time (the node's declared outputs are its contract).
   */
  call<In extends object = Values, Out extends object = Values>(
    node: string,
    inputs?: In,
    options: CallOptions = {},
  ): Promise<Out> {
    return this.submit<In, Out>(node, inputs, options).result;
  }

  /** Submits a call and returns at once with a handle to cancel it or await its result. */
  submit<In extends object = Values, Out extends object = Values>(
    node: string,
    inputs?: In,
    options: CallOptions = {},
  ): Call<Out> {
    return this.submitCall<In, Out>(node, inputs, options, null);
  }

  /**
   * Calls a node that emits items (partial results): `for await (const item of stream)` yields
   * each item (a map of values) in order, then `await stream.result` gives the outputs; the loop
   * throws the call's error after the items received before it, and leaving it early cancels the
   * call. The worker runs ahead by at most `windowItems` items and `windowBytes` bytes: the
   * stream grants more as the loop takes items (docs/STREAMS.md §1). Not durable.
   */
  stream<In extends object = Values, Item extends object = Values, Out extends object = Values>(
    node: string,
    inputs?: In,
    options: StreamOptions = {},
  ): CallStream<Item, Out> {
    let items: ItemQueue<Item> | null = null;
    let call: Call<Out>;
    try {
      const windowItems = windowOption(options.windowItems, DEFAULT_WINDOW_ITEMS, 'windowItems', 0xffffffff);
      const windowBytes = windowOption(options.windowBytes, DEFAULT_WINDOW_BYTES, 'windowBytes', Number.MAX_SAFE_INTEGER);
      let requestId = 0;
      const queue = new ItemQueue<Item>(windowItems, windowBytes, {
        credit: (grantItems, grantBytes) => {
          const p = this.pending.get(requestId);
          if (!p) return;
          p.itemGrant = [grantItems, grantBytes]; // sent again if the call is resumed
          if (this.connected) this.sendItemGrant(p);
        },
        cancel: () => call.cancel(),
      });
      items = queue;
      call = this.submitCall<In, Out>(node, inputs, { ...options, durable: false }, {
        windowItems,
        windowBytes,
        onItem: (seq, values) => queue.push(seq, values),
        received: () => queue.received,
      });
      requestId = call.requestId;
      call.result.then(
        () => queue.end(),
        (e) => queue.end(e),
      );
    } catch (e) {
      const failed = Promise.reject(e);
      failed.catch(() => undefined);
      items = new ItemQueue<Item>(1, 1, { credit: () => undefined, cancel: async () => undefined });
      items.end(e);
      call = { requestId: 0, result: failed, cancel: async () => undefined };
    }
    const queue = items;
    const c = call;
    return {
      get requestId() {
        return c.requestId;
      },
      get callToken() {
        return c.callToken;
      },
      result: c.result,
      get itemsReceived() {
        return queue.received;
      },
      cancel: () => c.cancel(),
      [Symbol.asyncIterator]: () => queue[Symbol.asyncIterator](),
    };
  }

  private submitCall<In extends object = Values, Out extends object = Values>(
    node: string,
    inputs: In | undefined,
    options: CallOptions,
    stream: { windowItems: number; windowBytes: number; onItem: (seq: bigint, values: Uint8Array) => string | null; received: () => number } | null,
  ): Call<Out> {
    const requestId = this.newId();
    const timeoutMs = options.timeoutMs ?? 0;
    let result: Promise<Out>;
    let preparing = false;
    let cancelledEarly = false;
    let handle: Pending | undefined;
    try {
      if (!Number.isInteger(timeoutMs) || timeoutMs < 0) {
        throw new MusterError(ErrorCode.InvalidRequest, `timeoutMs must be a non-negative integer, got ${timeoutMs}`);
      }
      const given = (inputs ?? {}) as Values;
      const chunked = hasChunkedInputs(given, this.chunkThreshold);
      if (chunked && options.durable) throw new MusterError(ErrorCode.InvalidRequest, DURABLE_CHUNKS_MESSAGE);
      const submit = (values: Values, sources: Awaited<ReturnType<typeof prepareInputs>>['sources']): Promise<Out> => {
        const body: ClientBody = {
          type: 'Submit',
          node,
          inputs: encodeValues(values), // throws for a value with no muster form
          parameters: options.parameters ? encodeValues(options.parameters) : new Uint8Array(0),
          timeoutMs: BigInt(timeoutMs),
          wantProgress: !!options.onProgress,
          wantAccepted: !!options.onAccepted,
          traceId: options.traceId ?? '',
          payloadFrames: false, // outputs stay inside the Result
          durable: !!options.durable,
          batchReplies: false, // reads no Batch (PROTOCOL.md §2.2)
          streamWindowItems: stream ? stream.windowItems : 0,
          streamWindowBytes: stream ? BigInt(stream.windowBytes) : 0n,
          // the worker may chunk its outputs (§7.9); a durable call's stay inline (its Result is
          // journaled and may be delivered again, without its chunks)
          chunkWindowBytes: options.durable ? 0n : BigInt(CHUNK_WINDOW_BYTES),
          resumable: asksResumable(options.resumable, !!options.durable, sources.size > 0, stream !== null, options.outputSink !== undefined),
        };
        if (options.durable) body.wantAccepted = true; // a durable call needs its job id
        // Its chunks and credits go under its newest request id (a resumed call gets a new one).
        const chunks = new CallChunks(sources, options.outputSink, {
          sendChunk: (s, offset, data) => {
            const p = this.pending.get(requestId);
            // Not connected: lost with the connection, as what was on its way; musterd's resume
            // Credit brings the input back once the call is resumed (PROTOCOL.md §8.3 C4).
            if (!p || !this.connected) return Promise.resolve();
            const id = BigInt(this.newestId(p));
            return this.send(encodeClientMessage({ requestId: id, body: { type: 'Chunk', requestId: id, stream: s, offset: BigInt(offset), data } })).catch((e) => {
              if (p.callToken && !this.connected) return; // the connection broke under it: kept, as above
              throw e;
            });
          },
          sendCredit: (s, total, resumeAt) => {
            const p = this.pending.get(requestId);
            if (!p || !this.connected) return;
            const id = this.newestId(p);
            const resume = resumeAt !== undefined;
            this.sendQuietly({ type: 'Credit', requestId: BigInt(id), stream: s, items: 0n, bytes: BigInt(total), resumeOffset: BigInt(resumeAt ?? 0), resume }, id);
          },
          abandon: (error) => {
            const p = this.pending.get(requestId);
            if (!p) return;
            this.sendQuietly({ type: 'Cancel' }, this.newestId(p));
            this.fail(p, error);
          },
        }, this.resumeAfterMs);
        const localDeadline = timeoutMs > 0 ? timeoutMs + this.replyGraceMs + (options.durable ? this.resumeTimeoutMs : 0) : 0;
        const answered = this.request(requestId, body, localDeadline, options.onProgress, options.onAccepted, stream?.onItem, chunks, {
          node,
          timeoutMs,
          itemsReceived: stream?.received,
        });
        handle = this.pending.get(requestId); // what `requestId`, `jobId`, `callToken` read, also once it ended
        chunks.start();
        return answered.then(
          async (reply) => {
            if (reply.type !== 'Result') {
              throw new MusterError(ErrorCode.BadMessage, `unexpected ${reply.type} in answer to Submit`);
            }
            if (reply.outputsInFrame) {
              // only for a Submit with payloadFrames: never this client's
              throw new MusterError(ErrorCode.BadMessage, 'outputs in a separate frame were not requested');
            }
            return (await chunks.finish(takeValues(reply.outputs))) as Out; // decoded once, when verified
          },
          async (e) => {
            await chunks.close(e instanceof Error ? e : new Error(String(e)));
            throw e;
          },
        );
      };
      if (!chunked) {
        result = submit(given, new Map());
      } else {
        // size and sha256 first (a file hashed, a stream spooled), then the Submit
        preparing = true;
        result = prepareInputs(given, this.chunkThreshold).then(async ({ inputs: values, sources }) => {
          preparing = false;
          if (cancelledEarly) {
            await Promise.all([...sources.values()].map((x) => x.source.cleanup()));
            throw new MusterError(ErrorCode.Cancelled, 'the call was cancelled before it was submitted');
          }
          try {
            return submit(values, sources);
          } catch (e) {
            // not submitted (a parameter with no muster form): its spool files go now
            await Promise.all([...sources.values()].map((x) => x.source.cleanup()));
            throw e;
          }
        });
      }
    } catch (e) {
      result = Promise.reject(e);
    }
    // A call's failure may come while its caller awaits something else (a jobCancel, another
    // call) and looks at `result` only afterwards: marked handled here, so Node does not end
    // the process with an unhandled rejection. Whoever awaits `result` still gets the error.
    result.catch(() => undefined);
    const cancel = async (): Promise<void> => {
      const p = this.pending.get(requestId);
      if (!p) {
        if (preparing) cancelledEarly = true; // its inputs are being hashed: it is not submitted
        return;
      }
      if (!this.connected && (p.jobId || p.callToken)) {
        p.cancelWanted = true; // durable or resumable: the daemon still holds it; cancel it once resumed
        return;
      }
      await this.send(encodeClientMessage({ requestId: BigInt(p.rids[p.rids.length - 1]!), body: { type: 'Cancel' } }));
    };
    if (options.signal) {
      const signal = options.signal;
      const onAbort = () => void cancel().catch(() => undefined);
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        result.finally(() => signal.removeEventListener('abort', onAbort)).catch(() => undefined);
      }
    }
    const now = () => {
      const p = handle;
      return p ? { requestId: this.newestId(p), jobId: p.jobId || undefined, callToken: p.callToken || undefined } : { requestId, jobId: undefined, callToken: undefined };
    };
    return {
      get requestId() {
        return now().requestId;
      },
      get jobId() {
        return now().jobId;
      },
      get callToken() {
        return now().callToken;
      },
      result,
      cancel,
    };
  }

  // ---- durable calls, detached (docs/DURABILITY.md §6): scoped to this client's workspace ----

  /**
   * A durable call by job id: `info` (state, node, worker, attempts, ...) while it is open; once
   * finished its `outputs` or `error` (`result()` returns or throws them), and the daemon forgets
   * it (this fetch acknowledges it). Rejects with InvalidRequest "no such job" for a job the
   * daemon does not hold (unknown, expired, acknowledged, another workspace's).
   */
  async jobGet<Out extends object = Values>(jobId: bigint | number): Promise<Job<Out>> {
    const id = BigInt(jobId);
    return jobFromReply<Out>(id, await this.request(this.newId(), { type: 'JobGet', jobId: id }, this.requestTimeoutMs));
  }

  /** The durable calls of this client's workspace the daemon holds (open, or finished and not yet acknowledged), oldest first. */
  async jobList(): Promise<JobListing[]> {
    const reply = await this.request(this.newId(), { type: 'JobList' }, this.requestTimeoutMs);
    if (reply.type !== 'JobInfoList') throw new MusterError(ErrorCode.BadMessage, `unexpected ${reply.type} in answer to JobList`);
    return reply.jobs.map(jobListing);
  }

  /** Cancels a durable call by job id (its caller gets Cancelled); resolves to its listing (state Finished, code Cancelled). */
  async jobCancel(jobId: bigint | number): Promise<JobListing> {
    const reply = await this.request(this.newId(), { type: 'JobCancel', jobId: BigInt(jobId) }, this.requestTimeoutMs);
    if (reply.type !== 'JobInfo') throw new MusterError(ErrorCode.BadMessage, `unexpected ${reply.type} in answer to JobCancel`);
    return jobListing(reply);
  }

  /** The nodes the daemon serves to this client's workspace. */
  async nodes(): Promise<NodeListing[]> {
    const reply = await this.request(this.newId(), { type: 'ListNodes' }, this.requestTimeoutMs);
    if (reply.type !== 'NodeList') throw new MusterError(ErrorCode.BadMessage, `unexpected ${reply.type} in answer to ListNodes`);
    return reply.nodes.map(nodeListing);
  }

  /** The workers attached to the daemon. */
  async workers(): Promise<WorkerListing[]> {
    const reply = await this.request(this.newId(), { type: 'ListWorkers' }, this.requestTimeoutMs);
    if (reply.type !== 'WorkerList') throw new MusterError(ErrorCode.BadMessage, `unexpected ${reply.type} in answer to ListWorkers`);
    return reply.workers.map(workerListing);
  }

  /** The daemon's status report (counters and uptime as numbers). */
  async status(): Promise<StatusListing> {
    const reply = await this.request(this.newId(), { type: 'GetStatus' }, this.requestTimeoutMs);
    if (reply.type !== 'StatusReport') throw new MusterError(ErrorCode.BadMessage, `unexpected ${reply.type} in answer to GetStatus`);
    return statusListing(reply);
  }

  /**
   * musterd's per-node statistics of this client's workspace since it started (every caller's
   * calls, not only this client's) and the workspace's newest failures (PROTOCOL.md §8):
   * per node `completed`, `failed`, `failures` by code, `rate1m` (per second), workers, in
   * flight, queue depth, and `queueWait` / `service` histograms (`count`, `p50Us`, `p90Us`,
   * `p99Us`, buckets); `recentFailures` newest first with `ageMs`. Every figure a number.
   */
  async nodeStats(): Promise<NodeStatsListingReport> {
    const reply = await this.request(this.newId(), { type: 'GetNodeStats' }, this.requestTimeoutMs);
    if (reply.type !== 'NodeStatsReport') throw new MusterError(ErrorCode.BadMessage, `unexpected ${reply.type} in answer to GetNodeStats`);
    return nodeStatsListing(reply);
  }

  // ---- admin commands (PROTOCOL.md §8): the local owner over ipc://, or an admin identity ----

  /**
   * Mints an enrollment token and returns its text (the only time its secret exists in clear).
   * ttlMs 0: 24 hours; workspace "": "default"; name labels the token and the identity it
   * enrolls. Rejects with PermissionDenied unless this client is the local owner or an admin.
   */
  async tokenCreate(role = 'worker', ttlMs: number | bigint = 0, uses = 1, workspace = '', name = ''): Promise<string> {
    const reply = await this.request(
      this.newId(),
      { type: 'TokenCreate', role, ttlMs: BigInt(ttlMs), uses, workspace, name },
      this.requestTimeoutMs,
    );
    if (reply.type !== 'TokenCreated' || !reply.token) {
      throw new MusterError(ErrorCode.BadMessage, `unexpected ${reply.type} in answer to TokenCreate`);
    }
    return reply.token;
  }

  /** Every token the daemon knows (no secrets), parsed from the daemon's JSON report. */
  tokenList(): Promise<unknown> {
    return this.admin({ type: 'TokenList' });
  }

  /** Revokes a token by id; resolves to the revoked token (parsed JSON). */
  tokenRevoke(id: string): Promise<unknown> {
    return this.admin({ type: 'TokenRevoke', id });
  }

  /** Every enrolled identity, revoked ones included (parsed JSON). */
  keyList(): Promise<unknown> {
    return this.admin({ type: 'KeyList' });
  }

  /** Revokes an identity at once; resolves to the revoked identity (parsed JSON). */
  keyRevoke(id: string): Promise<unknown> {
    return this.admin({ type: 'KeyRevoke', id });
  }

  private async admin(body: ClientBody): Promise<unknown> {
    const reply = await this.request(this.newId(), body, this.requestTimeoutMs);
    if (reply.type !== 'AdminReport') throw new MusterError(ErrorCode.BadMessage, `unexpected ${reply.type} in answer to ${body.type}`);
    try {
      return JSON.parse(reply.json || 'null');
    } catch (e) {
      throw new MusterError(ErrorCode.BadMessage, `the daemon's ${body.type} report is not JSON: ${(e as Error).message}`);
    }
  }

  /**
   * For a tcp:// clientAddress without keys: reuses the saved identity or enrolls now (the first
   * request does it anyway). Rejects with EnrollmentError; resolves at once otherwise.
   */
  enroll(): Promise<void> {
    if (!this.enrolls || this.security.curve) return Promise.resolve();
    if (!this.keysPromise) {
      const p = prepareCurve([this.clientAddress], this.role, { ...this.enrollment, logger: this.log }).then((curve) => {
        this.security.curve = curve;
      });
      this.keysPromise = p;
      p.catch(() => {
        if (this.keysPromise === p) this.keysPromise = null; // the next request tries again
      });
    }
    return this.keysPromise;
  }

  /** Closes the connection; open requests fail with Unavailable. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new MusterError(ErrorCode.Unavailable, 'the client was closed'));
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.dropSocket();
  }

  // ---- internals -----------------------------------------------------------------------

  private newId(): number {
    // Unique among this connection's open requests (PROTOCOL.md §8); never 0; always a safe
    // integer, so that it is exact as a number (wraps after 2^53 - 1, long after any request
    // with that id was answered).
    const id = this.nextId;
    this.nextId = id >= Number.MAX_SAFE_INTEGER ? 1 : id + 1;
    return id;
  }

  private ensureSocket(): zmq.Dealer {
    if (this.closed) throw new MusterError(ErrorCode.Unavailable, 'the client was closed');
    if (this.socket) return this.socket;
    const socket = new zmq.Dealer({ linger: 0, sendHighWaterMark: 10000 });
    // The event observer starts before connect(): started after, it can miss the first
    // handshake (over ipc it may complete at once), and the client would then think itself
    // never connected (its connect timer failing a long call, no resume after a reconnect).
    let everConnected = false;
    socket.events.on('handshake', () => {
      if (this.socket !== socket) return;
      const was = this.connected;
      this.connected = true;
      if (this.connectTimer) clearTimeout(this.connectTimer);
      this.connectTimer = null;
      if (!was && (everConnected || this.resumeOnConnect)) {
        this.resumeOnConnect = false;
        this.resume();
      }
      everConnected = true;
    });
    socket.events.on('disconnect', () => {
      if (this.socket !== socket) return; // dropped while idle
      this.connected = false;
      this.jobs.connectionLost();
      const lost = new MusterError(ErrorCode.Unavailable, `lost the connection to the daemon at ${this.clientAddress}`);
      for (const p of this.openRequests()) {
        // durable with its job id, resumable with its token: resumed when a daemon is back
        if (p.jobId || p.callToken) this.awaitResume(p);
        else this.fail(p, lost);
      }
      this.renewSocket();
    });
    try {
      applySecurity(socket, this.clientAddress, this.security);
      if (endpointList(this.clientAddress).some((e) => e.startsWith('tcp://'))) {
        // Notice a vanished daemon on TCP, where no disconnect may ever arrive otherwise.
        socket.heartbeatInterval = 2000;
        socket.heartbeatTimeout = 6000;
      }
      connectAll(socket, this.clientAddress, true); // a failover pair: ZMQ_IMMEDIATE
    } catch (e) {
      socket.close();
      throw e;
    }
    this.socket = socket;
    return socket;
  }

  /**
   * Reads replies only while requests are open: an idle client has no receive pending, so a
   * client that is never closed does not keep Node alive once its calls are done (zeromq
   * watches a socket's fd only while a receive or send waits on it).
   */
  private startReading(socket: zmq.Dealer): void {
    if (this.reading || socket.closed) return;
    this.reading = true;
    void this.receiveLoop(socket).finally(() => {
      this.reading = false;
      if (this.pending.size > 0 && this.socket === socket) this.startReading(socket);
    });
  }

  private async receiveLoop(socket: zmq.Dealer): Promise<void> {
    try {
      while (this.pending.size > 0 && !socket.closed) {
        const frames = await socket.receive();
        const last = frames[frames.length - 1];
        if (!last) continue;
        let reply: ClientReply;
        try {
          reply = decodeClientReply(last);
        } catch (e) {
          this.log.warn(`ignoring a bad reply from the daemon: ${(e as Error).message}`);
          continue;
        }
        this.onReply(reply);
      }
    } catch (e) {
      if (!socket.closed) this.log.warn(`client socket: ${(e as Error).message}`);
    }
  }

  /** Each open request once (a resumed durable call is under several ids). */
  private openRequests(): Pending[] {
    return [...new Set(this.pending.values())];
  }

  private fail(p: Pending, error: Error): void {
    this.settle(p.rids[0]!);
    if (p.jobId) this.jobs.forget(p.jobId);
    p.reject(error);
  }

  /** The request id a call goes by now (a resumed call gets a new one; the old ones stay aliases). */
  private newestId(p: Pending): number {
    return p.rids[p.rids.length - 1]!;
  }

  /** Sends a stream's last item grant (cumulative totals) under its newest request id. */
  private sendItemGrant(p: Pending): void {
    if (!p.itemGrant) return;
    const id = this.newestId(p);
    const [items, bytes] = p.itemGrant;
    this.sendQuietly({ type: 'Credit', requestId: BigInt(id), stream: 0, items: BigInt(items), bytes: BigInt(bytes), resumeOffset: 0n, resume: false }, id);
  }

  /**
   * A durable or resumable call waiting for a daemon to take it back (its connection was lost,
   * or its JobResume / CallResume is unanswered): fails it unless an answer for it comes within
   * resumeTimeoutMs (a resumable call: at most until its deadline).
   */
  private awaitResume(p: Pending): void {
    if (p.resumeTimer) clearTimeout(p.resumeTimer);
    if (!p.jobId) {
      const wait = keepFor(this.resumeTimeoutMs, p.deadline);
      const pastDeadline = wait < this.resumeTimeoutMs;
      p.resumeTimer = setTimeout(() => {
        p.resumeTimer = undefined;
        if (!this.pending.has(p.rids[0]!)) return;
        const message = givenUp(this.newestId(p), p.node ?? '', this.clientAddress, this.resumeTimeoutMs, this.connected, pastDeadline);
        this.fail(p, new MusterError(ErrorCode.Unavailable, message));
      }, wait);
      return;
    }
    p.resumeTimer = setTimeout(() => {
      p.resumeTimer = undefined;
      if (!this.pending.has(p.rids[0]!)) return;
      const why = this.connected
        ? `no answer to its resume from the daemon at ${this.clientAddress}`
        : `the connection to the daemon at ${this.clientAddress} was lost and no daemon came back`;
      this.fail(
        p,
        new MusterError(
          ErrorCode.Unavailable,
          `durable job ${p.jobId}: ${why} within ${this.resumeTimeoutMs} ms; it stays with musterd (jobGet(${p.jobId}n) fetches its outcome)`,
        ),
      );
    }, this.resumeTimeoutMs);
  }

  /**
   * A new connection: binds the open durable calls to it (JobResume) and the resumable calls
   * kept since the last one broke (CallResume, with what each received), each under a new
   * request id; repeats the acknowledgements the lost connection may have lost, sends the
   * cancels asked meanwhile.
   */
  private resume(): void {
    const open = this.openRequests();
    const calls: [bigint, Pending][] = open.filter((p) => p.jobId).map((p) => [p.jobId, p]);
    const { resume, ack, bound } = this.jobs.reconnected(calls, () => this.newId());
    const kept: [Pending, Received][] = open
      .filter((p) => p.callToken && !p.jobId && p.resumeTimer !== undefined)
      .map((p) => [p, { callToken: p.callToken, itemsReceived: p.itemsReceived?.() ?? 0, outputs: p.chunks?.outputOffsets() ?? [] }]);
    const again = rebind(kept, () => this.newId());
    for (const [rid, p] of [...bound, ...again.bound]) {
      this.pending.set(rid, p);
      p.rids.push(rid);
      this.awaitResume(p); // until the daemon answers for it
    }
    if (bound.size > 0) this.log.info(`resuming ${bound.size} durable call(s) at ${this.clientAddress}`);
    if (again.bound.size > 0) this.log.info(`resuming ${again.bound.size} call(s) on the new connection to ${this.clientAddress}`);
    // in this order on the wire: send() chains every message
    if (resume) {
      this.resumeId = this.newId();
      this.sendQuietly(resume, this.resumeId);
    }
    if (again.resume) {
      this.callResumeId = this.newId();
      this.sendQuietly(again.resume, this.callResumeId);
    }
    if (ack) this.sendQuietly(ack);
    for (const p of [...bound.values(), ...again.bound.values()]) if (p.cancelWanted) this.sendQuietly({ type: 'Cancel' }, this.newestId(p));
  }

  /** Sends a message that gets no answer of its own (JobResume, JobAck, Cancel); a failure is logged. */
  private sendQuietly(body: ClientBody, requestId = this.newId()): void {
    this.send(encodeClientMessage({ requestId: BigInt(requestId), body })).catch((e) =>
      this.log.warn(`cannot send ${body.type} to the daemon: ${(e as Error).message}`),
    );
  }

  /** Hands a call its terminal reply, then, for a durable call's, acknowledges it to the daemon. */
  private deliver(p: Pending, body: ReplyBody): void {
    this.settle(p.rids[0]!);
    if (body.type === 'Failure') p.reject(new MusterError(body.code, body.message));
    else p.resolve(body);
    const jobId = terminalJobId(body);
    if (jobId) {
      if (!p.jobId) p.jobId = jobId;
      this.jobs.finish(jobId);
      this.sendQuietly({ type: 'JobAck', jobIds: [jobId] });
    } else if (p.jobId) {
      this.jobs.forget(p.jobId);
    }
  }

  private onReply(reply: ClientReply): void {
    // Ids this client sent are safe integers: a larger one is not an answer to us.
    const id = reply.requestId <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(reply.requestId) : 0;
    const p = this.pending.get(id);
    const body = reply.body;
    const jobId = terminalJobId(body);
    if ((!p || p.kind === 'Submit') && jobId && this.jobs.delivered(jobId)) {
      // A second terminal reply of a job already handed over (redelivered after a reconnect, or
      // late on an old request id): dropped; the daemon still holds it.
      this.log.debug(`dropping a second reply for durable job ${jobId}`);
      this.jobs.acked(jobId);
      this.sendQuietly({ type: 'JobAck', jobIds: [jobId] });
      return;
    }
    if (!p) {
      if (body.type === 'Failure' && id === this.resumeId) {
        // musterd refused the JobResume as a whole (too many jobs, or it does not know it)
        this.log.warn(`the daemon at ${this.clientAddress} refused to resume durable calls: ${body.message}`);
        for (const w of this.openRequests()) {
          if (w.resumeTimer && w.jobId) this.fail(w, new MusterError(body.code, `resuming durable job ${w.jobId}: ${body.message}`));
        }
      } else if (body.type === 'Failure' && id === this.callResumeId) {
        // musterd refused the CallResume as a whole (more calls than it takes)
        this.log.warn(`the daemon at ${this.clientAddress} refused to resume calls: ${body.message}`);
        for (const w of this.openRequests()) {
          if (w.resumeTimer && w.callToken && !w.jobId) {
            this.fail(w, new MusterError(body.code, `resuming request ${this.newestId(w)} (${w.node ?? ''}): ${body.message}`));
          }
        }
      } else if (body.type === 'Failure') {
        this.log.warn(`daemon: ${errorCodeName(body.code)}: ${body.message} (request ${reply.requestId})`);
      }
      return;
    }
    const wasLost = p.resumeTimer !== undefined;
    if (p.resumeTimer) {
      clearTimeout(p.resumeTimer); // an answer for it: taken back (or ended below)
      p.resumeTimer = undefined;
    }
    if (p.kind === 'Submit' && (body.type === 'Result' || body.type === 'Failure')) {
      this.deliver(p, body);
      return;
    }
    if (p.kind === 'JobGet' && jobId) {
      // a finished job's kept outcome: this delivery counts (DURABILITY.md §6)
      this.settle(id);
      p.resolve(body);
      const own = this.jobs.open.get(jobId);
      if (own) this.deliver(own, body); // also ends this client's own open call of that job
      else {
        this.jobs.acked(jobId);
        this.sendQuietly({ type: 'JobAck', jobIds: [jobId] });
      }
      return;
    }
    switch (body.type) {
      case 'Accepted':
        if (body.jobId && !p.jobId) {
          p.jobId = body.jobId;
          this.jobs.opened(body.jobId, p);
        } else if (body.callToken && !p.jobId && !p.callToken) {
          p.callToken = body.callToken; // resumable from now on (PROTOCOL.md §8.3 C1)
        }
        if (wasLost && p.callToken && !p.jobId) {
          // Taken back (C2): the item grant it sent last may have been lost with the old
          // connection; credit is cumulative, so sending it again is harmless.
          this.sendItemGrant(p);
          return;
        }
        try {
          p.onAccepted?.({ queued: body.queued, jobId: body.jobId });
        } catch (e) {
          this.log.warn(`onAccepted callback threw: ${(e as Error).message}`);
        }
        return;
      case 'Item': {
        if (!p.onItem) {
          this.log.warn(`item for request ${id}, which asked for none: dropped`);
          return;
        }
        const broken = p.onItem(body.seq, body.values);
        if (broken !== null) {
          // the daemon checks the order: this is not musterd talking
          this.sendQuietly({ type: 'Cancel' }, id);
          this.fail(p, new MusterError(ErrorCode.BadMessage, `request ${id}: ${broken}`));
        }
        return;
      }
      case 'Credit':
        // the worker's grant for one of this call's chunked inputs (odd stream); a resume
        // Credit sends the input again from its offset (PROTOCOL.md §7.9 R9)
        p.chunks?.onCredit(body.stream, body.bytes, body.resume ?? false, body.resumeOffset ?? 0n);
        return;
      case 'Chunk': {
        if (!p.chunks) {
          this.log.warn(`chunk for request ${id}, which takes none: dropped`);
          return;
        }
        const broken = p.chunks.onChunk(body.stream, body.offset, body.data ?? new Uint8Array(0));
        if (broken !== null) {
          this.sendQuietly({ type: 'Cancel' }, id);
          this.fail(p, new MusterError(ErrorCode.WorkerError, broken));
        }
        return;
      }
      case 'Progress':
        try {
          p.onProgress?.({ step: Number(body.step), total: Number(body.total), message: body.message });
        } catch (e) {
          this.log.warn(`onProgress callback threw: ${(e as Error).message}`);
        }
        return;
      case 'Failure':
        this.settle(id);
        p.reject(new MusterError(body.code, body.message));
        return;
      default:
        this.settle(id);
        p.resolve(body);
    }
  }

  private settle(id: number): void {
    const p = this.pending.get(id);
    if (p?.timer) clearTimeout(p.timer);
    if (p?.resumeTimer) clearTimeout(p.resumeTimer);
    for (const rid of p?.rids ?? [id]) this.pending.delete(rid);
    if (this.pending.size === 0) this.scheduleIdleClose();
  }

  /**
   * A client with no open call closes its connection after IDLE_CLOSE_MS (the next call opens
   * a new one), so one that is never closed does not keep Node alive: zeromq's socket-event
   * observer always waits on its socket. The timer itself is unref'd.
   */
  private scheduleIdleClose(): void {
    if (this.idleTimer || !this.socket) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.pending.size === 0 && this.socket) this.dropSocket();
    }, IDLE_CLOSE_MS);
    this.idleTimer.unref();
  }

  /**
   * The connection is given up and the calls on it were failed: what the socket still holds
   * (messages libzmq had not written yet, e.g. a Submit queued while the daemon was stalled) is
   * dropped with it, so that a call reported failed can never reach the next daemon on this
   * address and run after all (docs/DURABILITY.md §13). Durable calls waiting to be resumed get
   * a new socket at once, whose first handshake resumes them.
   */
  private renewSocket(): void {
    this.dropSocket();
    if (this.pending.size === 0 || this.closed) return;
    this.resumeOnConnect = true;
    try {
      this.startReading(this.ensureSocket());
    } catch (e) {
      this.log.warn(`cannot open a new connection to ${this.clientAddress}: ${(e as Error).message}`);
    }
  }

  private dropSocket(): void {
    const socket = this.socket;
    this.socket = null;
    this.connected = false;
    if (socket && !socket.closed) {
      socket.linger = 0;
      socket.close(); // its event observer ends with it
    }
  }

  private failAll(error: MusterError): void {
    for (const p of this.openRequests()) this.fail(p, error);
  }

  private send(bytes: Uint8Array): Promise<void> {
    const next = this.sendChain.then(async () => {
      await this.enroll(); // tcp:// without keys: never connect before the keys are known
      const socket = this.ensureSocket();
      await socket.send(bytes);
      if (this.pending.size > 0) this.startReading(socket);
    });
    this.sendChain = next.catch(() => undefined);
    return next;
  }

  /** Fails open requests if the connection is not up within connectTimeoutMs. */
  private armConnectTimer(): void {
    if (this.connected || this.connectTimer || this.connectTimeoutMs <= 0) return;
    this.connectTimer = setTimeout(() => {
      this.connectTimer = null;
      if (this.connected) return;
      const error = new MusterError(
        ErrorCode.Unavailable,
        `cannot connect to the daemon at ${this.clientAddress} (no handshake within ${this.connectTimeoutMs} ms)`,
      );
      // Durable calls waiting to be resumed keep waiting (resumeTimeoutMs bounds them).
      for (const p of this.openRequests()) if (!p.resumeTimer) this.fail(p, error);
      this.renewSocket(); // what it still queues for a daemon that may come later: dropped
    }, this.connectTimeoutMs);
  }

  private request(
    requestId: number,
    body: ClientBody,
    localDeadlineMs: number,
    onProgress?: (p: ProgressEvent) => void,
    onAccepted?: (a: { queued: boolean; jobId: bigint }) => void,
    onItem?: (seq: bigint, values: Uint8Array) => string | null,
    chunks?: CallChunks,
    call?: CallInfo,
  ): Promise<ReplyBody> {
    return new Promise<ReplyBody>((resolve, reject) => {
      if (!endpointMayBeLive(this.clientAddress)) {
        reject(new MusterError(ErrorCode.Unavailable, `no daemon is listening at ${this.clientAddress}`));
        return;
      }
      let bytes: Uint8Array;
      try {
        bytes = encodeClientMessage({ requestId: BigInt(requestId), body });
      } catch (e) {
        reject(e instanceof MusterError ? e : new MusterError(ErrorCode.InvalidRequest, (e as Error).message));
        return;
      }
      const p: Pending = { kind: body.type, resolve, reject, onProgress, onAccepted, onItem, chunks, rids: [requestId], jobId: 0n, callToken: 0n };
      if (call) {
        p.node = call.node;
        if (call.timeoutMs > 0) p.deadline = Date.now() + call.timeoutMs;
        p.itemsReceived = call.itemsReceived;
      }
      if (localDeadlineMs > 0) {
        p.timer = setTimeout(() => {
          if (!this.pending.has(requestId)) return;
          this.fail(p, new MusterError(ErrorCode.Unavailable, `no answer from the daemon at ${this.clientAddress} within ${localDeadlineMs} ms`));
        }, localDeadlineMs);
      }
      this.pending.set(requestId, p);
      if (this.idleTimer) clearTimeout(this.idleTimer);
      this.idleTimer = null;
      if (this.socket) this.startReading(this.socket);
      this.enroll().then(
        () => this.armConnectTimer(),
        () => undefined, // reported by send() below
      );
      this.send(bytes).catch((e) => {
        if (!this.pending.has(requestId)) return;
        this.settle(requestId);
        reject(e instanceof MusterError ? e : new MusterError(ErrorCode.Unavailable, `cannot send to the daemon: ${(e as Error).message}`));
      });
    });
  }
}
