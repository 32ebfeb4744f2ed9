// worker.ts — a muster worker: serves nodes to musterd following PROTOCOL.md §7.
// Owns: the worker side of the protocol: a DEALER to the response socket that, once musterd
// grants `direct` (§7.10), carries everything (no SUB then; attached again as soon as its
// connection is made again); else a SUB subscribed to "b:" and to the worker topic Attached
// assigns ("w:<identity>:<id>:", the only other one musterd applies), before Attach when the
// worker does not ask for direct, after Attached when an older daemon does not grant it;
// the replies paired with the messages that get one (every
// message; without answer Acks, §7.7, only Attach, Detach and some Pongs), Pong for every Ping
// (listing in-flight ids and the answers kept unconfirmed; while idle, every k-th broadcast one
// if the daemon grants idle pongs, §7.3), dispatch of WorkRequests to handlers with at most `capacity`
// running, Abort, re-attach (Rejected{reattach}, a new daemon instance, no Ping for
// ping_interval_ms x liveness; chunked streams resumed on the same instance, their calls aborted
// on another, PROTOCOL.md §7.9 R4), the chunked outputs of answered requests kept until their
// Result is confirmed (R11), and Detach plus a bounded drain on shutdown.
// Must never: answer a request twice, run a re-sent request id that is already running, crash
// on a malformed message (it is logged and dropped), or attach again once it is stopping (a
// worker that exits after such an Attach leaves a ghost behind that swallows calls).
import { EventEmitter } from 'node:events';
import * as os from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';

import * as zmq from 'zeromq';

import { type CurveKeys, type TransportSecurity, applySecurity, connectAll, defaultEndpoint } from './endpoints';
import { type EnrollmentOptions, needsCurve, prepareCurve } from './enrollment';
import { localIdentityPaths } from './keys';
import { ErrorCode, MusterError, errorCodeName, workerFailureCode } from './errors';
import { type LogLevel, type Logger, resolveLogger } from './log';
import {
  type AttachedBody,
  type CallerContext,
  type DaemonMessage,
  type NodeSpec,
  type WorkRequestBody,
  type WorkerBody,
  BadPayloadError,
  decodeDaemonMessage,
  encodeWorkerMessage,
} from './messages';
import { takeValues } from './decoded-payloads';
import type { NodeSpecListing } from './listings';
import { type NodeDefinition, applyPorts, streamedInputs, toNodeSpec, validWorkerId } from './nodes';
import { DEFAULT_CHUNK_THRESHOLD, RESUME_AFTER_MS } from './chunks';
import { JobChunks } from './job-chunks';
import { LazyAbort } from './lazy-abort';
import { ItemSender, driveIterator, isItemSource } from './items';
import { grantNumber } from './credit';
import { ChunkedValue, type Values, decodeValues, encodeValues, entriesOf, kindOf } from './value';
import { SDK_NAME } from './version';

/**
 * tcp:// endpoints without `curve` or `insecure` get their CURVE keys from enrollment
 * (docs/SECURITY.md §5): the identity saved in `dataDir` (<name>-identity.json, name "worker"
 * by default), or a new enrollment with the token from MUSTER_ENROLLMENT_TOKEN, else
 * `enrollmentTokenFile`, else $XDG_CONFIG_HOME/muster/enrollment-token.
 */
export interface WorkerOptions extends TransportSecurity, EnrollmentOptions {
  /** `[A-Za-z0-9_.-]{1,64}`, unique among live workers. Default: "ts-<hostname>-<pid>". */
  workerId?: string;
  /** Requests run at once. Default 1. */
  capacity?: number;
  /**
   * The daemon's request (PUB) endpoint, or both daemons' of a failover pair comma-separated
   * (docs/DURABILITY.md §12). Default ipc://<runtime dir>/request.sock.
   */
  requestAddress?: string;
  /** The daemon's response (ROUTER) endpoint, or a failover pair's two. Default ipc://<runtime dir>/response.sock. */
  responseAddress?: string;
  hostname?: string;
  /** Re-connect and attach again when no Attached came within this time. Default 5000. */
  attachTimeoutMs?: number;
  /** How long stop() lets running requests finish before it aborts them. Default 10000. */
  shutdownGraceMs?: number;
  /**
   * Bytes outputs larger than this travel chunked when the caller takes chunked outputs
   * (PROTOCOL.md §7.9, docs/STREAMS.md §3). Default 8 MiB.
   */
  chunkThreshold?: number;
  /**
   * How long an input stream may miss chunks it was granted before the worker asks the caller
   * to send again from what it has (a resume Credit, PROTOCOL.md §7.9 R3), and the least time
   * between two resume Credits for the chunks after one gap (R2). Default 2000.
   */
  resumeAfterMs?: number;
  /** A Logger, or the level for the default stderr logger. */
  logger?: Logger | LogLevel;
  /**
   * Ask musterd for no Ack per Progress, Result, Failure, Item, Chunk or Credit (PROTOCOL.md
   * §7.7): answers are kept until the Ack to a Pong that listed them confirms them. Default
   * true; a daemon that does not know the field Acks every answer, as with false.
   */
  noAnswerAcks?: boolean;
  /**
   * With noAnswerAcks granted: once the answers kept unconfirmed add up to this many bytes, ask
   * for their confirmation at once (a Pong repeating the last one, §7.7 "Early confirmation")
   * instead of at the next ping. Default 32 MiB; 0: only at pings.
   */
  confirmKeptBytes?: number;
  /**
   * Ask to leave some broadcast pings unanswered while the worker holds nothing (PROTOCOL.md
   * §7.3 "Idle pongs"): at most `Attached.idle_pong_every - 1` in a row. Default true.
   */
  idlePongs?: boolean;
  /**
   * Ask musterd for everything on the response connection (PROTOCOL.md §7.10): no SUB, one
   * connection to musterd instead of two. Default true; a daemon that does not grant it (an
   * older one) is served with a SUB connected after Attached, as with false.
   */
  direct?: boolean;
}

/**
 * What a handler gets for one request. `In` and `Params` are the shapes the handler expects of
 * its inputs and parameters (`worker.node<In, Out>(...)`): compile-time only; at run time the
 * SDK checks the declared ports (required ones present, defaults applied), not their types.
 */
export interface Context<In extends object = Record<string, any>, Params extends object = Record<string, any>> {
  /** Inputs, checked against the node's declared inputs, defaults applied. */
  readonly inputs: In;
  /**
   * The same inputs in the wire's exact key order: a plain object, or a Map when a plain
   * object cannot keep the order (keys such as "1"). Use it to pass inputs on unchanged.
   */
  readonly rawInputs: Values;
  /** Parameters, checked and with defaults applied. */
  readonly parameters: Params;
  /** Who asked (stamped by the daemon). */
  readonly caller: CallerContext;
  /**
   * The daemon's id of this request. musterd numbers requests 1, 2, 3, ... per run, so the id is
   * an exact number (below 2^53: 285 years at a million requests a second).
   */
  readonly requestId: number;
  readonly node: string;
  /** 1 for the first dispatch; more when the daemon re-sent or re-queued it. */
  readonly attempt: number;
  /** Time left when the daemon sent the request (0: unknown). */
  readonly timeoutMs: number;
  /** Date.now() by which the daemon will have given up (Infinity if unknown). */
  readonly deadline: number;
  /** Aborted when the daemon sends Abort (deadline, cancel) or the worker stops. */
  readonly signal: AbortSignal;
  readonly aborted: boolean;
  /** Throws MusterError(Cancelled or Timeout) if the request was aborted. */
  throwIfAborted(): void;
  /** Reports progress to the caller (if it asked for progress). total 0: unknown. */
  progress(step: number | bigint, total?: number | bigint, message?: string): void;
  /** True when the caller reads items (it called `stream`): only then may the handler emit. */
  readonly streaming: boolean;
  /**
   * Sends one item (a map of values, like outputs) to the caller before the handler returns
   * (docs/STREAMS.md §2). Waits while the caller's window is full (its credit reopens it);
   * resolves true once the item is on its way, false when the request was aborted (stop then).
   * Rejects with StreamNotRequested when the caller asked for no items, with a MusterError
   * (WorkerError) for an item that cannot be sent. An `async function*` handler yields its
   * items instead.
   */
  emit(values: Values | object): Promise<boolean>;
  /**
   * A bytes input as a Readable (also an AsyncIterable<Buffer>): for a port declared
   * `stream: true`, its chunks as they arrive, the worker granting the caller credit as the
   * handler reads (bounded memory, whatever the size); the stream ends only after the size and
   * sha256 were checked, and is destroyed with an InvalidRequest error otherwise (the request
   * then fails InvalidRequest). For any other bytes input, its bytes. Throws for a missing or
   * non-bytes input, and on a second call for the same streamed port.
   */
  inputStream(name: string): Readable;
}

