// fake-daemon.ts — a scripted stand-in for musterd in the SDK's tests: a PUB request socket,
// a ROUTER response socket and a ROUTER client socket in a private temporary directory; to a
// worker granted `direct` (PROTOCOL.md §7.10) it sends on the ROUTER what it would publish.
// Owns: just enough of the daemon side of PROTOCOL.md §7 and §8 for tests to drive a worker or
// a client message by message; every wait has a timeout so no test can hang.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import * as zmq from 'zeromq';

import {
  type ClientMessage,
  type ClientReply,
  type DaemonBody,
  type ReplyBody,
  type WorkRequestBody,
  type WorkerMessage,
  type WorkerOptions,
  decodeClientMessage,
  decodeWorkerMessage,
  encodeClientReply,
  encodeDaemonMessage,
  encodeValues,
} from '../src';

// How long a wait for a message or a condition that must come lasts. Generous: the worker, the
// client and this fake share one Node process, and on a loaded 2-core CI machine producing and
// hashing a few MiB of chunks took more than the 5 s this was (a chunk-resume test timed out at
// load ~21 and passed alone). A wait for something that must NOT come passes its own, short,
// timeout; a hang still fails here, bounded.
export const DEFAULT_WAIT_MS = 30_000;

export interface FromWorker {
  routingId: Buffer;
  delimiter: boolean;
  msg: WorkerMessage;
}

export interface FromClient {
  routingId: Buffer;
  delimiter: boolean;
  msg: ClientMessage;
}

class Inbox<T> {
  private items: T[] = [];
  private waiters: { match: (t: T) => boolean; resolve: (t: T) => void }[] = [];
  readonly all: T[] = [];