/**
 * A node's handler: the outputs (`Out`, a map of values), or nothing for no outputs. A handler
 * that streams returns an async iterator instead (an `async function*`, or a `function*`): each
 * value it yields is an item (a map of values), and what it returns the outputs.
 */
export type Handler<
  In extends object = Record<string, any>,
  Out extends object = Values,
  Params extends object = Record<string, any>,
> = (
  ctx: Context<In, Params>,
) =>
  | Promise<Out | void | undefined>
  | Out
  | void
  | undefined
  | AsyncIterator<Values | object, Out | void | undefined, undefined>
  | Iterator<Values | object, Out | void | undefined, undefined>;

interface RegisteredNode {
  spec: NodeSpec;
  handler: Handler<Record<string, any>, object>;
  /** Inputs the handler reads as streams (`stream: true`). */
  streamed: Set<string>;
}

interface Job {
  key: string;
  instance: string;
  req: WorkRequestBody;
  /** Aborted by the daemon (deadline, cancel) or the worker stopping: ctx.signal. */
  controller: LazyAbort;
  abortCode: ErrorCode;
  abortReason: string;
  answered: boolean;
  started: boolean;
  done: Promise<void>;
  resolveDone: () => void;
  /** Its items (docs/STREAMS.md §2); closed once the request is answered or aborted. */
  items: ItemSender;
  /** Its chunked inputs and outputs (PROTOCOL.md §7.9); closed with the request. */
  chunks: JobChunks;
  /** Why a chunked input failed (the request fails InvalidRequest with it, whatever the handler did). */
  inputFailure: string | null;
}

interface Outgoing {
  bytes: Uint8Array;
  kind: WorkerBody['type'];
  onReply?: (reply: DaemonMessage | null) => void;
  /** A Pong's seq: the Ack naming it (`pong_seq`) is its reply, whatever came before. */
  pongSeq?: bigint;
  /** A Pong that lists answers (`answered` not empty): Acked also without answer Acks (§7.7). */
  listsAnswers?: boolean;
}

/**
 * A message sent whose reply may come. `always`: it gets exactly one; `maybe`: a Pong that
 * lists no answers, to a daemon that sends no answer Acks (§7.7: Acked only when it confirms
 * the worker or answers no ping). Messages that get no reply unless refused (answers, items,
 * chunks, credits without answer Acks) are not listed.
 */
interface Sent {
  kind: WorkerBody['type'];
  attachGen: number;
  onReply?: (reply: DaemonMessage | null) => void;
  pongSeq?: bigint;
  reply: 'always' | 'maybe';
}

type State = 'idle' | 'attaching' | 'attached' | 'detaching' | 'stopped';

/** How a message of the daemon came: on the worker's topic, the broadcast topic (SUB), or its DEALER (direct, PROTOCOL.md §7.10). */
type Route = 'topic' | 'broadcast' | 'direct';

/** The topic of the daemon's broadcast Pings (PROTOCOL.md §2); a worker's own topic comes in Attached. */
const BROADCAST_TOPIC = 'b:';

const REMEMBERED_ANSWERS = 256;
/** Pongs that may get no Ack kept awaiting one (the older are given up: they listed nothing). */
const MAYBE_REPLIES = 16;

/** Closes a socket (if any) without waiting longer than `linger` ms for what it still holds. */
function closeQuietly(s: zmq.Socket | null, linger: number): void {
  if (!s || s.closed) return;
  try {
    s.linger = linger;
    s.close();
  } catch {
    /* already closed */
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for `p`, at most `ms`; leaves no timer behind. */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

function defaultWorkerId(): string {
  const host = os.hostname().replace(/[^A-Za-z0-9_.-]/g, '_');
  return `ts-${host}-${process.pid}`.slice(0, 64);
}

/** Whether a request's inputs name a chunked value (a stream of its caller). */
function chunkedInputs(req: WorkRequestBody): boolean {
  try {
    for (const [, v] of entriesOf(decodeValues(req.inputs))) if (v instanceof ChunkedValue) return true;
  } catch {
    /* not valid Values: refused when it runs */
  }
  return false;
}

function toBig(v: number | bigint, what: string): bigint {
  if (typeof v === 'bigint') return v < 0n ? 0n : v;
  if (!Number.isFinite(v)) throw new TypeError(`${what} must be a finite number`);
  return BigInt(Math.max(0, Math.trunc(v)));
}

/**
 * A worker serving one or more nodes.
 *
 * ```ts
 * const worker = new Worker({ workerId: 'w1', capacity: 4 });
 * worker.node({ name: 'hello', inputs: [{ name: 'name', type: 'string' }] },
 *             async (ctx) => ({ greeting: `Hello ${ctx.inputs.name}` }));
 * await worker.run(); // until SIGINT/SIGTERM or worker.stop()
 * ```
 *
 * Events: 'attached' (AttachedBody), 'reattach' (reason: string), 'detached', 'stopped'.
 */
export class Worker extends EventEmitter {
  readonly workerId: string;
  readonly capacity: number;
  readonly requestAddress: string;
  readonly responseAddress: string;
  /** Random per worker process: tells a re-attach of this process from a restarted one. */
  readonly session: string;
  private readonly hostname: string;
  private readonly security: TransportSecurity;
  private readonly enrolls: boolean;
  private readonly enrollment: EnrollmentOptions;
  private readonly attachTimeoutMs: number;
  private readonly chunkThreshold: number;
  private readonly resumeAfterMs: number;
  private readonly wantsNoAnswerAcks: boolean;
  private readonly confirmKeptBytes: number;
  private readonly wantsIdlePongs: boolean;
  private readonly wantsDirect: boolean;
  private shutdownGraceMs: number;
  private readonly log: Logger;
  private readonly nodes = new Map<string, RegisteredNode>();

  private state: State = 'idle';
  private sub: zmq.Subscriber | null = null;
  private dealer: zmq.Dealer | null = null;
  private connGen = 0;
  private attachGen = 0;
  private attachSentAt = 0;
  private attached: AttachedBody | null = null;
  /** The daemon's --max-message-bytes from the last Attached (0: not known yet). */
  private maxMessageBytes = 0;
  private instance = '';
  private lastPingAt = 0;
  private topics = new Set<string>();
  private workerTopic = ''; // Attached.topic, subscribed on the current SUB socket
  /**
   * Direct granted by the last Attached (PROTOCOL.md §7.10): the daemon's messages come on the
   * DEALER and there is no SUB. Until the Ack of a Pong every Ping there is answered (the
   * confirming Ping cannot be told from a broadcast one).
   */
  private direct = false;
  private answerEveryPing = false;

  private outbox: Outgoing[] = [];
  private sent: Sent[] = [];
  /** The daemon sends no Ack per answer (Attached.no_answer_acks, PROTOCOL.md §7.7). */
  private noAcks = false;
  /** Attached.idle_pong_every (0, 1: every ping answered) and broadcast pings left unanswered in a row (§7.3). */
  private idlePongEvery = 0;
  private pingsUnanswered = 0;
  /**
   * The last Pong sent on this connection since Attached (an early confirmation repeats it, if
   * it listed answers), and the seq of the last Pong listing answers whose Ack is not read yet
   * (0n: none; no early Pong while one is due).
   */
  private lastPong = { seq: 0n, instance: '', listed: false };
  private pongAckDue = 0n;
  private pumping = false;
  private timer: NodeJS.Timeout | null = null;

  /**
   * Received and not yet answered, by request id (ids never repeat across daemon instances, so
   * requests of an earlier instance stay here across a restart: PROTOCOL.md §7.6).
   */
  private jobs = new Map<string, Job>();
  private waiting: Job[] = [];
  private running = 0;
  /** Answers to recently finished requests, re-sent if the daemon sends the request again. */
  private answers = new Map<string, Uint8Array>();
  /**
   * Answers sent and not yet confirmed, by request id (PROTOCOL.md §7.6): kept across a
   * reconnect and a daemon restart until their Ack comes, or the Ack to a Pong that listed them
   * (`listedIn`: its seq) does not name them missing; listed in every Pong's `answered`.
   */
  private kept = new Map<string, { requestId: bigint; bytes: Uint8Array; kind: 'Result' | 'Failure'; listedIn: bigint }>();
  /** The sizes of the kept answers (for confirmKeptBytes). */
  private keptBytes = 0;
  /**
   * The chunked outputs of answered requests whose Result is not confirmed yet, by request id:
   * a resume Credit still sends their chunks again (PROTOCOL.md §7.9 R11; musterd holds a
   * Result until its streams came whole, R8). Released with the kept answer.
   */
  private resending = new Map<string, JobChunks>();

  private startPromise: Promise<void> | null = null;
  private startResolve: (() => void) | null = null;
  private startReject: ((e: Error) => void) | null = null;
  private stopPromise: Promise<void> | null = null;
  private stoppedResolve!: () => void;
  private readonly stopped: Promise<void>;
  private fatal: Error | null = null;
  /** Why the daemon no longer knows this stopping worker (it then stops without draining). */
  private forgotten: string | null = null;
  /** The drain ended (grace ran out, a second signal, the daemon forgot us): nothing more is answered. */
  private abandoning = false;

  constructor(options: WorkerOptions = {}) {
    super();
    this.workerId = options.workerId ?? defaultWorkerId();
    if (!validWorkerId(this.workerId)) {
      throw new MusterError(
        ErrorCode.InvalidRequest,
        `invalid worker id ${JSON.stringify(this.workerId)}: use [A-Za-z0-9_.-], 1 to 64 characters`,
      );
    }
    this.capacity = options.capacity ?? 1;
    if (!Number.isInteger(this.capacity) || this.capacity < 1 || this.capacity > 0xffffffff) {
      throw new MusterError(ErrorCode.InvalidRequest, `capacity must be a positive integer, got ${options.capacity}`);
    }
    this.requestAddress = options.requestAddress ?? defaultEndpoint('request');
    this.responseAddress = options.responseAddress ?? defaultEndpoint('response');
    this.security = { curve: options.curve, insecure: options.insecure };
    // tcp:// without keys or insecure: the keys come from enrollment when the worker starts.
    this.enrolls = needsCurve([this.requestAddress, this.responseAddress], options.curve, options.insecure);
    this.enrollment = {
      dataDir: options.dataDir,
      enrollmentAddress: options.enrollmentAddress,
      enrollmentTokenFile: options.enrollmentTokenFile,
      name: options.name ?? 'worker',
      enrollmentTimeoutMs: options.enrollmentTimeoutMs,
    };
    if (this.enrolls) localIdentityPaths('.', this.enrollment.name!); // a bad name fails now
    // Checked now so that a bad endpoint fails at construction, not later in a loop.
    const check: TransportSecurity = this.enrolls ? { insecure: true } : this.security;
    applySecurity({}, this.requestAddress, check);
    applySecurity({}, this.responseAddress, check);
    this.hostname = options.hostname ?? os.hostname();
    this.attachTimeoutMs = options.attachTimeoutMs ?? 5000;
    this.shutdownGraceMs = options.shutdownGraceMs ?? 10000;
    this.chunkThreshold = options.chunkThreshold ?? DEFAULT_CHUNK_THRESHOLD;
    if (!Number.isSafeInteger(this.chunkThreshold) || this.chunkThreshold < 1) {
      throw new MusterError(ErrorCode.InvalidRequest, `chunkThreshold must be a positive integer, got ${options.chunkThreshold}`);
    }
    this.resumeAfterMs = options.resumeAfterMs ?? RESUME_AFTER_MS;
    if (!Number.isSafeInteger(this.resumeAfterMs) || this.resumeAfterMs < 1) {
      throw new MusterError(ErrorCode.InvalidRequest, `resumeAfterMs must be a positive integer, got ${options.resumeAfterMs}`);
    }
    this.wantsNoAnswerAcks = options.noAnswerAcks ?? true;
    this.wantsIdlePongs = options.idlePongs ?? true;
    this.wantsDirect = options.direct ?? true;
    this.confirmKeptBytes = options.confirmKeptBytes ?? 32 * 1024 * 1024;
    if (!Number.isSafeInteger(this.confirmKeptBytes) || this.confirmKeptBytes < 0) {
      throw new MusterError(ErrorCode.InvalidRequest, `confirmKeptBytes must be a non-negative integer, got ${options.confirmKeptBytes}`);
    }
    this.log = resolveLogger(`worker ${this.workerId}`, options.logger);
    this.session = randomBytes(12).toString('hex');
    this.stopped = new Promise((resolve) => (this.stoppedResolve = resolve));
  }

  /**
   * Declares a node and its handler. Call before start(). The type arguments state the shapes
   * of the inputs, outputs and parameters, so that reading a field the node does not have, or
   * returning a wrong output, is a compile error:
   * `worker.node<{ name: string }, { greeting: string }>(spec, async (ctx) => ({ greeting: ctx.inputs.name }))`.
   */
  node<In extends object = Record<string, any>, Out extends object = Values, Params extends object = Record<string, any>>(
    definition: NodeDefinition,
    handler: Handler<In, Out, Params>,
  ): this {
    if (this.state !== 'idle') throw new Error('declare nodes before the worker starts');
    if (typeof handler !== 'function') throw new TypeError(`node ${definition?.name}: the handler must be a function`);
    const spec = toNodeSpec(definition);
    if (this.nodes.has(spec.name)) throw new MusterError(ErrorCode.InvalidRequest, `node ${spec.name} is declared twice`);
    this.nodes.set(spec.name, { spec, handler: handler as unknown as Handler<Record<string, any>, object>, streamed: streamedInputs(definition) });
    return this;
  }

  /** The declared node specs (as sent in Attach, `defaultTimeoutMs` a number). */
  get specs(): NodeSpecListing[] {
    return [...this.nodes.values()].map((n) => ({ ...n.spec, defaultTimeoutMs: Number(n.spec.defaultTimeoutMs) }));
  }

  /** Request ids received and not yet answered (numbers, as Context.requestId). */
  get inFlight(): number[] {
    return [...this.jobs.values()].filter((j) => !j.answered).map((j) => Number(j.req.requestId));
  }

  get isAttached(): boolean {
    return this.state === 'attached' || this.state === 'detaching';
  }

  /** Connects and attaches; resolves once the daemon answered Attached. */
  start(): Promise<void> {
    if (this.startPromise) return this.startPromise;
    if (this.nodes.size === 0) return Promise.reject(new MusterError(ErrorCode.InvalidRequest, 'a worker needs at least one node'));
    this.startPromise = new Promise<void>((resolve, reject) => {
      this.startResolve = resolve;
      this.startReject = reject;
    });
    this.startPromise.catch(() => undefined);
    void this.begin();
    return this.startPromise;
  }

  /**
   * The CURVE keys for tcp:// endpoints: the saved identity, or a new enrollment (start() calls
   * it). Rejects with EnrollmentError; resolves at once for ipc:// or explicit keys.
   */
  async ensureKeys(): Promise<CurveKeys | undefined> {
    if (this.enrolls && !this.security.curve) {
      this.security.curve = await prepareCurve([this.requestAddress, this.responseAddress], 'worker', {
        ...this.enrollment,
        hostname: this.hostname,
        logger: this.log,
      });
      this.log.info(`CURVE keys ready (public key ${this.security.curve.publicKey})`);
    }
    return this.security.curve;
  }

  private async begin(): Promise<void> {
    try {
      await this.ensureKeys();
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    if (this.state !== 'idle' || this.stopPromise) return; // stopped while enrolling
    this.connect('start');
    this.timer = setInterval(() => this.tick(), 50);
  }

  /**
   * Starts, then runs until SIGINT/SIGTERM or stop(). A second signal aborts running requests
   * at once. Rejects if the daemon refused the worker (for example a duplicate id of another
   * identity).
   */
  async run(options: { handleSignals?: boolean } = {}): Promise<void> {
    const handleSignals = options.handleSignals ?? true;
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      signals += 1;
      if (signals === 1) {
        this.log.info(`${sig}: detaching and finishing running requests`);
        void this.stop(`signal ${sig}`);
      } else {
        this.log.warn(`${sig} again: abandoning running requests`);
        this.shutdownGraceMs = 0;
        this.abandonRemaining(`${sig} again`);
      }
    };
    if (handleSignals) {
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    }
    try {
      const started = this.start().catch((e) => {
        if (this.fatal) throw e;
      });
      await Promise.race([started, this.stopped]);
      await this.stopped;
      if (this.fatal) throw this.fatal;
    } finally {
      if (handleSignals) {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    }
  }

  /**
   * Graceful stop: Detach, let running requests (and any the daemon still sends before it
   * processed the Detach) finish within shutdownGraceMs, close the sockets. Requests still
   * running when the grace runs out are aborted and not answered: the daemon re-runs an
   * idempotent one elsewhere and fails any other with WorkerLost (PROTOCOL.md §7.5).
   */
  stop(reason = 'shutdown'): Promise<void> {
    if (this.stopPromise) return this.stopPromise;
    this.stopPromise = this.doStop(reason);
    return this.stopPromise;
  }

  private async doStop(reason: string): Promise<void> {
    if (this.state === 'idle' || this.state === 'stopped') {
      this.finishStop();
      return;
    }
    // Attached, or attaching (a reconnect under way: the daemon may already have attached this
    // worker): either way a Detach follows, after the Attach on the same connection.
    this.state = 'detaching';
    if (this.dealer) {
      const acked = new Promise<void>((resolve) => this.enqueue({ type: 'Detach', reason }, () => resolve()));
      await within(acked, 1000);
    }
    // Requests arriving while detaching join the drain (§7.5), so wait for the job table to
    // empty rather than for the jobs open at the Detach.
    const deadline = Date.now() + this.shutdownGraceMs;
    while (this.jobs.size > 0 && this.shutdownGraceMs > 0 && Date.now() < deadline) await sleep(20);
    this.abandonRemaining('the shutdown grace ran out');
    // Let the last answers reach the socket.
    const flushDeadline = Date.now() + 1000;
    while ((this.outbox.length > 0 || this.pumping) && Date.now() < flushDeadline && this.dealer) await sleep(10);
    this.emit('detached');
    this.finishStop();
  }

  private finishStop(): void {
    this.state = 'stopped';
    for (const key of [...this.resending.keys()]) this.releaseStreams(key);
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.closeSockets(500);
    if (this.startReject) this.startReject(this.fatal ?? new MusterError(ErrorCode.ShuttingDown, 'the worker was stopped'));
    this.startResolve = this.startReject = null;
    this.stoppedResolve();
    this.emit('stopped');
  }

  private fail(error: Error): void {
    this.fatal = error;
    this.log.error(error.message);
    void this.stop('fatal error');
  }

  // ---- connection ----------------------------------------------------------------------

  private closeSockets(linger: number): void {
    closeQuietly(this.sub, linger);
    closeQuietly(this.dealer, linger);
    this.sub = null;
    this.dealer = null;
  }

  /** (Re)creates the DEALER, and the SUB unless the worker asks for direct (PROTOCOL.md §7.10), and attaches. */
  private connect(why: string): void {
    this.closeSockets(0);
    const gen = ++this.connGen;
    this.sent = [];
    this.lastPong.listed = false; // a new connection: nothing sent on it is Acked yet
    this.pongAckDue = 0n;
    this.direct = this.answerEveryPing = false; // until the new Attached grants it
    this.topics = new Set();
    this.workerTopic = '';
    // Whatever was queued for the old connection waits for the new Attach to be answered.
    this.outbox = this.outbox.filter((m) => m.kind !== 'Attach' && m.kind !== 'Pong');
    // The old DEALER closed without lingering (above): a late Attach of it could otherwise reach
    // musterd after the new one's and move a direct worker's route to a closing connection (§7.10).
    const dealer = new zmq.Dealer({ linger: 0, sendHighWaterMark: 10000 });
    try {
      applySecurity(dealer, this.responseAddress, this.security);
      // Both daemons of a failover pair (an address list): the DEALER queues only on a
      // completed connection (ZMQ_IMMEDIATE), so the Attach waits in send() until the active
      // daemon's connection is up (the attach timeout reconnects if none comes).
      connectAll(dealer, this.responseAddress, true);
    } catch (e) {
      dealer.close();
      this.fail(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    this.watchConnection(dealer, gen);
    this.dealer = dealer;
    // Asking for direct, the SUB waits for an Attached that does not grant it (an older daemon).
    if (!this.wantsDirect && !this.openSub()) return;
    this.log.debug(`connecting (${why}): ${this.wantsDirect ? '' : `request ${this.requestAddress}, `}response ${this.responseAddress}`);
    void this.dealerLoop(dealer, gen);
    this.attach(why);
  }

  /**
   * The SUB on the request endpoints, subscribed to the broadcast topic (PROTOCOL.md §2, §7.1):
   * before Attach for a worker that does not ask for direct, after an Attached that does not
   * grant it. The worker topic follows with Attached. False if it could not be made (the worker
   * fails).
   */
  private openSub(): boolean {
    const sub = new zmq.Subscriber({ linger: 0 });
    try {
      applySecurity(sub, this.requestAddress, this.security);
      this.topics = new Set([BROADCAST_TOPIC]);
      this.workerTopic = '';
      sub.subscribe(...this.topics);
      // Both daemons of a failover pair: the SUB hears the Pings of whichever is bound.
      connectAll(sub, this.requestAddress, false);
    } catch (e) {
      sub.close();
      this.fail(e instanceof Error ? e : new Error(String(e)));
      return false;
    }
    this.sub = sub;
    void this.subLoop(sub, this.connGen);
    return true;
  }

  /** A daemon that grants direct after one that did not (a newer musterd at the same address): the SUB goes. */
  private closeSub(): void {
    closeQuietly(this.sub, 0);
    this.sub = null;
    this.topics = new Set();
    this.workerTopic = '';
  }

  /**
   * The DEALER's connection events. When its connection breaks, libzmq connects it again by
   * itself, but musterd knows a worker by its connection: it refuses what comes on the new one
   * ("attached on another connection", PROTOCOL.md §7.3) and, to a direct worker, still sends
   * everything to the old one, which is gone (§7.10). So an attached worker attaches again as
   * soon as a connection is made again (the same session keeps its requests, §7.1; a restarted
   * daemon or a standby that took over learns of the worker from it, §7.6), and it resumes what
   * was lost on the way (§7.9 R4; kept answers, §7.6). The Attach is handed to the DEALER only
   * once the 'connect' event came, never at 'disconnect': libzmq reports the disconnect before
   * it tears down the broken connection's pipe, and an Attach handed over in between goes into
   * that pipe and is lost (the worker then waited for the attach timeout, its running requests
   * finishing meanwhile). An Attach on its way when the connection broke may be lost the same
   * way: it goes again once the connection is made again (one per connection made: no loop).
   */
  private watchConnection(dealer: zmq.Dealer, gen: number): void {
    let attachDue = -1; // the attachGen whose Attach goes (again) once a connection is made
    dealer.events.on('disconnect', () => {
      if (gen !== this.connGen) return;
      if (this.state === 'attached') this.reattach('the response connection broke', 'when-connected');
      if (this.state === 'attaching') attachDue = this.attachGen;
    });
    dealer.events.on('connect', () => {
      const due = attachDue;
      attachDue = -1;
      if (gen !== this.connGen || this.state !== 'attaching' || due !== this.attachGen) return;
      this.log.info('attaching: the response connection was made again');
      this.attach('the response connection was made again');
    });
  }

  /** A new Attach generation: attaching from now (the attach timeout counts from here); what was queued for the old one goes. */
  private beginAttaching(): void {
    if (this.state !== 'detaching') this.state = 'attaching';
    this.attachGen += 1;
    this.attachSentAt = Date.now();
    this.outbox = this.outbox.filter((m) => m.kind !== 'Attach' && m.kind !== 'Pong');
  }

  private attach(why: string): void {
    if (this.state === 'stopped') return;
    this.beginAttaching();
    const bytes = encodeWorkerMessage({
      workerId: this.workerId,
      body: {
        type: 'Attach',
        workerId: this.workerId,
        hostname: this.hostname,
        sdk: SDK_NAME,
        pid: process.pid,
        session: this.session,
        capacity: this.capacity,
        nodes: [...this.nodes.values()].map((n) => n.spec),
        payloadFrames: false, // inputs stay inside the WorkRequest
        noAnswerAcks: this.wantsNoAnswerAcks, // PROTOCOL.md §7.7, if Attached agrees
        batches: false, // reads no Batch (PROTOCOL.md §2.2 is for the C++ SDK)
        idlePongs: this.wantsIdlePongs, // PROTOCOL.md §7.3, if Attached grants it
        direct: this.wantsDirect, // PROTOCOL.md §7.10, if Attached grants it
      },
    });
    this.log.debug(`attaching (${why})`);
    this.outbox.unshift({ bytes, kind: 'Attach' });
    this.pump();
  }

  /**
   * Attaches again: on a new DEALER ('reconnect'), at once on this one ('attach'), or once this
   * one's connection is made again ('when-connected', watchConnection; the attach timeout
   * counts from now, so a connection that never comes still ends in a reconnect).
   */
  private reattach(why: string, how: 'reconnect' | 'attach' | 'when-connected'): void {
    if (this.state === 'stopped') return;
    if (this.state === 'detaching') {
      this.forget(why);
      return;
    }
    this.log.info(`attaching again: ${why}`);
    this.attached = null;
    this.emit('reattach', why);
    if (how === 'reconnect') this.connect(why);
    else if (how === 'attach') this.attach(why);
    else {
      this.beginAttaching(); // no Attach handed to the DEALER until the connection is made (watchConnection)
      this.log.debug(`attaching once the response connection is made again (${why})`);
    }
  }

  /**
   * The daemon no longer knows this stopping worker (or is gone): what it still runs has no one
   * to answer to, so it is aborted and the worker stops, never attaching again (PROTOCOL.md §7.5).
   */
  private forget(why: string): void {
    if (this.forgotten !== null) return;
    this.forgotten = why;
    this.log.info(`stopping without attaching again: ${why}`);
    this.shutdownGraceMs = 0;
    this.abandonRemaining(why);
  }

  /**
   * Ends the drain: what still runs is aborted (its handler sees the signal) and left
   * unanswered, and requests arriving from now on are not run, so the daemon applies its
   * worker-death rules once this worker is silent (PROTOCOL.md §7.5). Idempotent.
   */
  private abandonRemaining(why: string): void {
    this.abandoning = true;
    for (const job of [...this.jobs.values()]) {
      this.log.warn(`request ${job.req.requestId} (${job.req.node}) did not finish before shutdown (${why}): left unanswered to the daemon's worker-death rules`);
      job.answered = true; // nothing is sent for it any more
      this.jobs.delete(job.key);
      job.abortCode = ErrorCode.ShuttingDown;
      job.abortReason = 'the worker stopped before finishing the request';
      job.items.close();
      job.chunks.close(new MusterError(job.abortCode, job.abortReason));
      job.controller.abort(new MusterError(job.abortCode, job.abortReason));
      if (!job.started) job.resolveDone();
    }
  }

  private tick(): void {
    if (this.state === 'stopped' || this.state === 'idle') return;
    const now = Date.now();
    if (this.state === 'detaching') {
      // Never reconnect while stopping; a daemon that went silent has forgotten this worker.
      const window = this.attached ? Number(this.attached.pingIntervalMs) * Math.max(1, this.attached.liveness) : 0;
      if (window > 0 && now - this.lastPingAt > window) this.forget(`no ping for ${window} ms while stopping`);
      return;
    }
    if (this.attached === null) {
      if (now - this.attachSentAt > this.attachTimeoutMs) {
        this.reattach(`no answer to Attach within ${this.attachTimeoutMs} ms`, 'reconnect');
      }
      return;
    }
    const window = Number(this.attached.pingIntervalMs) * Math.max(1, this.attached.liveness);
    if (window > 0 && now - this.lastPingAt > window) {
      this.reattach(`no ping for ${window} ms`, 'reconnect');
    }
  }

  // ---- sending -------------------------------------------------------------------------

  /** Queues a message; one larger than the daemon's limit is not sent (and logged). */
  private enqueue(body: WorkerBody, onReply?: (reply: DaemonMessage | null) => void): void {
    const bytes = encodeWorkerMessage({ workerId: this.workerId, body });
    if (this.tooLarge(bytes.length)) {
      this.log.warn(`not sending a ${body.type} of ${bytes.length} bytes: over the daemon's limit of ${this.maxMessageBytes} bytes (--max-message-bytes)`);
      return;
    }
    const pong = body.type === 'Pong';
    this.outbox.push({ bytes, kind: body.type, onReply, pongSeq: pong ? body.seq : undefined, listsAnswers: pong && body.answered.length > 0 });
    this.pump();
  }

  /** What reply a message about to be sent may get (PROTOCOL.md §2, §7.7); null: none unless refused. */
  private replyOf(m: Outgoing): Sent['reply'] | null {
    if (!this.noAcks || m.kind === 'Attach' || m.kind === 'Detach') return 'always';
    if (m.kind === 'Pong') return m.listsAnswers ? 'always' : 'maybe';
    return null; // Progress, Result, Failure, Item, Chunk, Credit
  }

  /** Lists a message sent whose reply may come; keeps at most MAYBE_REPLIES Pongs that may get none. */
  private track(m: Outgoing): void {
    const reply = this.replyOf(m);
    if (reply === null) return;
    this.sent.push({ kind: m.kind, attachGen: this.attachGen, onReply: m.onReply, pongSeq: m.pongSeq, reply });
    if (reply === 'always') return;
    let maybes = 0;
    for (let i = this.sent.length - 1; i >= 0; i--) {
      if (this.sent[i]!.reply !== 'maybe' || ++maybes <= MAYBE_REPLIES) continue;
      this.sent.splice(i, 1)[0]!.onReply?.(null); // listed nothing: its Ack would confirm nothing
    }
  }

  /** Sends queued messages in order; only Attach goes out until the daemon answered it. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    void (async () => {
      try {
        for (;;) {
          const dealer = this.dealer;
          if (!dealer || dealer.closed) break;
          const attaching = this.attached === null || this.state === 'attaching';
          // Attaching: only the Attach goes out (attach() puts it first), and a Detach after it.
          const idx = attaching ? this.outbox.findIndex((m) => m.kind === 'Attach' || m.kind === 'Detach') : 0;
          if (idx < 0 || this.outbox.length === 0) break;
          const m = this.outbox[idx]!;
          try {
            await dealer.send(m.bytes);
          } catch (e) {
            if (dealer.closed || dealer !== this.dealer) continue; // reconnected: resend on the new socket
            this.log.warn(`dropping a ${m.kind} message: ${(e as Error).message}`);
          }
          const at = this.outbox.indexOf(m);
          if (at >= 0) this.outbox.splice(at, 1);
          if (dealer === this.dealer) this.track(m);
        }
      } finally {
        this.pumping = false;
      }
    })();
  }

  // ---- receiving -----------------------------------------------------------------------

  /**
   * The response socket: the replies (Attached, Ack, Rejected) and, from a daemon that granted
   * direct (PROTOCOL.md §7.10), its messages for this worker, `[DaemonMessage]` (no topic frame;
   * no payload frame either: this worker does not ask for them, §2.1), in the order sent.
   */
  private async dealerLoop(dealer: zmq.Dealer, gen: number): Promise<void> {
    try {
      for await (const frames of dealer) {
        if (gen !== this.connGen) break;
        const last = frames[frames.length - 1];
        if (!last) continue;
        const msg = this.readDaemonMessage(last, 'direct');
        if (msg === 'bad-request') continue;
        if (msg === null) {
          this.sent.shift(); // a reply that could not be read
          continue;
        }
        const type = msg.body.type;
        if (!this.direct || type === 'Attached' || type === 'Ack' || type === 'Rejected') this.onReply(msg);
        else this.onPublished(msg, 'direct');
      }
    } catch (e) {
      if (!dealer.closed) this.log.warn(`response socket: ${(e as Error).message}`);
    }
  }

  private async subLoop(sub: zmq.Subscriber, gen: number): Promise<void> {
    try {
      for await (const frames of sub) {
        if (gen !== this.connGen) break;
        if (frames.length !== 2) {
          this.log.warn(`ignoring a request-socket message of ${frames.length} frames`);
          continue;
        }
        const topic = frames[0]!.toString('latin1');
        if (!this.topics.has(topic)) continue;
        const route = topic === this.workerTopic ? 'topic' : 'broadcast';
        const msg = this.readDaemonMessage(frames[1]!, route);
        if (msg !== null && msg !== 'bad-request') this.onPublished(msg, route);
      }
    } catch (e) {
      if (!sub.closed) this.log.warn(`request socket: ${(e as Error).message}`);
    }
  }

  /**
   * Decodes a message of the daemon, whichever socket brought it. One that is not valid is
   * logged and gives null, except a WorkRequest whose payload is not valid Values, which gives
   * 'bad-request' (it is no reply) and is answered Failure{InvalidRequest} when it came on this
   * worker's own route (its topic, or direct: PROTOCOL.md §4).
   */
  private readDaemonMessage(bytes: Uint8Array, route: Route): DaemonMessage | 'bad-request' | null {
    try {
      return decodeDaemonMessage(bytes);
    } catch (e) {
      this.log.warn(`ignoring a bad message on ${this.routeName(route)}: ${(e as Error).message}`);
      if (!(e instanceof BadPayloadError)) return null;
      if (route === 'topic' || (route === 'direct' && this.direct)) this.refuse(e.requestId, e.message);
      return 'bad-request';
    }
  }

  /** Where a message of the daemon came from, for the log: the worker's topic, the broadcast topic or its DEALER. */
  private routeName(route: Route): string {
    if (route === 'direct') return 'the response socket';
    return route === 'topic' ? `topic ${this.workerTopic}` : `the broadcast topic ${BROADCAST_TOPIC}`;
  }

  private onReply(msg: DaemonMessage): void {
    const body = msg.body;
    let sent: Sent | undefined;
    if (body.type === 'Attached') {
      // Replies to messages sent just before a daemon restart may never come: the Attached
      // answers the oldest Attach still waiting, and whatever was sent before it is given up.
      const i = this.sent.findIndex((m) => m.kind === 'Attach');
      const dropped = i >= 0 ? this.sent.splice(0, i + 1) : [];
      sent = dropped.pop();
      for (const m of dropped) m.onReply?.(null);
    } else if (body.type === 'Ack' && body.pongSeq > 0n && this.sent.some((m) => m.pongSeq === body.pongSeq)) {
      // The Ack to a Pong names it: the messages before that Pong whose reply did not come get
      // none (musterd answers a Result it holds with nothing, PROTOCOL.md §7.9 R8), so the
      // replies after it pair with their messages again.
      const i = this.sent.findIndex((m) => m.pongSeq === body.pongSeq);
      const dropped = this.sent.splice(0, i + 1);
      sent = dropped.pop();
      for (const m of dropped) m.onReply?.(null);
    } else if (!this.noAcks) {
      sent = this.sent.shift();
    } else {
      // No answer Acks (§7.7): an Ack without pong_seq answers a Detach (one with a pong_seq
      // not listed answers a Pong given up: nothing); a Rejected may answer any message, answers
      // included (not listed), so it is paired only with an Attach still waiting, when it
      // refuses it (a Rejected{reattach} then answers a message sent before).
      const i =
        body.type === 'Ack' && body.pongSeq === 0n
          ? this.sent.findIndex((m) => m.kind === 'Detach')
          : body.type === 'Rejected' && !body.reattach
            ? this.sent.findIndex((m) => m.kind === 'Attach')
            : -1;
      if (i >= 0) {
        const dropped = this.sent.splice(0, i + 1);
        sent = dropped.pop();
        for (const m of dropped) m.onReply?.(null);
      }
    }
    try {
      sent?.onReply?.(msg);
    } catch {
      /* a waiter's problem */
    }
    switch (body.type) {
      case 'Attached': {
        if (this.state === 'stopped') return;
        const previous = this.instance;
        const reattached = previous !== '';
        const changed = reattached && previous !== body.instance;
        if (changed && (this.jobs.size > 0 || this.kept.size > 0)) {
          // A restarted daemon: running requests and unconfirmed answers are listed in the next
          // Pong, so it can adopt its durable calls (PROTOCOL.md §7.6).
          this.log.info(`daemon restarted: reporting ${this.jobs.size} running request(s) and ${this.kept.size} unconfirmed answer(s) to it`);
          for (const k of this.kept.values()) k.listedIn = 0n;
        }
        this.attached = body;
        this.instance = body.instance;
        // An older daemon does not know the field and Acks every answer (§7.7).
        this.noAcks = this.wantsNoAnswerAcks && body.noAnswerAcks;
        this.idlePongEvery = this.wantsIdlePongs ? (body.idlePongEvery ?? 0) : 0;
        this.pingsUnanswered = 0;
        this.pongAckDue = 0n; // a Pong's seq means nothing to another instance (§7.6)
        this.lastPong.listed = false;
        if (body.maxMessageBytes > 0n) this.maxMessageBytes = Number(body.maxMessageBytes);
        this.lastPingAt = Date.now();
        // Direct (§7.10): no SUB. Not granted (not asked, or an older daemon): the SUB, on the
        // worker topic; connected now if the worker asked (§7.1's confirming Ping is repeated
        // until its Pong, so the slow joiner loses nothing).
        this.direct = this.wantsDirect && (body.direct ?? false);
        this.answerEveryPing = this.direct;
        if (this.direct) this.closeSub();
        else if (this.sub === null && !this.openSub()) return;
        if (!this.direct && body.topic && body.topic !== this.workerTopic) {
          if (this.workerTopic) {
            this.topics.delete(this.workerTopic);
            this.sub?.unsubscribe(this.workerTopic);
          }
          this.workerTopic = body.topic;
          this.topics.add(body.topic);
          this.sub?.subscribe(body.topic);
        }
        if (!this.direct && body.broadcastTopic && !this.topics.has(body.broadcastTopic)) {
          this.topics.add(body.broadcastTopic);
          this.sub?.subscribe(body.broadcastTopic);
        }
        if (this.state === 'attaching') this.state = 'attached';
        if (reattached) this.resumeStreams(changed, previous, body.instance);
        const granted = [
          this.noAcks ? ', no answer Acks' : '',
          this.idlePongEvery > 1 ? `, idle pongs every ${this.idlePongEvery}` : '',
          this.direct ? ', direct: one connection' : '',
        ];
        this.log.info(
          `attached to musterd instance ${body.instance} (ping every ${body.pingIntervalMs} ms, liveness ${body.liveness}${granted.join('')})`,
        );
        this.emit('attached', body);
        this.startResolve?.();
        this.startResolve = this.startReject = null;
        this.pump();
        return;
      }
      case 'Ack':
        if (body.pongSeq !== 0n) this.answerEveryPing = false; // the confirming Pong's Ack came (§7.10)
        if (this.pongAckDue !== 0n && body.pongSeq >= this.pongAckDue) this.pongAckDue = 0n;
        if (body.late && sent) this.log.debug(`the daemon dropped a late ${sent.kind}`);
        return;
      case 'Rejected': {
        const what = sent ? sent.kind : 'message';
        if (body.reattach) {
          if (this.state === 'stopped') return;
          if (sent && sent.attachGen !== this.attachGen) return; // sent before the latest Attach
          if (!sent && this.attached === null) return; // answers a message sent before the Attach on its way
          if (sent?.kind === 'Attach' && this.state !== 'detaching') {
            this.log.warn(`Attach answered with reattach; trying again`);
            this.attachSentAt = Date.now() - this.attachTimeoutMs + 500;
            return;
          }
          this.reattach(`the daemon does not know this worker (${what} rejected)`, 'attach');
          return;
        }
        const text = `${what} rejected: ${errorCodeName(body.code)}: ${body.message}`;
        if (sent?.kind === 'Attach') {
          this.fail(new MusterError(body.code, `the daemon refused to attach worker ${this.workerId}: ${body.message}`));
        } else {
          this.log.warn(text);
        }
        return;
      }
      default:
        this.log.warn(`unexpected ${body.type} on the response socket`);
    }
  }

  /** What musterd sends this worker other than replies, from the SUB (`topic`, `broadcast`) or, direct, the DEALER. */
  private onPublished(msg: DaemonMessage, route: Route): void {
    const body = msg.body;
    switch (body.type) {
      case 'Ping': {
        if (this.attached === null || this.state === 'stopped') return; // not attached yet
        if (this.forgotten !== null) return; // stopping, and the daemon no longer knows it
        this.lastPingAt = Date.now();
        if (body.instance !== this.instance) {
          this.reattach(`daemon instance changed (${this.instance} -> ${body.instance})`, 'attach');
          return;
        }
        // Direct, the confirming Ping cannot be told from a broadcast one: every Ping is answered
        // until the Ack of a Pong (the confirming Pong is always Acked, §7.10).
        if (this.skipIdlePong(route === 'topic' || (route === 'direct' && this.answerEveryPing))) return;
        this.sendPong(body.seq, body.instance);
        return;
      }
      case 'WorkRequest':
        this.onWorkRequest(body);
        return;
      case 'Credit': {
        // A grant of the caller (cumulative totals, forwarded by the daemon): a stale or
        // repeated one changes nothing (PROTOCOL.md §7.8). On an output stream (§7.9) a resume
        // Credit sends it again from its offset, also once the Result went (R11).
        if (route === 'broadcast') return;
        const key = `${body.requestId}`;
        const job = this.jobs.get(key);
        const chunks = job && !job.answered ? job.chunks : body.stream !== 0 ? this.resending.get(key) : undefined;
        if (!chunks) return;
        if (body.stream === 0) job!.items.window?.grant(grantNumber(body.items), grantNumber(body.bytes));
        else chunks.onCredit(body.stream, body.bytes, body.resume ?? false, body.resumeOffset ?? 0n);
        return;
      }
      case 'Chunk': {
        // a piece of a chunked input, forwarded from the caller
        const job = this.jobs.get(`${body.requestId}`);
        if (!job || job.answered || route === 'broadcast') return;
        job.chunks.onChunk(body.stream, body.offset, body.data ?? new Uint8Array(0));
        return;
      }
      case 'Abort': {
        const job = this.jobs.get(`${body.requestId}`);
        if (!job || job.answered) {
          this.releaseStreams(`${body.requestId}`); // an answered call that ended: nothing to send again
          return;
        }
        this.log.debug(`abort of request ${body.requestId}: ${errorCodeName(body.code)} ${body.reason}`);
        this.abortJob(job, body.code, body.reason || 'aborted by the daemon');
        return;
      }
      default:
        this.log.warn(`unexpected ${body.type} on ${this.routeName(route)}`);
    }
  }

  /** A Pong for ping `seq`: what runs in `in_flight`, the kept answers in `answered`. */
  private sendPong(seq: bigint, instance: string): void {
    const inFlight = [...this.jobs.values()].filter((j) => !j.answered).map((j) => j.req.requestId);
    const answered = [...this.kept.values()].map((k) => {
      if (k.listedIn === 0n) k.listedIn = seq; // the first Pong of this instance to list it
      return k.requestId;
    });
    this.enqueue({ type: 'Pong', seq, instance, inFlight, answered }, (reply) => {
      if (reply?.body.type === 'Ack' && reply.body.pongSeq) this.onPongAck(reply.body.pongSeq, reply.body.missing);
    });
    if (this.noAcks && answered.length > 0) this.pongAckDue = seq;
    this.pingsUnanswered = 0;
    this.lastPong = { seq, instance, listed: answered.length > 0 };
  }

  /**
   * Whether a broadcast Ping may go unanswered (PROTOCOL.md §7.3, Attached.idle_pong_every):
   * only while nothing runs and no answer waits to be confirmed, at most k - 1 in a row; a ping
   * on the worker's own topic (the confirming ping, §7.1) is always answered.
   */
  private skipIdlePong(ownTopic: boolean): boolean {
    if (this.idlePongEvery <= 1 || ownTopic || this.jobs.size > 0 || this.kept.size > 0) return false;
    if (this.pingsUnanswered + 1 >= this.idlePongEvery) return false;
    this.pingsUnanswered += 1;
    return true;
  }

  /**
   * Asks for the kept answers' confirmation before the next ping once they pass
   * confirmKeptBytes: a Pong repeating the last one (PROTOCOL.md §7.7 "Early confirmation").
   * Acks are matched by seq, so only a Pong that listed answers (so was Acked) and whose Ack
   * was read is repeated, and only while no other Pong's Ack is due: then the Ack with that seq
   * answers exactly the repeat, never a Pong whose answers the daemon has not checked.
   */
  private confirmEarlyIfLarge(): void {
    if (!this.noAcks || this.confirmKeptBytes === 0 || this.keptBytes < this.confirmKeptBytes) return;
    if (this.attached === null || this.state === 'attaching' || this.pongAckDue !== 0n) return;
    if (!this.lastPong.listed || this.lastPong.instance !== this.instance) return;
    this.sendPong(this.lastPong.seq, this.lastPong.instance);
  }

  // ---- work ----------------------------------------------------------------------------

  private onWorkRequest(req: WorkRequestBody): void {
    if (this.state === 'stopped') return;
    if (this.abandoning) {
      this.log.warn(`request ${req.requestId} (${req.node}) arrived after the drain ended: left to the daemon`);
      return;
    }
    const key = `${req.requestId}`;
    if (this.jobs.has(key)) {
      this.log.debug(`request ${req.requestId} (attempt ${req.attempt}) is already running: ignored`);
      return;
    }
    const previous = this.kept.get(key)?.bytes ?? this.answers.get(key);
    if (previous) {
      this.log.debug(`request ${req.requestId} was already answered: sending the answer again`);
      this.outbox.push({ bytes: previous, kind: 'Result' });
      this.pump();
      return;
    }
    let resolveDone!: () => void;
    const job: Job = {
      key,
      instance: this.instance,
      req,
      controller: new LazyAbort(),
      abortCode: ErrorCode.Cancelled,
      abortReason: '',
      answered: false,
      started: false,
      done: new Promise<void>((r) => (resolveDone = r)),
      resolveDone: () => resolveDone(),
      items: new ItemSender({
        requestId: req.requestId,
        node: req.node,
        workerId: this.workerId,
        windowItems: req.streamWindowItems ?? 0,
        windowBytes: req.streamWindowBytes ?? 0n,
        post: (bytes) => {
          if (job.answered) return;
          this.outbox.push({ bytes, kind: 'Item' }); // answered like a Progress: an Ack
          this.pump();
        },
        maxMessageBytes: () => this.maxMessageBytes,
      }),
      chunks: new JobChunks(
        req.requestId,
        grantNumber(req.chunkWindowBytes ?? 0n),
        {
          // answered like a Progress: an Ack; after the Result only chunks sent again (R11)
          post: (body) => this.enqueue(body),
          failInput: (message) => {
            if (job.inputFailure === null) job.inputFailure = message;
            this.abortJob(job, ErrorCode.InvalidRequest, message);
          },
          failOutput: (message) => this.failOutput(job, message),
        },
        this.resumeAfterMs,
      ),
      inputFailure: null,
    };
    this.jobs.set(key, job);
    // While detaching, a request the daemon published before it processed the Detach is run
    // like the others (PROTOCOL.md §7.5).
    const refusal = req.inputsInFrame // only for a worker that attached with payloadFrames: never this one
      ? { code: ErrorCode.InvalidRequest, message: 'inputs in a separate frame were not requested' }
      : null;
    if (refusal) {
      this.answer(job, { type: 'Failure', requestId: req.requestId, ...refusal });
      return;
    }
    this.waiting.push(job);
    this.runWaiting();
  }

  private runWaiting(): void {
    while (this.running < this.capacity && this.waiting.length > 0) {
      const job = this.waiting.shift()!;
      if (job.answered) continue;
      this.running += 1;
      job.started = true;
      void this.execute(job).finally(() => {
        this.running -= 1;
        job.resolveDone();
        this.runWaiting();
      });
    }
  }

  private abortJob(job: Job, code: ErrorCode, reason: string): void {
    if (job.controller.aborted) return;
    job.abortCode = code;
    job.abortReason = reason;
    job.items.close();
    job.chunks.close(new MusterError(code, reason));
    job.controller.abort(new MusterError(code, reason));
    if (!job.started) {
      // Never started: answer now and free it.
      this.answer(job, { type: 'Failure', requestId: job.req.requestId, code, message: reason });
      job.resolveDone();
    }
  }

  private abortAll(code: ErrorCode, reason: string): void {
    for (const job of this.jobs.values()) this.abortJob(job, code, reason);
  }

  /** Sends the one answer of a request, and remembers it in case the daemon sends it again. */
  private answer(job: Job, body: WorkerBody & { type: 'Result' | 'Failure' }): void {
    if (job.answered) return;
    job.answered = true;
    job.items.close();
    // Made only if a stream of the request needs it: most have none, and an Error's stack costs.
    const over = () => new MusterError(ErrorCode.Cancelled, 'the request was answered');
    if (body.type === 'Result' && job.chunks.hasOutputStreams) {
      // its chunks may be asked for again until the Result is confirmed (R11)
      job.chunks.answered(over);
      this.resending.set(job.key, job.chunks);
    } else job.chunks.close(over);
    this.jobs.delete(job.key);
    const bytes = this.answerBytes(job.req.requestId, body, (job.req.chunkWindowBytes ?? 0n) === 0n);
    this.sendAnswer(job.req.requestId, bytes, body.type);
    this.answers.set(job.key, bytes);
    if (this.answers.size > REMEMBERED_ANSWERS) this.answers.delete(this.answers.keys().next().value!);
    this.confirmEarlyIfLarge();
  }

  /** Sends an answer and keeps it until the daemon confirms it (PROTOCOL.md §7.6). */
  private sendAnswer(requestId: bigint, bytes: Uint8Array, kind: 'Result' | 'Failure'): void {
    const key = `${requestId}`;
    const entry = { requestId, bytes, kind, listedIn: 0n };
    this.keptBytes += bytes.length - (this.kept.get(key)?.bytes.length ?? 0);
    this.kept.set(key, entry);
    this.outbox.push({
      bytes,
      kind,
      onReply: (reply) => {
        // Its Ack confirms it. Ack{late} (a restarted daemon that has not adopted its call
        // yet drops it), a Rejected (it did not know this worker) or no reply at all (a
        // reconnect) leave it kept, for the next Pong to list.
        // A Result with chunked outputs is confirmed only through a Pong's Ack: musterd holds it
        // without a reply while its streams are short (PROTOCOL.md §7.9 R8), so the Ack that
        // comes next may be another message's.
        if (reply?.body.type === 'Ack' && !reply.body.late && this.kept.get(key) === entry && !this.resending.has(key)) this.confirmed(key);
      },
    });
    this.pump();
  }

  /**
   * The daemon's Ack to the Pong `pongSeq`: the answers it names missing go again (it adopted
   * their calls after a restart, or lost them on the way); every other answer that Pong listed
   * is confirmed and forgotten (PROTOCOL.md §7.6, §7.7).
   */
  private onPongAck(pongSeq: bigint, missing: bigint[]): void {
    const again = new Set<string>();
    for (const id of missing) {
      const k = this.kept.get(`${id}`);
      if (!k) continue;
      again.add(`${id}`);
      this.sendAnswer(k.requestId, k.bytes, k.kind);
    }
    if (again.size > 0) this.log.info(`sending ${again.size} kept answer(s) again, as the daemon asked`);
    let forgotten = 0;
    for (const [key, k] of this.kept) {
      if (again.has(key) || k.listedIn === 0n || k.listedIn > pongSeq) continue;
      this.confirmed(key);
      forgotten += 1;
    }
    if (forgotten > 0) this.log.debug(`forgot ${forgotten} kept answer(s): the daemon has them or no longer waits for them`);
  }

  /** The daemon has the answer of request `key`: forget it, and stop keeping its streams (R11). */
  private confirmed(key: string): void {
    this.keptBytes -= this.kept.get(key)?.bytes.length ?? 0;
    this.kept.delete(key);
    this.releaseStreams(key);
  }

  /** The chunked outputs of an answered request will not be asked for again. */
  private releaseStreams(key: string): void {
    const chunks = this.resending.get(key);
    if (!chunks) return;
    this.resending.delete(key);
    chunks.close(new MusterError(ErrorCode.Cancelled, 'the answer was confirmed'));
  }

  /**
   * An output stream cannot be sent again (R10: a resume Credit for bytes a stream no longer
   * keeps): the request fails WorkerError with it; if its Result went already (musterd holds
   * it, R8), a Failure replaces the kept Result.
   */
  private failOutput(job: Job, message: string): void {
    this.log.warn(`request ${job.req.requestId}: ${message}`);
    if (!job.answered) {
      this.abortJob(job, ErrorCode.WorkerError, message);
      return;
    }
    if (!this.resending.has(job.key)) return; // confirmed or over meanwhile
    this.releaseStreams(job.key);
    const bytes = this.answerBytes(job.req.requestId, { type: 'Failure', requestId: job.req.requestId, code: ErrorCode.WorkerError, message });
    this.answers.set(job.key, bytes);
    this.sendAnswer(job.req.requestId, bytes, 'Failure');
  }

  /**
   * After a re-attach (PROTOCOL.md §7.9 R4): to the same daemon instance, every input stream
   * granted and not received whole gets a resume Credit (the chunks lost with the connection
   * come again); to another instance (a restart) the calls with chunked streams are aborted:
   * the new instance does not know them, and their chunked outputs will not be asked for.
   */
  private resumeStreams(changed: boolean, from: string, to: string): void {
    if (!changed) {
      for (const job of this.jobs.values()) if (!job.answered) job.chunks.resumeInputs();
      return;
    }
    for (const key of [...this.resending.keys()]) this.releaseStreams(key);
    for (const job of [...this.jobs.values()]) {
      if (job.answered || !(job.chunks.streaming || (!job.started && chunkedInputs(job.req)))) continue;
      const reason = `the daemon restarted (instance ${from} -> ${to}): the chunked values of this request cannot resume`;
      this.log.warn(`request ${job.req.requestId}: aborted: ${reason}`);
      this.abortJob(job, ErrorCode.Unavailable, reason);
    }
  }

  /** Answers a request that cannot even be read (its inputs are not a valid payload). */
  private refuse(requestId: bigint, message: string): void {
    if (this.state === 'stopped' || this.jobs.has(`${requestId}`)) return;
    this.outbox.push({ bytes: this.answerBytes(requestId, { type: 'Failure', requestId, code: ErrorCode.InvalidRequest, message }), kind: 'Failure' });
    this.pump();
  }

  /**
   * The bytes of a request's answer as the daemon accepts it: a Failure carries only
   * InvalidRequest or WorkerError (PROTOCOL.md §6), and an answer larger than the daemon's
   * --max-message-bytes becomes a WorkerError saying so (it would be refused, and the caller
   * would wait its whole deadline).
   */
  private answerBytes(requestId: bigint, body: WorkerBody & { type: 'Result' | 'Failure' }, chunkless = false): Uint8Array {
    const failure = (code: ErrorCode, message: string) =>
      encodeWorkerMessage({ workerId: this.workerId, body: { type: 'Failure', requestId, code, message } });
    let bytes: Uint8Array;
    try {
      bytes = encodeWorkerMessage({
        workerId: this.workerId,
        body: body.type === 'Failure' ? { ...body, code: workerFailureCode(body.code) } : body,
      });
    } catch (e) {
      return failure(ErrorCode.WorkerError, `cannot encode the answer: ${(e as Error).message}`);
    }
    if (this.tooLarge(bytes.length)) {
      const what = body.type === 'Result' ? 'result' : 'failure';
      const hint =
        body.type === 'Result' && chunkless
          ? '; the caller takes no chunked outputs (chunk_window_bytes 0: a durable call, or a caller without chunks)'
          : '';
      const message = `${what} of ${bytes.length} bytes exceeds the daemon's limit of ${this.maxMessageBytes} bytes (--max-message-bytes)${hint}`;
      this.log.warn(`request ${requestId}: ${message}`);
      return failure(ErrorCode.WorkerError, message);
    }
    return bytes;
  }

  private tooLarge(size: number): boolean {
    return this.maxMessageBytes > 0 && size > this.maxMessageBytes;
  }

  private async execute(job: Job): Promise<void> {
    const req = job.req;
    this.log.debug(`request ${req.requestId}: ${req.node} (attempt ${req.attempt})`);
    const node = this.nodes.get(req.node);
    if (!node) {
      this.answer(job, {
        type: 'Failure',
        requestId: req.requestId,
        code: ErrorCode.InvalidRequest,
        message: `worker ${this.workerId} does not serve node ${req.node}`,
      });
      return;
    }
    let inputs: Values;
    let parameters: Values;
    try {
      // decoded once: the message's verification decoded them already
      inputs = applyPorts(takeValues(req.inputs), node.spec.inputs, 'input');
      parameters = applyPorts(takeValues(req.parameters), node.spec.parameters, 'parameter');
      // Chunked inputs: credit granted now; assembled and checked unless read as streams.
      inputs = await job.chunks.openInputs(inputs, node.streamed);
    } catch (e) {
      // Missing or mistyped ports, payloads that are not valid Values, chunked inputs that fail
      // their check: the request's fault (or it was aborted while its inputs arrived).
      if (job.controller.aborted && job.inputFailure === null) {
        this.answer(job, { type: 'Failure', requestId: req.requestId, code: job.abortCode, message: job.abortReason });
        return;
      }
      const message = job.inputFailure ?? (e instanceof Error ? e.message : String(e));
      this.answer(job, { type: 'Failure', requestId: req.requestId, code: ErrorCode.InvalidRequest, message });
      return;
    }
    const ctx = this.makeContext(job, inputs, parameters);
    try {
      const returned = node.handler(ctx);
      // An async iterator (async function*) or a generator: each value one item, then its return value.
      const out = isItemSource(returned) ? await driveIterator(job.items, () => job.controller.aborted, returned) : await returned;
      if (isItemSource(returned) && job.controller.aborted) throw new MusterError(job.abortCode, job.abortReason);
      let outputs: Values;
      if (out === undefined || out === null) outputs = {};
      else if (typeof out === 'object' && kindOf(out as Values) === 'map') outputs = out as Values;
      else throw new MusterError(ErrorCode.WorkerError, `node ${req.node} returned a ${kindOf(out)}, not a map of outputs`);
      if (job.inputFailure !== null) throw new MusterError(ErrorCode.InvalidRequest, job.inputFailure);
      // Large bytes and streamed outputs go as chunks first; the Result holds their references.
      outputs = await job.chunks.sendOutputs(outputs, this.chunkThreshold, this.maxMessageBytes);
      if (job.controller.aborted) throw new MusterError(job.abortCode, job.abortReason);
      let bytes: Uint8Array;
      try {
        bytes = encodeValues(outputs);
      } catch (e) {
        throw new MusterError(ErrorCode.WorkerError, `node ${req.node} returned outputs that cannot be sent: ${(e as Error).message}`);
      }
      this.answer(job, { type: 'Result', requestId: req.requestId, outputs: bytes, outputsInFrame: false });
    } catch (e) {
      let code: ErrorCode;
      let message: string;
      if (job.controller.aborted && (!(e instanceof MusterError) || e.codeNumber === job.abortCode)) {
        code = job.abortCode;
        message = job.abortReason;
      } else if (e instanceof MusterError) {
        code = e.codeNumber;
        message = e.message;
      } else {
        code = ErrorCode.WorkerError;
        message = e instanceof Error ? e.message || e.name : String(e);
      }
      if (code === ErrorCode.None) code = ErrorCode.WorkerError;
      this.answer(job, { type: 'Failure', requestId: req.requestId, code, message });
    }
  }

  private makeContext(job: Job, inputs: Values, parameters: Values): Context {
    const req = job.req;
    const abort = job.controller;
    const timeoutMs = Number(req.timeoutMs);
    const caller: CallerContext = req.caller ?? { identity: '', name: '', workspace: '', role: '', traceId: '' };
    const toRecord = (v: Values): Record<string, any> => (v instanceof Map ? Object.fromEntries(v) : v);
    return {
      inputs: toRecord(inputs),
      rawInputs: inputs,
      parameters: toRecord(parameters),
      caller,
      requestId: Number(req.requestId),
      node: req.node,
      attempt: req.attempt,
      timeoutMs,
      deadline: timeoutMs > 0 ? Date.now() + timeoutMs : Infinity,
      get signal() {
        return abort.signal; // made on first use
      },
      get aborted() {
        return abort.aborted;
      },
      throwIfAborted: () => {
        if (abort.aborted) throw new MusterError(job.abortCode, job.abortReason);
      },
      progress: (step, total = 0, message = '') => {
        // Best effort: progress is not queued up while the worker is (re)attaching.
        if (job.answered || this.attached === null || job.instance !== this.instance) return;
        this.enqueue({
          type: 'Progress',
          requestId: req.requestId,
          step: toBig(step, 'step'),
          total: toBig(total, 'total'),
          message: String(message),
        });
      },
      get streaming() {
        return job.items.streaming;
      },
      emit: (values) => job.items.emit(values),
      inputStream: (name) => job.chunks.inputStream(name, (inputs instanceof Map ? inputs.get(name) : inputs[name]) ?? undefined),
    };
  }
}