  push(item: T): void {
    this.all.push(item);
    const i = this.waiters.findIndex((w) => w.match(item));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      w!.resolve(item);
      return;
    }
    this.items.push(item);
  }

  /** The next item (oldest first) that matches; waits up to timeoutMs. */
  next(match: (t: T) => boolean = () => true, timeoutMs = DEFAULT_WAIT_MS, what = 'message'): Promise<T> {
    const i = this.items.findIndex(match);
    if (i >= 0) return Promise.resolve(this.items.splice(i, 1)[0]!);
    return new Promise<T>((resolve, reject) => {
      const waiter = {
        match,
        resolve: (t: T) => {
          clearTimeout(timer);
          resolve(t);
        },
      };
      const timer = setTimeout(() => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  clear(): void {
    this.items = [];
  }
}

/** The topic musterd assigns a worker in Attached.topic (PROTOCOL.md §2); over ipc the
 * identity is the local owner's, `local`. */
export function workerTopic(workerId: string, identity = 'local'): string {
  return `w:${identity}:${workerId}:`;
}

export function tempDir(prefix = 'muster-ts-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o700);
  return dir;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every 10 ms until it holds, or throws after timeoutMs. */
export async function until(cond: () => boolean, timeoutMs = DEFAULT_WAIT_MS, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A test worker's options for `daemon`: its endpoints, no log, a 1 s attach timeout, a 2 s grace. */
export function testWorkerOptions(daemon: FakeDaemon): WorkerOptions {
  return {
    requestAddress: daemon.requestAddress,
    responseAddress: daemon.responseAddress,
    logger: 'off',
    attachTimeoutMs: 1000,
    shutdownGraceMs: 2000,
  };
}

/** A WorkRequest `requestId` for `node` (5 s left, attempt 1); `extra` overrides fields. */
export function workRequestBody(requestId: bigint, node: string, inputs: Record<string, unknown> = {}, extra: Partial<WorkRequestBody> = {}): DaemonBody {
  return {
    type: 'WorkRequest',
    requestId,
    node,
    inputs: encodeValues(inputs as never),
    parameters: new Uint8Array(0),
    timeoutMs: 5000n,
    attempt: 1,
    caller: { identity: 'local', name: 'tester', workspace: 'default', role: 'admin', traceId: '' },
    inputsInFrame: false,
    ...extra,
  };
}

export interface FakeDaemonOptions {
  /** Answer Attach with Attached and confirm with worker-topic pings until a Pong (default true). */
  autoAttach?: boolean;
  /** Answer every other worker message with Ack (default true). */
  autoAck?: boolean;
  /** Publish a broadcast Ping every pingIntervalMs (default true). */
  ping?: boolean;
  pingIntervalMs?: number;
  liveness?: number;
  instance?: string;
  dir?: string;
  /** Bind tcp://127.0.0.1 on random ports as a CURVE server with this secret key (Z85). */
  curveSecretKey?: string;
}

export class FakeDaemon {
  readonly dir: string;
  requestAddress: string;
  responseAddress: string;
  clientAddress: string;
  readonly fromWorkers = new Inbox<FromWorker>();
  readonly fromClients = new Inbox<FromClient>();
  readonly badFrames: Buffer[][] = [];
  instance: string;
  pingIntervalMs: number;
  liveness: number;
  /** Attached.max_message_bytes: the limit the worker must keep its messages under. */
  maxMessageBytes = 16n << 20n;
  autoAttach: boolean;
  autoAck: boolean;
  pinging: boolean;
  /**
   * Grant Attach.no_answer_acks (PROTOCOL.md §7.7) to a worker that asks: then, like musterd,
   * no Ack to its Progress, Result, Failure, Item, Chunk or Credit, and an Ack to a Pong only
   * when it lists answers or confirms the worker (`missing` from pongMissing, else none).
   */
  grantNoAnswerAcks = false;
  /** Attached.idle_pong_every for a worker that asks for idle pongs (§7.3); 0: not granted. */
  idlePongEvery = 0;
  /** The `missing` of the Ack to a Pong of a worker without answer Acks (default: none). */
  pongMissing: ((pong: Extract<WorkerMessage['body'], { type: 'Pong' }>) => bigint[]) | null = null;
  /**
   * Grant Attach.direct (PROTOCOL.md §7.10) to a worker that asks: then, like musterd, what
   * would be published on its topic and on "b:" goes to the connection of its last Attach.
   */
  grantDirect = false;
  /** Connections the request (PUB) socket accepted: a direct worker makes none. */
  subscriberConnections = 0;
  /** Of those, the ones that ended (a SUB closed or gone). */
  subscriberDisconnects = 0;
  /** The connection (routing id) of each worker granted direct, by its topic. */
  private directRoutes = new Map<string, Buffer>();
  /** Workers granted no_answer_acks, by worker id. */
  private unacked = new Set<string>();
  /** Overrides the automatic reply to a worker message: return a body, or null for no reply. */
  replyHook: ((m: FromWorker) => DaemonBody | null | undefined) | null = null;
  seq = 0n;

  private pub: zmq.Publisher;
  private router: zmq.Router;
  private client: zmq.Router;
  private pingTimer: NodeJS.Timeout | null = null;
  private confirming = new Map<string, NodeJS.Timeout>();
  // Like musterd, nothing but the confirming ping goes to a worker topic before the worker
  // answered it: the worker subscribes to its topic only when Attached arrives (PROTOCOL.md
  // §7.1). Messages published meanwhile wait here, in order, per topic.
  private unconfirmed = new Map<string, (() => void)[]>();
  private ownsDir: boolean;

  private constructor(options: FakeDaemonOptions) {
    this.ownsDir = !options.dir;
    this.dir = options.dir ?? tempDir();
    this.requestAddress = `ipc://${this.dir}/request.sock`;
    this.responseAddress = `ipc://${this.dir}/response.sock`;
    this.clientAddress = `ipc://${this.dir}/client.sock`;
    this.instance = options.instance ?? 'fake-instance-1';
    this.pingIntervalMs = options.pingIntervalMs ?? 100;
    // 100 pings: a 10 s window. The worker under test runs in this same Node process; under a
    // loaded CI machine its event loop stalls for longer than a few pings, and a short window
    // made it attach again mid-test, losing what was published meanwhile (seen: chunk-resume
    // tests at load ~20). A test about the window passes its own liveness.
    this.liveness = options.liveness ?? 100;
    this.autoAttach = options.autoAttach ?? true;
    this.autoAck = options.autoAck ?? true;
    this.pinging = options.ping ?? true;
    this.pub = new zmq.Publisher({ linger: 0 });
    this.router = new zmq.Router({ linger: 0 });
    this.client = new zmq.Router({ linger: 0 });
    if (options.curveSecretKey) {
      for (const s of [this.pub, this.router, this.client]) {
        s.curveServer = true;
        s.curveSecretKey = options.curveSecretKey;
      }
      this.requestAddress = this.responseAddress = this.clientAddress = 'tcp://127.0.0.1:*';
    }
  }

  static async start(options: FakeDaemonOptions = {}): Promise<FakeDaemon> {
    const d = new FakeDaemon(options);
    d.pub.events.on('accept', () => (d.subscriberConnections += 1));
    d.pub.events.on('disconnect', () => (d.subscriberDisconnects += 1));
    await d.pub.bind(d.requestAddress);
    await d.router.bind(d.responseAddress);
    await d.client.bind(d.clientAddress);
    d.requestAddress = d.pub.lastEndpoint ?? d.requestAddress;
    d.responseAddress = d.router.lastEndpoint ?? d.responseAddress;
    d.clientAddress = d.client.lastEndpoint ?? d.clientAddress;
    void d.workerLoop();
    void d.clientLoop();
    d.pingTimer = setInterval(() => {
      if (d.pinging) d.ping('b:');
    }, d.pingIntervalMs);
    return d;
  }

  async close(): Promise<void> {
    if (this.pingTimer) clearInterval(this.pingTimer);
    for (const t of this.confirming.values()) clearInterval(t);
    this.confirming.clear();
    for (const s of [this.pub, this.router, this.client]) if (!s.closed) s.close();
    if (this.ownsDir) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Closes only the client socket (to simulate a daemon that went away). */
  closeClientSocket(): void {
    this.client.close();
  }

  /** Binds the client socket again at the same address (a daemon that came back; ipc only). */
  async reopenClientSocket(): Promise<void> {
    if (!this.client.closed) this.client.close();
    this.client = new zmq.Router({ linger: 0 });
    await this.client.bind(this.clientAddress);
    void this.clientLoop();
  }

  /** Binds the response socket again at the same address: every worker connection breaks and comes back (ipc only). */
  async reopenResponseSocket(): Promise<void> {
    if (!this.router.closed) this.router.close();
    this.router = new zmq.Router({ linger: 0 });
    await this.router.bind(this.responseAddress);
    void this.workerLoop();
  }

  publish(topic: string, body: DaemonBody): void {
    this.publishRaw(topic, encodeDaemonMessage({ body }));
  }

  publishRaw(topic: string, bytes: Uint8Array): void {
    const send = () => this.sendOn(topic, bytes);
    const waiting = this.unconfirmed.get(topic);
    if (waiting) waiting.push(send);
    else send();
  }

  /** Publishes WorkRequest `requestId` for `node` to worker `workerId` (5 s left, attempt 1); `extra` overrides fields. */
  workRequest(workerId: string, requestId: bigint, node: string, inputs: Record<string, unknown> = {}, extra: Partial<WorkRequestBody> = {}): bigint {
    this.publish(workerTopic(workerId), workRequestBody(requestId, node, inputs, extra));
    return requestId;
  }

  ping(topic: string, instance = this.instance): bigint {
    this.seq += 1n;
    const bytes = encodeDaemonMessage({ body: { type: 'Ping', seq: this.seq, instance } });
    this.sendOn(topic, bytes);
    if (topic === 'b:') for (const route of this.directRoutes.values()) this.replyRaw({ routingId: route }, bytes);
    return this.seq;
  }

  /** Publishes on the request (PUB) socket even when `topic` is a direct worker's (which musterd never does): what a SUB still subscribed would get. */
  publishOnRequestSocket(topic: string, body: DaemonBody): void {
    void this.pub.send([topic, encodeDaemonMessage({ body })]).catch(() => undefined);
  }

  /** Publishes on `topic`, or sends `[bytes]` to the connection of the direct worker whose topic it is. */
  private sendOn(topic: string, bytes: Uint8Array): void {
    const route = this.directRoutes.get(topic);
    if (route) this.replyRaw({ routingId: route }, bytes);
    else void this.pub.send([topic, bytes]).catch(() => undefined);
  }

  reply(to: { routingId: Buffer; delimiter: boolean }, body: DaemonBody): void {
    const frames: (Buffer | Uint8Array | string)[] = [to.routingId];
    if (to.delimiter) frames.push('');
    frames.push(encodeDaemonMessage({ body }));
    void this.router.send(frames).catch(() => undefined);
  }

  replyRaw(to: { routingId: Buffer }, bytes: Uint8Array): void {
    void this.router.send([to.routingId, bytes]).catch(() => undefined);
  }

  clientReply(to: FromClient, body: ReplyBody, requestId: bigint = to.msg.requestId): void {
    const reply: ClientReply = { requestId, body };
    const frames: (Buffer | Uint8Array | string)[] = [to.routingId];
    if (to.delimiter) frames.push('');
    frames.push(encodeClientReply(reply));
    void this.client.send(frames).catch(() => undefined);
  }

  clientReplyRaw(to: FromClient, bytes: Uint8Array): void {
    void this.client.send([to.routingId, bytes]).catch(() => undefined);
  }

  /** The next message of a given body type from workers. */
  nextFromWorker<T extends WorkerMessage['body']['type']>(
    type: T,
    match: (m: Extract<WorkerMessage['body'], { type: T }>, r: FromWorker) => boolean = () => true,
    timeoutMs = DEFAULT_WAIT_MS,
  ): Promise<FromWorker & { body: Extract<WorkerMessage['body'], { type: T }> }> {
    return this.fromWorkers
      .next((r) => r.msg.body.type === type && match(r.msg.body as never, r), timeoutMs, `a ${type} from a worker`)
      .then((r) => ({ ...r, body: r.msg.body as Extract<WorkerMessage['body'], { type: T }> }));
  }

  nextFromClient<T extends ClientMessage['body']['type']>(type: T, timeoutMs = DEFAULT_WAIT_MS): Promise<FromClient> {
    return this.fromClients.next((r) => r.msg.body.type === type, timeoutMs, `a ${type} from a client`);
  }

  private async workerLoop(): Promise<void> {
    try {
      for await (const frames of this.router) {
        const routingId = frames[0]!;
        const delimiter = frames.length === 3 && frames[1]!.length === 0;
        if (!(frames.length === 2 || delimiter)) {
          this.badFrames.push(frames);
          continue;
        }
        let msg: WorkerMessage;
        try {
          msg = decodeWorkerMessage(frames[frames.length - 1]!);
        } catch {
          this.badFrames.push(frames);
          this.reply({ routingId, delimiter }, { type: 'Rejected', code: 9, message: 'bad message', reattach: false });
          continue;
        }
        const r: FromWorker = { routingId, delimiter, msg };
        this.autoReply(r);
        this.fromWorkers.push(r);
      }
    } catch {
      /* closed */
    }
  }

  private autoReply(r: FromWorker): void {
    const confirmedNow = r.msg.body.type === 'Pong' && this.confirmed(r.msg.workerId);
    const hook = this.replyHook?.(r);
    if (hook === null) return;
    if (hook !== undefined) {
      this.reply(r, hook);
      return;
    }
    const body = r.msg.body;
    if (body.type === 'Attach') {
      if (!this.autoAttach) return;
      this.reply(r, {
        type: 'Attached',
        workerId: body.workerId,
        instance: this.instance,
        topic: workerTopic(body.workerId),
        broadcastTopic: 'b:',
        pingIntervalMs: BigInt(this.pingIntervalMs),
        liveness: this.liveness,
        maxMessageBytes: this.maxMessageBytes,
        noAnswerAcks: this.grantNoAnswerAcks && body.noAnswerAcks,
        idlePongEvery: body.idlePongs ? this.idlePongEvery : 0,
        direct: this.grantDirect && body.direct,
      });
      // Direct: from now on its messages go to this connection (an Attach moves the route).
      if (this.grantDirect && body.direct) this.directRoutes.set(workerTopic(body.workerId), r.routingId);
      else this.directRoutes.delete(workerTopic(body.workerId));
      if (this.grantNoAnswerAcks && body.noAnswerAcks) this.unacked.add(body.workerId);
      else this.unacked.delete(body.workerId);
      this.startConfirming(body.workerId);
      return;
    }
    if (this.unacked.has(r.msg.workerId)) {
      if (body.type === 'Pong') {
        if (body.answered.length > 0 || confirmedNow)
          this.reply(r, { type: 'Ack', late: false, pongSeq: body.seq, missing: this.pongMissing?.(body) ?? [] });
        return;
      }
      if (body.type !== 'Detach') return; // an answer, item, chunk or credit: no Ack (§7.7)
    }
    if (this.autoAck) this.reply(r, { type: 'Ack', late: false, pongSeq: 0n, missing: [] });
  }

  /** A Pong from the worker: stops its confirming pings and sends what waited for it; false if it was confirmed already. */
  private confirmed(workerId: string): boolean {
    const t = this.confirming.get(workerId);
    if (!t) return false;
    clearInterval(t);
    this.confirming.delete(workerId);
    const topic = workerTopic(workerId);
    const waiting = this.unconfirmed.get(topic) ?? [];
    this.unconfirmed.delete(topic);
    for (const send of waiting) send();
    return true;
  }

  private startConfirming(workerId: string): void {
    const old = this.confirming.get(workerId);
    if (old) clearInterval(old);
    const topic = workerTopic(workerId);
    if (!this.unconfirmed.has(topic)) this.unconfirmed.set(topic, []);
    this.ping(topic);
    this.confirming.set(
      workerId,
      setInterval(() => this.ping(topic), 50),
    );
  }

  private async clientLoop(): Promise<void> {
    try {
      for await (const frames of this.client) {
        const routingId = frames[0]!;
        const delimiter = frames.length === 3 && frames[1]!.length === 0;
        let msg: ClientMessage;
        try {
          msg = decodeClientMessage(frames[frames.length - 1]!);
        } catch {
          this.badFrames.push(frames);
          continue;
        }
        this.fromClients.push({ routingId, delimiter, msg });
      }
    } catch {
      /* closed */
    }
  }
}
