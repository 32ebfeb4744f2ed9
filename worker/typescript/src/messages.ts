// messages.ts — every muster message as a plain TypeScript object, and its encoding to and
// from one FlatBuffer (PROTOCOL.md §3): WorkerMessage (MSWK), DaemonMessage (MSDM),
// ClientMessage (MSCL), ClientReply (MSCR), EnrollRequest (MSEQ), EnrollResponse (MSER).
// Owns: the only place received bytes become messages. Every decode goes through the checked
// buffer (checked.ts) and reads the whole message eagerly, so a malformed buffer fails here, as
// a MusterError(BadMessage), before anything acts on it.
// Must never: hand out a message from a buffer with a wrong identifier, a NONE or unknown union,
// a missing required field, or any out-of-bounds offset.
//
// uint64 fields are bigint, uint32 fields number. Nested payloads (inputs, parameters, outputs)
// are verified with their message but stay as the bytes of their `Values` buffer (value.ts
// decodes them), so they can be forwarded unchanged.
import * as flatbuffers from 'flatbuffers';

import { finishBuilder, takeBuilder } from './builder-pool';
import { rememberValues } from './decoded-payloads';
import { BufferError, CheckedByteBuffer, MESSAGE_MAX_DEPTH, MESSAGE_MAX_TABLES, openBuffer } from './checked';
import { ErrorCode, MusterError, badMessage } from './errors';
import * as W from './generated';
import { type MusterValue, type Values, createByteVector, createString, decodeValue, decodeValues, encodeValue } from './value';

export const IDENTIFIERS = {
  WorkerMessage: 'MSWK',
  DaemonMessage: 'MSDM',
  ClientMessage: 'MSCL',
  ClientReply: 'MSCR',
  EnrollRequest: 'MSEQ',
  EnrollResponse: 'MSER',
  Values: 'MSVL',
} as const;

// ---- shared tables ---------------------------------------------------------------------

export interface Port {
  name: string;
  /** "any", "null", "bool", "int", "float", "string", "bytes", "list", "map" ("any" if absent). */
  type: string;
  description: string;
  required: boolean;
  /** Absent (undefined): no default. `null` is a Null default. */
  defaultValue?: MusterValue;
}

export interface NodeSpec {
  name: string;
  description: string;
  category: string;
  version: string;
  inputs: Port[];
  outputs: Port[];
  parameters: Port[];
  idempotent: boolean;
  defaultTimeoutMs: bigint;
  /** Every call to the node is durable (docs/DURABILITY.md), whether or not the caller asked (absent: false). */
  durable?: boolean;
}

export interface CallerContext {
  identity: string;
  name: string;
  workspace: string;
  role: string;
  traceId: string;
}

export interface ProgressBody {
  type: 'Progress';
  requestId: bigint;
  step: bigint;
  total: bigint;
  message: string;
}

export interface ResultBody {
  type: 'Result';
  requestId: bigint;
  /** The nested `Values` buffer (empty: no outputs). */
  outputs: Uint8Array;
  /** Daemon -> client, only to a Submit with payload_frames (which this SDK never sends): the
   * outputs are the frame before this one. */
  outputsInFrame: boolean;
  /** Daemon -> client: a durable call's job id (0 or absent: not durable). */
  jobId?: bigint;
}

export interface FailureBody {
  type: 'Failure';
  requestId: bigint;
  code: ErrorCode;
  message: string;
  /** Daemon -> client: a durable call's job id (0 or absent: not durable). */
  jobId?: bigint;
}

/** One partial result of a call (PROTOCOL.md §7.8): worker -> daemon -> caller, in seq order. */
export interface ItemBody {
  type: 'Item';
  requestId: bigint;
  seq: bigint;
  /** The nested `Values` buffer (empty: absent); its length is the item's size for the credit. */
  values: Uint8Array;
}

/** Cumulative flow-control credit of one stream of a call (PROTOCOL.md §7.8): caller -> daemon -> worker. */
export interface CreditBody {
  type: 'Credit';
  requestId: bigint;
  /** 0: the call's items. */
  stream: number;
  /** Items the sender may have sent in total (seq < items). */
  items: bigint;
  /** Bytes of item values (stream 0) or of the chunked stream's data the sender may have sent in total. */
  bytes: bigint;
  /** Chunked streams (PROTOCOL.md §7.9), with `resume`: the bytes of the stream the receiver has. */
  resumeOffset?: bigint;
  /** Chunked streams: chunks were lost; the sender goes back to `resumeOffset` and sends again. */
  resume?: boolean;
}

// ---- worker -> daemon ------------------------------------------------------------------

export interface AttachBody {
  type: 'Attach';
  workerId: string;
  hostname: string;
  sdk: string;
  pid: number;
  session: string;
  capacity: number;
  nodes: NodeSpec[];
  /** Inputs as a frame of their own (PROTOCOL.md §2.1): this SDK never asks for them. */
  payloadFrames: boolean;
  /** No Ack per answer (PROTOCOL.md §7.7): this SDK never asks (it wants every answer Acked). */
  noAnswerAcks: boolean;
  /** Reads Batch on its topic (PROTOCOL.md §2.2): this SDK never asks. */
  batches?: boolean;
  /** Answer only every k-th ping while idle (PROTOCOL.md §7.3): this SDK never asks. */
  idlePongs?: boolean;
  /** Everything on the response connection, no SUB (PROTOCOL.md §7.10): this SDK never asks. */
  direct?: boolean;
}
export interface PongBody {
  type: 'Pong';
  seq: bigint;
  instance: string;
  inFlight: bigint[];
  /** Answers kept unconfirmed (§7.7): always empty from this SDK. */
  answered: bigint[];
}
export interface DetachBody {
  type: 'Detach';
  reason: string;
}
/**
 * Several whole messages of the enclosing root type in one (PROTOCOL.md §2.2): each item is the
 * bytes the message would be sent as alone. This SDK never asks for batches, so it never gets
 * one; it reads and writes them for the golden vectors and for a peer that speaks them.
 */
export interface BatchBody {
  type: 'Batch';
  items: { message: Uint8Array | null }[];
}
/** One piece of a chunked bytes value (PROTOCOL.md §7.9); sent and read by the client and worker (chunks.ts). */
export interface ChunkBody {
  type: 'Chunk';
  requestId: bigint;
  stream: number;
  offset: bigint;
  data: Uint8Array | null;
}
export type WorkerBody =
  | AttachBody
  | PongBody
  | ProgressBody
  | ResultBody
  | FailureBody
  | DetachBody
  | BatchBody
  | ItemBody
  | ChunkBody
  | CreditBody;
export interface WorkerMessage {
  workerId: string;
  body: WorkerBody;
}

// ---- daemon -> worker ------------------------------------------------------------------

export interface PingBody {
  type: 'Ping';
  seq: bigint;
  instance: string;
}
export interface WorkRequestBody {
  type: 'WorkRequest';
  requestId: bigint;
  node: string;
  inputs: Uint8Array;
  parameters: Uint8Array;
  timeoutMs: bigint;
  attempt: number;
  /** Absent when the daemon sent none. */
  caller: CallerContext | null;
  /** Only to a worker that attached with payloadFrames: the inputs are the frame before this one. */
  inputsInFrame: boolean;
  /** The caller reads items (PROTOCOL.md §7.8): the initial credit in items (0: none; emit nothing). */
  streamWindowItems?: number;
  /** The initial credit in bytes of item values. */
  streamWindowBytes?: bigint;
  /** The caller takes chunked outputs (PROTOCOL.md §7.9): each output stream's initial credit (0: none). */
  chunkWindowBytes?: bigint;
}
export interface AbortBody {
  type: 'Abort';
  requestId: bigint;
  code: ErrorCode;
  reason: string;
}
export interface AttachedBody {
  type: 'Attached';
  workerId: string;
  instance: string;
  topic: string;
  broadcastTopic: string;
  pingIntervalMs: bigint;
  liveness: number;
  maxMessageBytes: bigint;
  /** The daemon honours Attach.noAnswerAcks (§7.7). */
  noAnswerAcks: boolean;
  /** The daemon reads Batch (PROTOCOL.md §2.2). */
  batches?: boolean;
  /** k granted for Attach.idlePongs (§7.3); 0: every ping is answered. */
  idlePongEvery?: number;
  /** Attach.direct granted (§7.10): everything comes on the response connection. */
  direct?: boolean;
}
export interface AckBody {
  type: 'Ack';
  late: boolean;
  /** The reply to a Pong: its seq (0 otherwise). */
  pongSeq: bigint;
  /** The reply to a Pong: the ids of its `answered` whose answers never arrived (§7.7). */
  missing: bigint[];
}
export interface RejectedBody {
  type: 'Rejected';
  code: ErrorCode;
  message: string;
  reattach: boolean;
}
export type DaemonBody =
  | PingBody
  | WorkRequestBody
  | AbortBody
  | AttachedBody
  | AckBody
  | RejectedBody
  | BatchBody
  | CreditBody
  | ChunkBody;
export interface DaemonMessage {
  body: DaemonBody;
}

// ---- client <-> daemon -----------------------------------------------------------------

export interface SubmitBody {
  type: 'Submit';
  node: string;
  inputs: Uint8Array;
  parameters: Uint8Array;
  timeoutMs: bigint;
  wantProgress: boolean;
  wantAccepted: boolean;
  traceId: string;
  /** Outputs as a frame of their own (PROTOCOL.md §2.1): this SDK never asks for them. */
  payloadFrames: boolean;
  /** Journal the call: it survives a daemon restart (docs/DURABILITY.md). */
  durable: boolean;
  /** Replies may come in a Batch (PROTOCOL.md §2.2): this SDK never asks. */
  batchReplies?: boolean;
  /** I read the call's items (PROTOCOL.md §7.8): the initial credit in items (0: no items). */
  streamWindowItems?: number;
  /** The initial credit in bytes of item values (0 with items > 0: the daemon's default). */
  streamWindowBytes?: bigint;
  /** I take chunked outputs (PROTOCOL.md §7.9): each output stream's initial credit (0: none). */
  chunkWindowBytes?: bigint;
  /** Bind the call to my next connection if this one breaks (PROTOCOL.md §8.3): Accepted brings its callToken. */
  resumable?: boolean;
}
export interface CancelBody {
  type: 'Cancel';
}
export interface ListNodesBody {
  type: 'ListNodes';
}
export interface ListWorkersBody {
  type: 'ListWorkers';
}
export interface GetStatusBody {
  type: 'GetStatus';
}
/** Per-node statistics and recent failures of the caller's workspace (answered NodeStatsReport). */
export interface GetNodeStatsBody {
  type: 'GetNodeStats';
}
// Admin commands (PROTOCOL.md §8): only from the local owner (ipc://) or an admin identity.
export interface TokenCreateBody {
  type: 'TokenCreate';
  /** "worker", "client", "admin" ("" : the daemon's default, worker). */
  role: string;
  /** 0: 24 hours. */
  ttlMs: bigint;
  uses: number;
  /** "": "default". */
  workspace: string;
  /** A label for listings and the enrolled identity's name. */
  name: string;
}
export interface TokenListBody {
  type: 'TokenList';
}
export interface TokenRevokeBody {
  type: 'TokenRevoke';
  id: string;
}
export interface KeyListBody {
  type: 'KeyList';
}
export interface KeyRevokeBody {
  type: 'KeyRevoke';
  id: string;
}
// Durable calls (docs/DURABILITY.md §6): all scoped to the caller's workspace.
/** One durable call to bind to this connection under `requestId` (a new id of this client). */
export interface JobRef {
  jobId: bigint;
  requestId: bigint;
}
/** Binds open durable calls to this connection after a reconnect; each JobRef is answered under its requestId. */
export interface JobResumeBody {
  type: 'JobResume';
  jobs: JobRef[];
}
/** Bytes of an output stream the caller has, in order (PROTOCOL.md §8.3 C4). */
export interface StreamOffset {
  stream: number;
  offset: bigint;
}
/** One resumable call to bind to this connection under `requestId` (a new id of this client),
 * with what the caller received of it: the Items it took and each chunked output's offset. */
export interface CallRef {
  callToken: bigint;
  requestId: bigint;
  itemsReceived: bigint;
  outputs: StreamOffset[];
}
/** Binds resumable calls to this connection after a reconnect (PROTOCOL.md §8.3); each CallRef
 * is answered under its requestId: Accepted, the call's kept terminal reply, or a Failure. */
export interface CallResumeBody {
  type: 'CallResume';
  calls: CallRef[];
}
/** The caller holds these jobs' terminal replies: the daemon forgets them. Never answered. */
export interface JobAckBody {
  type: 'JobAck';
  jobIds: bigint[];
}
/** Answered JobInfo while the call is open, its Result/Failure (jobId set) once finished. */
export interface JobGetBody {
  type: 'JobGet';
  jobId: bigint;
}
/** Answered JobInfoList: the workspace's durable calls the daemon holds, oldest first: at most
 * `limit` (0: the daemon's maximum, 1000) with a job id above `afterJobId`. */
export interface JobListBody {
  type: 'JobList';
  limit?: number;
  afterJobId?: bigint;
}
/** Cancels a durable call; answered JobInfo (state Finished) or "no such job". */
export interface JobCancelBody {
  type: 'JobCancel';
  jobId: bigint;
}
/** Subscribes to changes of the caller's workspace (PROTOCOL.md §8.2): Events until Cancel. */
export interface WatchBody {
  type: 'Watch';
  nodes: boolean;
  workers: boolean;
  calls: boolean;
}
export type ClientBody =
  | SubmitBody
  | CancelBody
  | ListNodesBody
  | ListWorkersBody
  | GetStatusBody
  | GetNodeStatsBody
  | TokenCreateBody
  | TokenListBody
  | TokenRevokeBody
  | KeyListBody
  | KeyRevokeBody
  | JobResumeBody
  | JobAckBody
  | JobGetBody
  | JobListBody
  | JobCancelBody
  | BatchBody
  | WatchBody
  | CreditBody
  | ChunkBody
  | CallResumeBody;
/** A gateway's assertion of the end user (PROTOCOL.md §8.1); only gateways send it. */
export interface OnBehalfOf {
  user: string;
  workspace: string;
  role: string;
}

export interface ClientMessage {
  requestId: bigint;
  body: ClientBody;
  /** Absent or null: the message is the sender's own. */
  onBehalfOf?: OnBehalfOf | null;
}

export interface AcceptedBody {
  type: 'Accepted';
  queued: boolean;
  /** A durable call's job id (docs/DURABILITY.md); 0: not durable. */
  jobId: bigint;
  /** A resumable call's token, for CallResume after a reconnect (PROTOCOL.md §8.3); 0: not resumable. */
  callToken?: bigint;
}
export interface NodeInfo {
  spec: NodeSpec | null;
  workspace: string;
  workers: number;
  capacity: number;
  inFlight: number;
  queueDepth: number;
}
export interface NodeListBody {
  type: 'NodeList';
  nodes: NodeInfo[];
}
export interface WorkerInfo {
  workerId: string;
  hostname: string;
  sdk: string;
  pid: number;
  state: string;
  capacity: number;
  inFlight: number;
  nodes: string[];
  workspace: string;
  identity: string;
  attachedMs: bigint;
  lastSeenMs: bigint;
  /** Attached with Attach.direct: one connection to the daemon, no SUB (PROTOCOL.md §7.10). */
  direct: boolean;
}
export interface WorkerListBody {
  type: 'WorkerList';
  workers: WorkerInfo[];
}
export interface CodeCount {
  code: ErrorCode;
  count: bigint;
}
export interface StatusReportBody {
  type: 'StatusReport';
  version: string;
  instance: string;
  uptimeMs: bigint;
  workers: number;
  nodes: number;
  queued: number;
  inFlight: number;
  submitted: bigint;
  completed: bigint;
  failed: bigint;
  failures: CodeCount[];
  redispatched: bigint;
  rate1m: number;
  /** Durable calls restored after a restart, waiting for their worker to re-attach. */
  recovering?: number;
}
/** Durations in fixed buckets: counts[i] for upperBoundsUs[i-1] < d <= upperBoundsUs[i]; one count more than bounds. */
export interface LatencyHistogram {
  upperBoundsUs: bigint[];
  counts: bigint[];
  count: bigint;
  sumUs: bigint;
  p50Us: bigint;
  p90Us: bigint;
  p99Us: bigint;
}
export interface NodeStats {
  workspace: string;
  node: string;
  workers: number;
  inFlight: number;
  queueDepth: number;
  completed: bigint;
  failed: bigint;
  failures: CodeCount[];
  rate1m: number;
  queueWait: LatencyHistogram | null;
  service: LatencyHistogram | null;
}
export interface RecentFailure {
  workspace: string;
  node: string;
  code: ErrorCode;
  message: string;
  ageMs: bigint;
}
export interface NodeStatsReportBody {
  type: 'NodeStatsReport';
  nodes: NodeStats[];
  recentFailures: RecentFailure[];
}
/** The answer to TokenCreate: the only time the token's secret exists in clear. */
export interface TokenCreatedBody {
  type: 'TokenCreated';
  token: string;
  id: string;
  /** ISO 8601 UTC. */
  expiresAt: string;
}
/** The answer to the other admin commands: a JSON document (docs/SECURITY.md). */
export interface AdminReportBody {
  type: 'AdminReport';
  json: string;
}
/** Where a durable call is (schema/reply.fbs JobState; docs/DURABILITY.md §2). */
export enum JobState {
  /** Waiting for a worker. */
  Queued = 0,
  /** Dispatched to `workerId`. */
  Running = 1,
  /** Was running when the daemon died; waiting for its worker to re-attach. */
  Recovering = 2,
  /** Its terminal reply is kept until acknowledged or the result TTL passes. */
  Finished = 3,
}
/** One durable call as the daemon holds it (times: wall clock, ms since the Unix epoch). */
export interface JobInfo {
  jobId: bigint;
  state: JobState;
  node: string;
  workspace: string;
  submittedMs: bigint;
  /** Running, Recovering: the worker that has it. */
  workerId: string;
  /** Dispatches so far. */
  attempts: number;
  /** Finished: None for a Result, else the Failure's code. */
  code: ErrorCode;
  finishedMs: bigint;
}
export interface JobInfoBody extends JobInfo {
  type: 'JobInfo';
}
export interface JobInfoListBody {
  type: 'JobInfoList';
  jobs: JobInfo[];
  /** More jobs follow the last one (the daemon lists at most 1000 at a time). */
  more?: boolean;
}
/** What an Event of a Watch says (schema/reply.fbs EventKind; PROTOCOL.md §8.2). */
export enum EventKind {
  Snapshot = 0,
  NodeAdded = 1,
  NodeChanged = 2,
  NodeRemoved = 3,
  WorkerJoined = 4,
  WorkerChanged = 5,
  WorkerLeft = 6,
  CallState = 7,
  /** The watcher fell behind: what it missed was dropped; a Snapshot follows. */
  Overflow = 8,
}
/** One of the watcher's own calls. */
export interface CallInfo {
  requestId: bigint;
  jobId: bigint;
  node: string;
  state: JobState;
  workerId: string;
  attempts: number;
  code: ErrorCode;
  traceId: string;
}
/** One pushed event: a Snapshot (the lists), a delta (one node, worker or call), or an Overflow. */
export interface EventBody {
  type: 'Event';
  seq: bigint;
  kind: EventKind;
  nodes: NodeInfo[];
  workers: WorkerInfo[];
  calls: CallInfo[];
  node: NodeInfo | null;
  worker: WorkerInfo | null;
  call: CallInfo | null;
}
export type ReplyBody =
  | AcceptedBody
  | ProgressBody
  | ResultBody
  | FailureBody
  | NodeListBody
  | WorkerListBody
  | StatusReportBody
  | TokenCreatedBody
  | AdminReportBody
  | NodeStatsReportBody
  | JobInfoBody
  | JobInfoListBody
  | BatchBody
  | EventBody
  | ItemBody
  | ChunkBody
  | CreditBody;
export interface ClientReply {
  requestId: bigint;
  body: ReplyBody;
}

// ---- enrollment ------------------------------------------------------------------------

export interface EnrollRequest {
  token: string;
  publicKey: string;
  role: string;
  name: string;
  hostname: string;
}
export interface EnrollResponse {
  ok: boolean;
  identityId: string;
  role: string;
  workspace: string;
  name: string;
  code: ErrorCode;
  error: string;
}

// =======================================================================================
// encoding
// =======================================================================================

type B = flatbuffers.Builder;

function optString(b: B, s: string | undefined | null): flatbuffers.Offset {
  return s ? createString(b, s) : 0;
}

function u64(v: bigint | number | undefined, what: string): bigint {
  const x = typeof v === 'bigint' ? v : BigInt(v ?? 0);
  if (x < 0n || x > 0xffffffffffffffffn) throw new RangeError(`${what}: ${x} is not a uint64`);
  return x;
}

function u32(v: number | undefined, what: string): number {
  const x = v ?? 0;
  if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new RangeError(`${what}: ${x} is not a uint32`);
  return x;
}

/**
 * A nested payload: absent when empty (an empty vector fails the C++ Verifier), else on an
 * 8-byte boundary (PROTOCOL.md §3 rule 3: receivers refuse a misaligned payload).
 */
function payload(b: B, bytes: Uint8Array | undefined): flatbuffers.Offset {
  return bytes && bytes.length > 0 ? createByteVector(b, bytes, 8) : 0;
}

/** A Batch: each item's message on an 8-byte boundary (PROTOCOL.md §2.2). */
function encodeBatch(b: B, x: BatchBody): flatbuffers.Offset {
  const items = x.items.map((i) => {
    const m = i.message ? createByteVector(b, i.message, 8) : 0;
    W.BatchItem.startBatchItem(b);
    if (m) W.BatchItem.addMessage(b, m);
    return W.BatchItem.endBatchItem(b);
  });
  return W.Batch.createBatch(b, W.Batch.createItemsVector(b, items));
}

function encodeItem(b: B, x: ItemBody): flatbuffers.Offset {
  const values = payload(b, x.values);
  W.Item.startItem(b);
  W.Item.addRequestId(b, u64(x.requestId, 'request_id'));
  W.Item.addSeq(b, u64(x.seq, 'seq'));
  if (values) W.Item.addValues(b, values);
  return W.Item.endItem(b);
}

function encodeCredit(b: B, x: CreditBody): flatbuffers.Offset {
  return W.Credit.createCredit(
    b,
    u64(x.requestId, 'request_id'),
    u32(x.stream, 'stream'),
    u64(x.items, 'items'),
    u64(x.bytes, 'bytes'),
    u64(x.resumeOffset ?? 0n, 'resume_offset'),
    x.resume ?? false,
  );
}

/** A Chunk: its data on an 8-byte boundary, as the C++ and Python writers place it. */
function encodeChunk(b: B, x: ChunkBody): flatbuffers.Offset {
  const data = x.data ? createByteVector(b, x.data, 8) : 0;
  W.Chunk.startChunk(b);
  W.Chunk.addRequestId(b, u64(x.requestId, 'request_id'));
  W.Chunk.addStream(b, u32(x.stream, 'stream'));
  W.Chunk.addOffset(b, u64(x.offset, 'offset'));
  if (data) W.Chunk.addData(b, data);
  return W.Chunk.endChunk(b);
}

function decodeItem(x: W.Item): ItemBody {
  return { type: 'Item', requestId: x.requestId(), seq: x.seq(), values: payloadOf(x.valuesArray(), 'Item.values') };
}

function decodeCredit(x: W.Credit): CreditBody {
  return {
    type: 'Credit',
    requestId: x.requestId(),
    stream: x.stream(),
    items: x.items(),
    bytes: x.bytes(),
    resumeOffset: x.resumeOffset(),
    resume: x.resume(),
  };
}

function decodeChunk(x: W.Chunk): ChunkBody {
  const data = x.dataArray();
  return { type: 'Chunk', requestId: x.requestId(), stream: x.stream(), offset: x.offset(), data: data ? data.slice() : null };
}

function decodeBatch(bb: CheckedByteBuffer, x: W.Batch): BatchBody {
  const items: { message: Uint8Array | null }[] = [];
  for (let i = 0, n = x.itemsLength(); i < n; i++) {
    const item = x.items(i)!;
    bb.enterTable();
    const m = item.messageArray();
    bb.leaveTable();
    items.push({ message: m ? m.slice() : null });
  }
  return { type: 'Batch', items };
}

function encodePort(b: B, p: Port): flatbuffers.Offset {
  const name = createString(b, p.name);
  const type = optString(b, p.type);
  const desc = optString(b, p.description);
  const def = p.defaultValue !== undefined ? encodeValue(b, p.defaultValue) : 0;
  W.Port.startPort(b);
  W.Port.addName(b, name);
  if (type) W.Port.addType(b, type);
  if (desc) W.Port.addDescription(b, desc);
  W.Port.addRequired(b, !!p.required);
  if (def) W.Port.addDefaultValue(b, def);
  return W.Port.endPort(b);
}

function encodePorts(b: B, ports: Port[] | undefined): flatbuffers.Offset {
  const offsets = (ports ?? []).map((p) => encodePort(b, p));
  b.startVector(4, offsets.length, 4);
  for (let i = offsets.length - 1; i >= 0; i--) b.addOffset(offsets[i]!);
  return b.endVector();
}

export function encodeNodeSpec(b: B, s: NodeSpec): flatbuffers.Offset {
  const name = createString(b, s.name);
  const desc = optString(b, s.description);
  const cat = optString(b, s.category);
  const ver = optString(b, s.version);
  const inputs = encodePorts(b, s.inputs);
  const outputs = encodePorts(b, s.outputs);
  const params = encodePorts(b, s.parameters);
  W.NodeSpec.startNodeSpec(b);
  W.NodeSpec.addName(b, name);
  if (desc) W.NodeSpec.addDescription(b, desc);
  if (cat) W.NodeSpec.addCategory(b, cat);
  if (ver) W.NodeSpec.addVersion(b, ver);
  W.NodeSpec.addInputs(b, inputs);
  W.NodeSpec.addOutputs(b, outputs);
  W.NodeSpec.addParameters(b, params);
  W.NodeSpec.addIdempotent(b, !!s.idempotent);
  W.NodeSpec.addDefaultTimeoutMs(b, u64(s.defaultTimeoutMs, 'default_timeout_ms'));
  W.NodeSpec.addDurable(b, !!s.durable);
  return W.NodeSpec.endNodeSpec(b);
}

function encodeCaller(b: B, c: CallerContext): flatbuffers.Offset {
  const identity = optString(b, c.identity);
  const name = optString(b, c.name);
  const workspace = optString(b, c.workspace);
  const role = optString(b, c.role);
  const trace = optString(b, c.traceId);
  return W.CallerContext.createCallerContext(b, identity, name, workspace, role, trace);
}

function encodeProgress(b: B, p: ProgressBody): flatbuffers.Offset {
  const msg = optString(b, p.message);
  return W.Progress.createProgress(
    b,
    u64(p.requestId, 'request_id'),
    u64(p.step, 'step'),
    u64(p.total, 'total'),
    msg,
  );
}

function encodeResult(b: B, r: ResultBody): flatbuffers.Offset {
  const outputs = payload(b, r.outputs);
  W.Result.startResult(b);
  W.Result.addRequestId(b, u64(r.requestId, 'request_id'));
  if (outputs) W.Result.addOutputs(b, outputs);
  W.Result.addOutputsInFrame(b, !!r.outputsInFrame);
  W.Result.addJobId(b, u64(r.jobId, 'job_id'));
  return W.Result.endResult(b);
}

function encodeFailure(b: B, f: FailureBody): flatbuffers.Offset {
  const msg = optString(b, f.message);
  return W.Failure.createFailure(b, u64(f.requestId, 'request_id'), f.code, msg, u64(f.jobId, 'job_id'));
}

function encodeNodeInfo(b: B, n: NodeInfo): flatbuffers.Offset {
  const spec = n.spec ? encodeNodeSpec(b, n.spec) : 0;
  const ws = optString(b, n.workspace);
  return W.NodeInfo.createNodeInfo(b, spec, ws, u32(n.workers, 'workers'), u32(n.capacity, 'capacity'),
    u32(n.inFlight, 'in_flight'), u32(n.queueDepth, 'queue_depth'));
}

function encodeWorkerInfo(b: B, w: WorkerInfo): flatbuffers.Offset {
  const id = optString(b, w.workerId);
  const host = optString(b, w.hostname);
  const sdk = optString(b, w.sdk);
  const state = optString(b, w.state);
  const nodes = W.WorkerInfo.createNodesVector(b, w.nodes.map((n) => createString(b, n)));
  const ws = optString(b, w.workspace);
  const identity = optString(b, w.identity);
  return W.WorkerInfo.createWorkerInfo(b, id, host, sdk, u32(w.pid, 'pid'), state, u32(w.capacity, 'capacity'),
    u32(w.inFlight, 'in_flight'), nodes, ws, identity, u64(w.attachedMs, 'attached_ms'), u64(w.lastSeenMs, 'last_seen_ms'), w.direct);
}

function encodeCallInfo(b: B, c: CallInfo): flatbuffers.Offset {
  const node = optString(b, c.node);
  const worker = optString(b, c.workerId);
  const trace = optString(b, c.traceId);
  return W.CallInfo.createCallInfo(b, u64(c.requestId, 'request_id'), u64(c.jobId, 'job_id'), node,
    c.state as number as W.JobState, worker, u32(c.attempts, 'attempts'), c.code ?? ErrorCode.None, trace);
}

function encodeEvent(b: B, e: EventBody): flatbuffers.Offset {
  const nodes = e.nodes.length ? W.Event.createNodesVector(b, e.nodes.map((n) => encodeNodeInfo(b, n))) : 0;
  const workers = e.workers.length ? W.Event.createWorkersVector(b, e.workers.map((w) => encodeWorkerInfo(b, w))) : 0;
  const calls = e.calls.length ? W.Event.createCallsVector(b, e.calls.map((c) => encodeCallInfo(b, c))) : 0;
  const node = e.node ? encodeNodeInfo(b, e.node) : 0;
  const worker = e.worker ? encodeWorkerInfo(b, e.worker) : 0;
  const call = e.call ? encodeCallInfo(b, e.call) : 0;
  W.Event.startEvent(b);
  W.Event.addSeq(b, u64(e.seq, 'seq'));
  W.Event.addKind(b, e.kind as number as W.EventKind);
  if (nodes) W.Event.addNodes(b, nodes);
  if (workers) W.Event.addWorkers(b, workers);
  if (calls) W.Event.addCalls(b, calls);
  if (node) W.Event.addNode(b, node);
  if (worker) W.Event.addWorker(b, worker);
  if (call) W.Event.addCall(b, call);
  return W.Event.endEvent(b);
}

function encodeJobInfo(b: B, j: JobInfo): flatbuffers.Offset {
  const node = optString(b, j.node);
  const ws = optString(b, j.workspace);
  const worker = optString(b, j.workerId);
  return W.JobInfo.createJobInfo(
    b,
    u64(j.jobId, 'job_id'),
    j.state as number as W.JobState,
    node,
    ws,
    u64(j.submittedMs, 'submitted_ms'),
    worker,
    u32(j.attempts, 'attempts'),
    j.code ?? ErrorCode.None,
    u64(j.finishedMs, 'finished_ms'),
  );
}

function finish(b: B, root: flatbuffers.Offset, identifier: string): Uint8Array {
  return finishBuilder(b, root, identifier);
}

/** A builder that need not grow for a Chunk's data (growing copies the whole buffer each time). */
function builderFor(body: { type: string }): flatbuffers.Builder {
  const data = body.type === 'Chunk' ? (body as ChunkBody).data : null;
  return takeBuilder(data ? data.length + 512 : 512);
}

export function encodeWorkerMessage(m: WorkerMessage): Uint8Array {
  const b = builderFor(m.body);
  const workerId = optString(b, m.workerId);
  let type: W.WorkerBody;
  let body: flatbuffers.Offset;
  const x = m.body;
  switch (x.type) {
    case 'Attach': {
      const id = createString(b, x.workerId);
      const host = optString(b, x.hostname);
      const sdk = optString(b, x.sdk);
      const session = optString(b, x.session);
      const nodes = x.nodes.map((n) => encodeNodeSpec(b, n));
      const nodesVec = W.Attach.createNodesVector(b, nodes);
      W.Attach.startAttach(b);
      W.Attach.addWorkerId(b, id);
      if (host) W.Attach.addHostname(b, host);
      if (sdk) W.Attach.addSdk(b, sdk);
      W.Attach.addPid(b, u32(x.pid, 'pid'));
      if (session) W.Attach.addSession(b, session);
      W.Attach.addCapacity(b, u32(x.capacity, 'capacity'));
      W.Attach.addNodes(b, nodesVec);
      W.Attach.addPayloadFrames(b, !!x.payloadFrames);
      W.Attach.addNoAnswerAcks(b, !!x.noAnswerAcks);
      W.Attach.addBatches(b, !!x.batches);
      W.Attach.addIdlePongs(b, !!x.idlePongs);
      W.Attach.addDirect(b, !!x.direct);
      body = W.Attach.endAttach(b);
      type = W.WorkerBody.Attach;
      break;
    }
    case 'Pong': {
      const instance = optString(b, x.instance);
      const inFlight = W.Pong.createInFlightVector(
        b,
        x.inFlight.map((id) => u64(id, 'in_flight')),
      );
      const answered = x.answered.length
        ? W.Pong.createAnsweredVector(
            b,
            x.answered.map((id) => u64(id, 'answered')),
          )
        : 0;
      body = W.Pong.createPong(b, u64(x.seq, 'seq'), instance, inFlight, answered);
      type = W.WorkerBody.Pong;
      break;
    }
    case 'Progress':
      body = encodeProgress(b, x);
      type = W.WorkerBody.Progress;
      break;
    case 'Result':
      body = encodeResult(b, x);
      type = W.WorkerBody.Result;
      break;
    case 'Failure':
      body = encodeFailure(b, x);
      type = W.WorkerBody.Failure;
      break;
    case 'Detach': {
      const reason = optString(b, x.reason);
      body = W.Detach.createDetach(b, reason);
      type = W.WorkerBody.Detach;
      break;
    }
    case 'Batch':
      body = encodeBatch(b, x);
      type = W.WorkerBody.Batch;
      break;
    case 'Item':
      body = encodeItem(b, x);
      type = W.WorkerBody.Item;
      break;
    case 'Chunk':
      body = encodeChunk(b, x);
      type = W.WorkerBody.Chunk;
      break;
    case 'Credit':
      body = encodeCredit(b, x);
      type = W.WorkerBody.Credit;
      break;
    default:
      throw new TypeError(`unknown worker message ${(x as { type: string }).type}`);
  }
  const root = W.WorkerMessage.createWorkerMessage(b, workerId, type, body);
  return finish(b, root, IDENTIFIERS.WorkerMessage);
}

export function encodeDaemonMessage(m: DaemonMessage): Uint8Array {
  const b = builderFor(m.body);
  let type: W.DaemonBody;
  let body: flatbuffers.Offset;
  const x = m.body;
  switch (x.type) {
    case 'Ping': {
      const instance = optString(b, x.instance);
      body = W.Ping.createPing(b, u64(x.seq, 'seq'), instance);
      type = W.DaemonBody.Ping;
      break;
    }
    case 'WorkRequest': {
      const node = createString(b, x.node);
      const inputs = payload(b, x.inputs);
      const params = payload(b, x.parameters);
      const caller = x.caller ? encodeCaller(b, x.caller) : 0;
      W.WorkRequest.startWorkRequest(b);
      W.WorkRequest.addRequestId(b, u64(x.requestId, 'request_id'));
      W.WorkRequest.addNode(b, node);
      if (inputs) W.WorkRequest.addInputs(b, inputs);
      if (params) W.WorkRequest.addParameters(b, params);
      W.WorkRequest.addTimeoutMs(b, u64(x.timeoutMs, 'timeout_ms'));
      W.WorkRequest.addAttempt(b, u32(x.attempt ?? 1, 'attempt'));
      if (caller) W.WorkRequest.addCaller(b, caller);
      W.WorkRequest.addInputsInFrame(b, !!x.inputsInFrame);
      W.WorkRequest.addStreamWindowItems(b, u32(x.streamWindowItems ?? 0, 'stream_window_items'));
      W.WorkRequest.addStreamWindowBytes(b, u64(x.streamWindowBytes ?? 0n, 'stream_window_bytes'));
      W.WorkRequest.addChunkWindowBytes(b, u64(x.chunkWindowBytes ?? 0n, 'chunk_window_bytes'));
      body = W.WorkRequest.endWorkRequest(b);
      type = W.DaemonBody.WorkRequest;
      break;
    }
    case 'Abort': {
      const reason = optString(b, x.reason);
      body = W.Abort.createAbort(b, u64(x.requestId, 'request_id'), x.code, reason);
      type = W.DaemonBody.Abort;
      break;
    }
    case 'Attached': {
      const id = optString(b, x.workerId);
      const instance = optString(b, x.instance);
      const topic = optString(b, x.topic);
      const broadcast = optString(b, x.broadcastTopic);
      body = W.Attached.createAttached(
        b,
        id,
        instance,
        topic,
        broadcast,
        u64(x.pingIntervalMs, 'ping_interval_ms'),
        u32(x.liveness, 'liveness'),
        u64(x.maxMessageBytes, 'max_message_bytes'),
        !!x.noAnswerAcks,
        !!x.batches,
        u32(x.idlePongEvery ?? 0, 'idle_pong_every'),
        !!x.direct,
      );
      type = W.DaemonBody.Attached;
      break;
    }
    case 'Ack':
      body = W.Ack.createAck(
        b,
        !!x.late,
        u64(x.pongSeq, 'pong_seq'),
        x.missing.length ? W.Ack.createMissingVector(b, x.missing.map((id) => u64(id, 'missing'))) : 0,
      );
      type = W.DaemonBody.Ack;
      break;
    case 'Rejected': {
      const msg = optString(b, x.message);
      body = W.Rejected.createRejected(b, x.code, msg, !!x.reattach);
      type = W.DaemonBody.Rejected;
      break;
    }
    case 'Batch':
      body = encodeBatch(b, x);
      type = W.DaemonBody.Batch;
      break;
    case 'Credit':
      body = encodeCredit(b, x);
      type = W.DaemonBody.Credit;
      break;
    case 'Chunk':
      body = encodeChunk(b, x);
      type = W.DaemonBody.Chunk;
      break;
    default:
      throw new TypeError(`unknown daemon message ${(x as { type: string }).type}`);
  }
  const root = W.DaemonMessage.createDaemonMessage(b, type, body);
  return finish(b, root, IDENTIFIERS.DaemonMessage);
}

export function encodeClientMessage(m: ClientMessage): Uint8Array {
  const b = builderFor(m.body);
  let type: W.ClientBody;
  let body: flatbuffers.Offset;
  const x = m.body;
  switch (x.type) {
    case 'Submit': {
      const node = createString(b, x.node);
      const inputs = payload(b, x.inputs);
      const params = payload(b, x.parameters);
      const trace = optString(b, x.traceId);
      W.Submit.startSubmit(b);
      W.Submit.addNode(b, node);
      if (inputs) W.Submit.addInputs(b, inputs);
      if (params) W.Submit.addParameters(b, params);
      W.Submit.addTimeoutMs(b, u64(x.timeoutMs, 'timeout_ms'));
      W.Submit.addWantProgress(b, !!x.wantProgress);
      W.Submit.addWantAccepted(b, !!x.wantAccepted);
      if (trace) W.Submit.addTraceId(b, trace);
      W.Submit.addPayloadFrames(b, !!x.payloadFrames);
      W.Submit.addDurable(b, !!x.durable);
      W.Submit.addBatchReplies(b, !!x.batchReplies);
      W.Submit.addStreamWindowItems(b, u32(x.streamWindowItems ?? 0, 'stream_window_items'));
      W.Submit.addStreamWindowBytes(b, u64(x.streamWindowBytes ?? 0n, 'stream_window_bytes'));
      W.Submit.addChunkWindowBytes(b, u64(x.chunkWindowBytes ?? 0n, 'chunk_window_bytes'));
      W.Submit.addResumable(b, !!x.resumable);
      body = W.Submit.endSubmit(b);
      type = W.ClientBody.Submit;
      break;
    }
    case 'Cancel':
      W.Cancel.startCancel(b);
      body = W.Cancel.endCancel(b);
      type = W.ClientBody.Cancel;
      break;
    case 'ListNodes':
      W.ListNodes.startListNodes(b);
      body = W.ListNodes.endListNodes(b);
      type = W.ClientBody.ListNodes;
      break;
    case 'ListWorkers':
      W.ListWorkers.startListWorkers(b);
      body = W.ListWorkers.endListWorkers(b);
      type = W.ClientBody.ListWorkers;
      break;
    case 'GetStatus':
      W.GetStatus.startGetStatus(b);
      body = W.GetStatus.endGetStatus(b);
      type = W.ClientBody.GetStatus;
      break;
    case 'GetNodeStats':
      W.GetNodeStats.startGetNodeStats(b);
      body = W.GetNodeStats.endGetNodeStats(b);
      type = W.ClientBody.GetNodeStats;
      break;
    case 'TokenCreate': {
      const role = optString(b, x.role);
      const ws = optString(b, x.workspace);
      const name = optString(b, x.name);
      W.TokenCreate.startTokenCreate(b);
      if (role) W.TokenCreate.addRole(b, role);
      W.TokenCreate.addTtlMs(b, u64(x.ttlMs, 'ttl_ms'));
      W.TokenCreate.addUses(b, u32(x.uses ?? 1, 'uses'));
      if (ws) W.TokenCreate.addWorkspace(b, ws);
      if (name) W.TokenCreate.addName(b, name);
      body = W.TokenCreate.endTokenCreate(b);
      type = W.ClientBody.TokenCreate;
      break;
    }
    case 'TokenList':
      W.TokenList.startTokenList(b);
      body = W.TokenList.endTokenList(b);
      type = W.ClientBody.TokenList;
      break;
    case 'TokenRevoke':
      body = W.TokenRevoke.createTokenRevoke(b, createString(b, x.id));
      type = W.ClientBody.TokenRevoke;
      break;
    case 'KeyList':
      W.KeyList.startKeyList(b);
      body = W.KeyList.endKeyList(b);
      type = W.ClientBody.KeyList;
      break;
    case 'KeyRevoke':
      body = W.KeyRevoke.createKeyRevoke(b, createString(b, x.id));
      type = W.ClientBody.KeyRevoke;
      break;
    case 'JobResume': {
      const refs = x.jobs.map((r) => W.JobRef.createJobRef(b, u64(r.jobId, 'job_id'), u64(r.requestId, 'request_id')));
      body = W.JobResume.createJobResume(b, W.JobResume.createJobsVector(b, refs));
      type = W.ClientBody.JobResume;
      break;
    }
    case 'JobAck':
      body = W.JobAck.createJobAck(b, W.JobAck.createJobIdsVector(b, x.jobIds.map((id) => u64(id, 'job_ids'))));
      type = W.ClientBody.JobAck;
      break;
    case 'JobGet':
      body = W.JobGet.createJobGet(b, u64(x.jobId, 'job_id'));
      type = W.ClientBody.JobGet;
      break;
    case 'JobList':
      body = W.JobList.createJobList(b, u32(x.limit ?? 0, 'limit'), u64(x.afterJobId ?? 0n, 'after_job_id'));
      type = W.ClientBody.JobList;
      break;
    case 'JobCancel':
      body = W.JobCancel.createJobCancel(b, u64(x.jobId, 'job_id'));
      type = W.ClientBody.JobCancel;
      break;
    case 'Watch':
      body = W.Watch.createWatch(b, x.nodes, x.workers, x.calls);
      type = W.ClientBody.Watch;
      break;
    case 'Batch':
      body = encodeBatch(b, x);
      type = W.ClientBody.Batch;
      break;
    case 'Credit':
      body = encodeCredit(b, x);
      type = W.ClientBody.Credit;
      break;
    case 'Chunk':
      body = encodeChunk(b, x);
      type = W.ClientBody.Chunk;
      break;
    case 'CallResume': {
      const refs = x.calls.map((r) => {
        const outputs = r.outputs.map((o) => W.StreamOffset.createStreamOffset(b, u32(o.stream, 'stream'), u64(o.offset, 'offset')));
        const vec = W.CallRef.createOutputsVector(b, outputs);
        return W.CallRef.createCallRef(b, u64(r.callToken, 'call_token'), u64(r.requestId, 'request_id'), u64(r.itemsReceived, 'items_received'), vec);
      });
      body = W.CallResume.createCallResume(b, W.CallResume.createCallsVector(b, refs));
      type = W.ClientBody.CallResume;
      break;
    }
    default:
      throw new TypeError(`unknown client message ${(x as { type: string }).type}`);
  }
  let asserted = 0;
  if (m.onBehalfOf) {
    const user = createString(b, m.onBehalfOf.user);
    const workspace = createString(b, m.onBehalfOf.workspace);
    const role = m.onBehalfOf.role ? createString(b, m.onBehalfOf.role) : 0;
    W.OnBehalfOf.startOnBehalfOf(b);
    W.OnBehalfOf.addUser(b, user);
    W.OnBehalfOf.addWorkspace(b, workspace);
    if (role) W.OnBehalfOf.addRole(b, role);
    asserted = W.OnBehalfOf.endOnBehalfOf(b);
  }
  // flatc writes no createClientMessage for a table with a table field: the adds by hand.
  W.ClientMessage.startClientMessage(b);
  W.ClientMessage.addRequestId(b, u64(m.requestId, 'request_id'));
  W.ClientMessage.addBodyType(b, type);
  W.ClientMessage.addBody(b, body);
  if (asserted) W.ClientMessage.addOnBehalfOf(b, asserted);
  const root = W.ClientMessage.endClientMessage(b);
  return finish(b, root, IDENTIFIERS.ClientMessage);
}

export function encodeClientReply(m: ClientReply): Uint8Array {
  const b = builderFor(m.body);
  let type: W.ReplyBody;
  let body: flatbuffers.Offset;
  const x = m.body;
  switch (x.type) {
    case 'Accepted':
      body = W.Accepted.createAccepted(b, !!x.queued, u64(x.jobId, 'job_id'), u64(x.callToken ?? 0n, 'call_token'));
      type = W.ReplyBody.Accepted;
      break;
    case 'Progress':
      body = encodeProgress(b, x);
      type = W.ReplyBody.Progress;
      break;
    case 'Result':
      body = encodeResult(b, x);
      type = W.ReplyBody.Result;
      break;
    case 'Failure':
      body = encodeFailure(b, x);
      type = W.ReplyBody.Failure;
      break;
    case 'NodeList': {
      const nodes = x.nodes.map((n) => {
        const spec = n.spec ? encodeNodeSpec(b, n.spec) : 0;
        const ws = optString(b, n.workspace);
        return W.NodeInfo.createNodeInfo(
          b,
          spec,
          ws,
          u32(n.workers, 'workers'),
          u32(n.capacity, 'capacity'),
          u32(n.inFlight, 'in_flight'),
          u32(n.queueDepth, 'queue_depth'),
        );
      });
      body = W.NodeList.createNodeList(b, W.NodeList.createNodesVector(b, nodes));
      type = W.ReplyBody.NodeList;
      break;
    }
    case 'WorkerList': {
      const workers = x.workers.map((w) => encodeWorkerInfo(b, w));
      body = W.WorkerList.createWorkerList(b, W.WorkerList.createWorkersVector(b, workers));
      type = W.ReplyBody.WorkerList;
      break;
    }
    case 'StatusReport': {
      const version = optString(b, x.version);
      const instance = optString(b, x.instance);
      const failures = W.StatusReport.createFailuresVector(
        b,
        x.failures.map((f) => W.CodeCount.createCodeCount(b, f.code, u64(f.count, 'count'))),
      );
      body = W.StatusReport.createStatusReport(
        b,
        version,
        instance,
        u64(x.uptimeMs, 'uptime_ms'),
        u32(x.workers, 'workers'),
        u32(x.nodes, 'nodes'),
        u32(x.queued, 'queued'),
        u32(x.inFlight, 'in_flight'),
        u64(x.submitted, 'submitted'),
        u64(x.completed, 'completed'),
        u64(x.failed, 'failed'),
        failures,
        u64(x.redispatched, 'redispatched'),
        x.rate1m ?? 0,
        u32(x.recovering ?? 0, 'recovering'),
      );
      type = W.ReplyBody.StatusReport;
      break;
    }
    case 'TokenCreated': {
      const token = optString(b, x.token);
      const id = optString(b, x.id);
      const expires = optString(b, x.expiresAt);
      body = W.TokenCreated.createTokenCreated(b, token, id, expires);
      type = W.ReplyBody.TokenCreated;
      break;
    }
    case 'AdminReport':
      body = W.AdminReport.createAdminReport(b, optString(b, x.json));
      type = W.ReplyBody.AdminReport;
      break;
    case 'NodeStatsReport': {
      const histogram = (h: LatencyHistogram | null): flatbuffers.Offset => {
        if (!h) return 0;
        const bounds = W.LatencyHistogram.createUpperBoundsUsVector(b, h.upperBoundsUs.map((v) => u64(v, 'upper_bounds_us')));
        const counts = W.LatencyHistogram.createCountsVector(b, h.counts.map((v) => u64(v, 'counts')));
        return W.LatencyHistogram.createLatencyHistogram(
          b, bounds, counts, u64(h.count, 'count'), u64(h.sumUs, 'sum_us'),
          u64(h.p50Us, 'p50_us'), u64(h.p90Us, 'p90_us'), u64(h.p99Us, 'p99_us'),
        );
      };
      const nodes = x.nodes.map((n) => {
        const ws = optString(b, n.workspace);
        const node = optString(b, n.node);
        const failures = W.NodeStats.createFailuresVector(
          b,
          n.failures.map((f) => W.CodeCount.createCodeCount(b, f.code, u64(f.count, 'count'))),
        );
        const wait = histogram(n.queueWait);
        const service = histogram(n.service);
        // flatc writes no createNodeStats for a table with table-typed fields: build it field by field.
        W.NodeStats.startNodeStats(b);
        W.NodeStats.addWorkspace(b, ws);
        W.NodeStats.addNode(b, node);
        W.NodeStats.addWorkers(b, u32(n.workers, 'workers'));
        W.NodeStats.addInFlight(b, u32(n.inFlight, 'in_flight'));
        W.NodeStats.addQueueDepth(b, u32(n.queueDepth, 'queue_depth'));
        W.NodeStats.addCompleted(b, u64(n.completed, 'completed'));
        W.NodeStats.addFailed(b, u64(n.failed, 'failed'));
        W.NodeStats.addFailures(b, failures);
        W.NodeStats.addRate1m(b, n.rate1m ?? 0);
        if (wait) W.NodeStats.addQueueWait(b, wait);
        if (service) W.NodeStats.addService(b, service);
        return W.NodeStats.endNodeStats(b);
      });
      const failures = x.recentFailures.map((f) =>
        W.RecentFailure.createRecentFailure(b, optString(b, f.workspace), optString(b, f.node), f.code, optString(b, f.message), u64(f.ageMs, 'age_ms')),
      );
      body = W.NodeStatsReport.createNodeStatsReport(
        b,
        W.NodeStatsReport.createNodesVector(b, nodes),
        W.NodeStatsReport.createRecentFailuresVector(b, failures),
      );
      type = W.ReplyBody.NodeStatsReport;
      break;
    }
    case 'JobInfo':
      body = encodeJobInfo(b, x);
      type = W.ReplyBody.JobInfo;
      break;
    case 'JobInfoList':
      body = W.JobInfoList.createJobInfoList(
        b,
        W.JobInfoList.createJobsVector(b, x.jobs.map((j) => encodeJobInfo(b, j))),
        x.more ?? false,
      );
      type = W.ReplyBody.JobInfoList;
      break;
    case 'Batch':
      body = encodeBatch(b, x);
      type = W.ReplyBody.Batch;
      break;
    case 'Event':
      body = encodeEvent(b, x);
      type = W.ReplyBody.Event;
      break;
    case 'Item':
      body = encodeItem(b, x);
      type = W.ReplyBody.Item;
      break;
    case 'Chunk':
      body = encodeChunk(b, x);
      type = W.ReplyBody.Chunk;
      break;
    case 'Credit':
      body = encodeCredit(b, x);
      type = W.ReplyBody.Credit;
      break;
    default:
      throw new TypeError(`unknown client reply ${(x as { type: string }).type}`);
  }
  const root = W.ClientReply.createClientReply(b, u64(m.requestId, 'request_id'), type, body);
  return finish(b, root, IDENTIFIERS.ClientReply);
}

export function encodeEnrollRequest(m: EnrollRequest): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const token = createString(b, m.token);
  const key = createString(b, m.publicKey);
  const role = optString(b, m.role);
  const name = optString(b, m.name);
  const host = optString(b, m.hostname);
  const root = W.EnrollRequest.createEnrollRequest(b, token, key, role, name, host);
  return finish(b, root, IDENTIFIERS.EnrollRequest);
}

export function encodeEnrollResponse(m: EnrollResponse): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const id = optString(b, m.identityId);
  const role = optString(b, m.role);
  const ws = optString(b, m.workspace);
  const name = optString(b, m.name);
  const err = optString(b, m.error);
  const root = W.EnrollResponse.createEnrollResponse(b, !!m.ok, id, role, ws, name, m.code ?? ErrorCode.None, err);
  return finish(b, root, IDENTIFIERS.EnrollResponse);
}

// =======================================================================================
// decoding
// =======================================================================================

function s(x: string | null): string {
  return x ?? '';
}

function required(x: string | null, what: string): string {
  if (x === null) throw new BufferError(`required field ${what} is missing`);
  return x;
}

/** Enters a table for the depth/count limits; a missing table where one is needed is an error. */
function table<T, R>(bb: CheckedByteBuffer, t: T | null, what: string, read: (t: T) => R): R {
  if (t === null) throw new BufferError(`${what} is missing`);
  bb.enterTable();
  try {
    return read(t);
  } finally {
    bb.leaveTable();
  }
}

/**
 * A nested `Values` payload, verified as part of its message like the C++ Verifier does: absent
 * is "no values" (an empty array here); present, it must be a valid Values buffer, so a present
 * but empty vector is refused.
 */
function payloadOf(a: Uint8Array | null, what: string): Uint8Array {
  if (a === null) return new Uint8Array(0);
  if (a.length === 0) throw new BufferError(`${what} is a present but empty nested buffer`);
  let values: Values;
  try {
    values = decodeValues(a);
  } catch (e) {
    throw new BufferError(`${what}: ${(e as Error).message}`);
  }
  const copy = a.slice();
  rememberValues(copy, values); // decoded once: the worker reads them with takeValues
  return copy;
}

function decodePort(bb: CheckedByteBuffer, p: W.Port): Port {
  bb.enterTable();
  try {
    const port: Port = {
      name: required(p.name(), 'Port.name'),
      type: p.type() ?? 'any',
      description: s(p.description()),
      required: p.required(),
    };
    const def = p.defaultValue();
    if (def !== null) port.defaultValue = decodeValue(def, bb);
    return port;
  } finally {
    bb.leaveTable();
  }
}

function decodePorts(bb: CheckedByteBuffer, n: number, get: (i: number) => W.Port | null): Port[] {
  const out: Port[] = [];
  for (let i = 0; i < n; i++) out.push(decodePort(bb, get(i)!));
  return out;
}

export function decodeNodeSpec(bb: CheckedByteBuffer, n: W.NodeSpec): NodeSpec {
  bb.enterTable();
  try {
    return {
      name: required(n.name(), 'NodeSpec.name'),
      description: s(n.description()),
      category: s(n.category()),
      version: s(n.version()),
      inputs: decodePorts(bb, n.inputsLength(), (i) => n.inputs(i)),
      outputs: decodePorts(bb, n.outputsLength(), (i) => n.outputs(i)),
      parameters: decodePorts(bb, n.parametersLength(), (i) => n.parameters(i)),
      idempotent: n.idempotent(),
      defaultTimeoutMs: n.defaultTimeoutMs(),
      durable: n.durable(),
    };
  } finally {
    bb.leaveTable();
  }
}

function decodeCaller(bb: CheckedByteBuffer, c: W.CallerContext | null): CallerContext | null {
  if (c === null) return null;
  bb.enterTable();
  try {
    return {
      identity: s(c.identity()),
      name: s(c.name()),
      workspace: s(c.workspace()),
      role: s(c.role()),
      traceId: s(c.traceId()),
    };
  } finally {
    bb.leaveTable();
  }
}

function decodeProgress(p: W.Progress): ProgressBody {
  return { type: 'Progress', requestId: p.requestId(), step: p.step(), total: p.total(), message: s(p.message()) };
}
function decodeResult(r: W.Result): ResultBody {
  return {
    type: 'Result',
    requestId: r.requestId(),
    outputs: payloadOf(r.outputsArray(), 'Result.outputs'),
    outputsInFrame: r.outputsInFrame(),
    jobId: r.jobId(),
  };
}
function decodeFailure(f: W.Failure): FailureBody {
  return {
    type: 'Failure',
    requestId: f.requestId(),
    code: f.code() as number as ErrorCode,
    message: s(f.message()),
    jobId: f.jobId(),
  };
}
function decodeNodeInfo(bb: CheckedByteBuffer, x: W.NodeInfo): NodeInfo {
  const spec = x.spec();
  return {
    spec: spec === null ? null : decodeNodeSpec(bb, spec),
    workspace: s(x.workspace()),
    workers: x.workers(),
    capacity: x.capacity(),
    inFlight: x.inFlight(),
    queueDepth: x.queueDepth(),
  };
}

function decodeWorkerInfo(w: W.WorkerInfo): WorkerInfo {
  const nodes: string[] = [];
  for (let j = 0, k = w.nodesLength(); j < k; j++) nodes.push(required(w.nodes(j), 'WorkerInfo.nodes[]'));
  return {
    workerId: s(w.workerId()),
    hostname: s(w.hostname()),
    sdk: s(w.sdk()),
    pid: w.pid(),
    state: s(w.state()),
    capacity: w.capacity(),
    inFlight: w.inFlight(),
    nodes,
    workspace: s(w.workspace()),
    identity: s(w.identity()),
    attachedMs: w.attachedMs(),
    lastSeenMs: w.lastSeenMs(),
    direct: w.direct(),
  };
}

function decodeCallInfo(c: W.CallInfo): CallInfo {
  return {
    requestId: c.requestId(),
    jobId: c.jobId(),
    node: s(c.node()),
    state: c.state() as number as JobState,
    workerId: s(c.workerId()),
    attempts: c.attempts(),
    code: c.code() as number as ErrorCode,
    traceId: s(c.traceId()),
  };
}

function decodeEvent(bb: CheckedByteBuffer, e: W.Event): EventBody {
  const nodes: NodeInfo[] = [];
  for (let i = 0, n = e.nodesLength(); i < n; i++) nodes.push(table(bb, e.nodes(i), 'NodeInfo', (x: W.NodeInfo) => decodeNodeInfo(bb, x)));
  const workers: WorkerInfo[] = [];
  for (let i = 0, n = e.workersLength(); i < n; i++) workers.push(table(bb, e.workers(i), 'WorkerInfo', decodeWorkerInfo));
  const calls: CallInfo[] = [];
  for (let i = 0, n = e.callsLength(); i < n; i++) calls.push(table(bb, e.calls(i), 'CallInfo', decodeCallInfo));
  const node = e.node();
  const worker = e.worker();
  const call = e.call();
  return {
    type: 'Event',
    seq: e.seq(),
    kind: e.kind() as number as EventKind,
    nodes,
    workers,
    calls,
    node: node === null ? null : table(bb, node, 'NodeInfo', (x: W.NodeInfo) => decodeNodeInfo(bb, x)),
    worker: worker === null ? null : table(bb, worker, 'WorkerInfo', decodeWorkerInfo),
    call: call === null ? null : table(bb, call, 'CallInfo', decodeCallInfo),
  };
}

function decodeJobInfo(j: W.JobInfo): JobInfo {
  return {
    jobId: j.jobId(),
    state: j.state() as number as JobState,
    node: s(j.node()),
    workspace: s(j.workspace()),
    submittedMs: j.submittedMs(),
    workerId: s(j.workerId()),
    attempts: j.attempts(),
    code: j.code() as number as ErrorCode,
    finishedMs: j.finishedMs(),
  };
}

/**
 * A WorkRequest whose envelope is sound but whose inputs or parameters are not a valid Values
 * payload (fails verification, a string that is not UTF-8): the worker answers it
 * Failure{InvalidRequest} with this request id instead of dropping it (PROTOCOL.md §4).
 */
export class BadPayloadError extends MusterError {
  constructor(
    readonly requestId: bigint,
    message: string,
  ) {
    super(ErrorCode.BadMessage, message);
    this.name = 'BadPayloadError';
  }
}

/** Runs a decoder over a received buffer; any failure becomes MusterError(BadMessage). */
function decodeWith<T>(bytes: Uint8Array, identifier: string, what: string, read: (bb: CheckedByteBuffer, root: number) => T): T {
  try {
    const { bb, root } = openBuffer(bytes, identifier, MESSAGE_MAX_DEPTH, MESSAGE_MAX_TABLES);
    bb.enterTable();
    const out = read(bb, root);
    bb.leaveTable();
    return out;
  } catch (e) {
    if (e instanceof MusterError) throw e;
    throw badMessage(`not a valid ${what}: ${(e as Error).message}`, e);
  }
}

/** Reads a union member table; the union's value must be present. */
function member<T>(read: (t: T) => unknown, make: () => T): T {
  const t = read(make()) as T | null;
  if (t === null) throw new BufferError('message body is missing');
  return t;
}

function badUnion(t: number): never {
  throw new BufferError(t === 0 ? 'message body is NONE' : `unknown message body type ${t}`);
}

export function decodeWorkerMessage(bytes: Uint8Array): WorkerMessage {
  return decodeWith(bytes, IDENTIFIERS.WorkerMessage, 'WorkerMessage', (bb, root) => {
    const m = new W.WorkerMessage().__init(root, bb);
    const workerId = s(m.workerId());
    const t = m.bodyType();
    const get = <T,>(make: () => T): T => member((x: T) => m.body(x as never), make);
    bb.enterTable();
    let body: WorkerBody;
    switch (t) {
      case W.WorkerBody.Attach: {
        const a = get(() => new W.Attach());
        const nodes: NodeSpec[] = [];
        for (let i = 0, n = a.nodesLength(); i < n; i++) nodes.push(decodeNodeSpec(bb, a.nodes(i)!));
        body = {
          type: 'Attach',
          workerId: required(a.workerId(), 'Attach.worker_id'),
          hostname: s(a.hostname()),
          sdk: s(a.sdk()),
          pid: a.pid(),
          session: s(a.session()),
          capacity: a.capacity(),
          nodes,
          payloadFrames: a.payloadFrames(),
          noAnswerAcks: a.noAnswerAcks(),
          batches: a.batches(),
          idlePongs: a.idlePongs(),
          direct: a.direct(),
        };
        break;
      }
      case W.WorkerBody.Pong: {
        const p = get(() => new W.Pong());
        const inFlight: bigint[] = [];
        for (let i = 0, n = p.inFlightLength(); i < n; i++) inFlight.push(p.inFlight(i)!);
        const answered: bigint[] = [];
        for (let i = 0, n = p.answeredLength(); i < n; i++) answered.push(p.answered(i)!);
        body = { type: 'Pong', seq: p.seq(), instance: s(p.instance()), inFlight, answered };
        break;
      }
      case W.WorkerBody.Progress:
        body = decodeProgress(get(() => new W.Progress()));
        break;
      case W.WorkerBody.Result:
        body = decodeResult(get(() => new W.Result()));
        break;
      case W.WorkerBody.Failure:
        body = decodeFailure(get(() => new W.Failure()));
        break;
      case W.WorkerBody.Detach:
        body = { type: 'Detach', reason: s(get(() => new W.Detach()).reason()) };
        break;
      case W.WorkerBody.Batch:
        body = decodeBatch(bb, get(() => new W.Batch()));
        break;
      case W.WorkerBody.Item:
        body = decodeItem(get(() => new W.Item()));
        break;
      case W.WorkerBody.Chunk:
        body = decodeChunk(get(() => new W.Chunk()));
        break;
      case W.WorkerBody.Credit:
        body = decodeCredit(get(() => new W.Credit()));
        break;
      default:
        badUnion(t);
    }
    bb.leaveTable();
    return { workerId, body };
  });
}

export function decodeDaemonMessage(bytes: Uint8Array): DaemonMessage {
  return decodeWith(bytes, IDENTIFIERS.DaemonMessage, 'DaemonMessage', (bb, root) => {
    const m = new W.DaemonMessage().__init(root, bb);
    const t = m.bodyType();
    const get = <T,>(make: () => T): T => member((x: T) => m.body(x as never), make);
    bb.enterTable();
    let body: DaemonBody;
    switch (t) {
      case W.DaemonBody.Ping: {
        const p = get(() => new W.Ping());
        body = { type: 'Ping', seq: p.seq(), instance: s(p.instance()) };
        break;
      }
      case W.DaemonBody.WorkRequest: {
        const r = get(() => new W.WorkRequest());
        const requestId = r.requestId();
        let inputs: Uint8Array;
        let parameters: Uint8Array;
        try {
          inputs = payloadOf(r.inputsArray(), 'WorkRequest.inputs');
          parameters = payloadOf(r.parametersArray(), 'WorkRequest.parameters');
        } catch (e) {
          throw new BadPayloadError(requestId, `not a valid DaemonMessage: ${(e as Error).message}`);
        }
        body = {
          type: 'WorkRequest',
          requestId,
          node: required(r.node(), 'WorkRequest.node'),
          inputs,
          parameters,
          timeoutMs: r.timeoutMs(),
          attempt: r.attempt(),
          caller: decodeCaller(bb, r.caller()),
          inputsInFrame: r.inputsInFrame(),
          streamWindowItems: r.streamWindowItems(),
          streamWindowBytes: r.streamWindowBytes(),
          chunkWindowBytes: r.chunkWindowBytes(),
        };
        break;
      }
      case W.DaemonBody.Abort: {
        const a = get(() => new W.Abort());
        body = { type: 'Abort', requestId: a.requestId(), code: a.code() as number as ErrorCode, reason: s(a.reason()) };
        break;
      }
      case W.DaemonBody.Attached: {
        const a = get(() => new W.Attached());
        body = {
          type: 'Attached',
          workerId: s(a.workerId()),
          instance: s(a.instance()),
          topic: s(a.topic()),
          broadcastTopic: s(a.broadcastTopic()),
          pingIntervalMs: a.pingIntervalMs(),
          liveness: a.liveness(),
          maxMessageBytes: a.maxMessageBytes(),
          noAnswerAcks: a.noAnswerAcks(),
          batches: a.batches(),
          idlePongEvery: a.idlePongEvery(),
          direct: a.direct(),
        };
        break;
      }
      case W.DaemonBody.Ack: {
        const ack = get(() => new W.Ack());
        const missing: bigint[] = [];
        for (let i = 0, n = ack.missingLength(); i < n; i++) missing.push(ack.missing(i)!);
        body = { type: 'Ack', late: ack.late(), pongSeq: ack.pongSeq(), missing };
        break;
      }
      case W.DaemonBody.Rejected: {
        const r = get(() => new W.Rejected());
        body = { type: 'Rejected', code: r.code() as number as ErrorCode, message: s(r.message()), reattach: r.reattach() };
        break;
      }
      case W.DaemonBody.Batch:
        body = decodeBatch(bb, get(() => new W.Batch()));
        break;
      case W.DaemonBody.Credit:
        body = decodeCredit(get(() => new W.Credit()));
        break;
      case W.DaemonBody.Chunk:
        body = decodeChunk(get(() => new W.Chunk()));
        break;
      default:
        badUnion(t);
    }
    bb.leaveTable();
    return { body };
  });
}

export function decodeClientMessage(bytes: Uint8Array): ClientMessage {
  return decodeWith(bytes, IDENTIFIERS.ClientMessage, 'ClientMessage', (bb, root) => {
    const m = new W.ClientMessage().__init(root, bb);
    const requestId = m.requestId();
    const t = m.bodyType();
    const get = <T,>(make: () => T): T => member((x: T) => m.body(x as never), make);
    bb.enterTable();
    let body: ClientBody;
    switch (t) {
      case W.ClientBody.Submit: {
        const x = get(() => new W.Submit());
        body = {
          type: 'Submit',
          node: required(x.node(), 'Submit.node'),
          inputs: payloadOf(x.inputsArray(), 'Submit.inputs'),
          parameters: payloadOf(x.parametersArray(), 'Submit.parameters'),
          timeoutMs: x.timeoutMs(),
          wantProgress: x.wantProgress(),
          wantAccepted: x.wantAccepted(),
          traceId: s(x.traceId()),
          payloadFrames: x.payloadFrames(),
          durable: x.durable(),
          batchReplies: x.batchReplies(),
          streamWindowItems: x.streamWindowItems(),
          streamWindowBytes: x.streamWindowBytes(),
          chunkWindowBytes: x.chunkWindowBytes(),
          resumable: x.resumable(),
        };
        break;
      }
      case W.ClientBody.Cancel:
        get(() => new W.Cancel());
        body = { type: 'Cancel' };
        break;
      case W.ClientBody.ListNodes:
        get(() => new W.ListNodes());
        body = { type: 'ListNodes' };
        break;
      case W.ClientBody.ListWorkers:
        get(() => new W.ListWorkers());
        body = { type: 'ListWorkers' };
        break;
      case W.ClientBody.GetStatus:
        get(() => new W.GetStatus());
        body = { type: 'GetStatus' };
        break;
      case W.ClientBody.GetNodeStats:
        get(() => new W.GetNodeStats());
        body = { type: 'GetNodeStats' };
        break;
      case W.ClientBody.TokenCreate: {
        const x = get(() => new W.TokenCreate());
        body = {
          type: 'TokenCreate',
          role: s(x.role()),
          ttlMs: x.ttlMs(),
          uses: x.uses(),
          workspace: s(x.workspace()),
          name: s(x.name()),
        };
        break;
      }
      case W.ClientBody.TokenList:
        get(() => new W.TokenList());
        body = { type: 'TokenList' };
        break;
      case W.ClientBody.TokenRevoke:
        body = { type: 'TokenRevoke', id: required(get(() => new W.TokenRevoke()).id(), 'TokenRevoke.id') };
        break;
      case W.ClientBody.KeyList:
        get(() => new W.KeyList());
        body = { type: 'KeyList' };
        break;
      case W.ClientBody.KeyRevoke:
        body = { type: 'KeyRevoke', id: required(get(() => new W.KeyRevoke()).id(), 'KeyRevoke.id') };
        break;
      case W.ClientBody.JobResume: {
        const x = get(() => new W.JobResume());
        const jobs: JobRef[] = [];
        for (let i = 0, n = x.jobsLength(); i < n; i++) {
          jobs.push(table(bb, x.jobs(i), 'JobRef', (r: W.JobRef) => ({ jobId: r.jobId(), requestId: r.requestId() })));
        }
        body = { type: 'JobResume', jobs };
        break;
      }
      case W.ClientBody.JobAck: {
        const x = get(() => new W.JobAck());
        const jobIds: bigint[] = [];
        for (let i = 0, n = x.jobIdsLength(); i < n; i++) jobIds.push(x.jobIds(i)!);
        body = { type: 'JobAck', jobIds };
        break;
      }
      case W.ClientBody.JobGet:
        body = { type: 'JobGet', jobId: get(() => new W.JobGet()).jobId() };
        break;
      case W.ClientBody.JobList: {
        const l = get(() => new W.JobList());
        body = { type: 'JobList', limit: l.limit(), afterJobId: l.afterJobId() };
        break;
      }
        break;
      case W.ClientBody.JobCancel:
        body = { type: 'JobCancel', jobId: get(() => new W.JobCancel()).jobId() };
        break;
      case W.ClientBody.Watch: {
        const w = get(() => new W.Watch());
        body = { type: 'Watch', nodes: w.nodes(), workers: w.workers(), calls: w.calls() };
        break;
      }
      case W.ClientBody.Batch:
        body = decodeBatch(bb, get(() => new W.Batch()));
        break;
      case W.ClientBody.Credit:
        body = decodeCredit(get(() => new W.Credit()));
        break;
      case W.ClientBody.Chunk:
        body = decodeChunk(get(() => new W.Chunk()));
        break;
      case W.ClientBody.CallResume: {
        const x = get(() => new W.CallResume());
        const calls: CallRef[] = [];
        for (let i = 0, n = x.callsLength(); i < n; i++) {
          calls.push(
            table(bb, x.calls(i), 'CallRef', (r: W.CallRef) => {
              const outputs: StreamOffset[] = [];
              for (let j = 0, k = r.outputsLength(); j < k; j++) {
                outputs.push(table(bb, r.outputs(j), 'StreamOffset', (o: W.StreamOffset) => ({ stream: o.stream(), offset: o.offset() })));
              }
              return { callToken: r.callToken(), requestId: r.requestId(), itemsReceived: r.itemsReceived(), outputs };
            }),
          );
        }
        body = { type: 'CallResume', calls };
        break;
      }
      default:
        badUnion(t);
    }
    bb.leaveTable();
    const a = m.onBehalfOf();
    let onBehalfOf: OnBehalfOf | null = null;
    if (a !== null) {
      bb.enterTable();
      try {
        onBehalfOf = {
          user: required(a.user(), 'OnBehalfOf.user'),
          workspace: required(a.workspace(), 'OnBehalfOf.workspace'),
          role: s(a.role()),
        };
      } finally {
        bb.leaveTable();
      }
    }
    return { requestId, body, onBehalfOf };
  });
}

export function decodeClientReply(bytes: Uint8Array): ClientReply {
  return decodeWith(bytes, IDENTIFIERS.ClientReply, 'ClientReply', (bb, root) => {
    const m = new W.ClientReply().__init(root, bb);
    const requestId = m.requestId();
    const t = m.bodyType();
    const get = <T,>(make: () => T): T => member((x: T) => m.body(x as never), make);
    bb.enterTable();
    let body: ReplyBody;
    switch (t) {
      case W.ReplyBody.Accepted:
      {
        const x = get(() => new W.Accepted());
        body = { type: 'Accepted', queued: x.queued(), jobId: x.jobId(), callToken: x.callToken() };
      }
        break;
      case W.ReplyBody.Progress:
        body = decodeProgress(get(() => new W.Progress()));
        break;
      case W.ReplyBody.Result:
        body = decodeResult(get(() => new W.Result()));
        break;
      case W.ReplyBody.Failure:
        body = decodeFailure(get(() => new W.Failure()));
        break;
      case W.ReplyBody.NodeList: {
        const l = get(() => new W.NodeList());
        const nodes: NodeInfo[] = [];
        for (let i = 0, n = l.nodesLength(); i < n; i++) {
          const info = l.nodes(i)!;
          nodes.push(
            table(bb, info, 'NodeInfo', (x: W.NodeInfo) => {
              const spec = x.spec();
              return {
                spec: spec === null ? null : decodeNodeSpec(bb, spec),
                workspace: s(x.workspace()),
                workers: x.workers(),
                capacity: x.capacity(),
                inFlight: x.inFlight(),
                queueDepth: x.queueDepth(),
              };
            }),
          );
        }
        body = { type: 'NodeList', nodes };
        break;
      }
      case W.ReplyBody.WorkerList: {
        const l = get(() => new W.WorkerList());
        const workers: WorkerInfo[] = [];
        for (let i = 0, n = l.workersLength(); i < n; i++) {
          workers.push(
            table(bb, l.workers(i), 'WorkerInfo', decodeWorkerInfo),
          );
        }
        body = { type: 'WorkerList', workers };
        break;
      }
      case W.ReplyBody.StatusReport: {
        const r = get(() => new W.StatusReport());
        const failures: CodeCount[] = [];
        for (let i = 0, n = r.failuresLength(); i < n; i++) {
          failures.push(
            table(bb, r.failures(i), 'CodeCount', (c: W.CodeCount) => ({
              code: c.code() as number as ErrorCode,
              count: c.count(),
            })),
          );
        }
        body = {
          type: 'StatusReport',
          version: s(r.version()),
          instance: s(r.instance()),
          uptimeMs: r.uptimeMs(),
          workers: r.workers(),
          nodes: r.nodes(),
          queued: r.queued(),
          inFlight: r.inFlight(),
          submitted: r.submitted(),
          completed: r.completed(),
          failed: r.failed(),
          failures,
          redispatched: r.redispatched(),
          rate1m: r.rate1m(),
          recovering: r.recovering(),
        };
        break;
      }
      case W.ReplyBody.TokenCreated: {
        const x = get(() => new W.TokenCreated());
        body = { type: 'TokenCreated', token: s(x.token()), id: s(x.id()), expiresAt: s(x.expiresAt()) };
        break;
      }
      case W.ReplyBody.NodeStatsReport: {
        const r = get(() => new W.NodeStatsReport());
        const u64s = (n: number, at: (i: number) => bigint | null): bigint[] =>
          Array.from({ length: n }, (_x, i) => at(i) ?? 0n);
        const histogram = (h: W.LatencyHistogram | null): LatencyHistogram | null =>
          h === null
            ? null
            : table(bb, h, 'LatencyHistogram', (x: W.LatencyHistogram) => ({
                upperBoundsUs: u64s(x.upperBoundsUsLength(), (i) => x.upperBoundsUs(i)),
                counts: u64s(x.countsLength(), (i) => x.counts(i)),
                count: x.count(),
                sumUs: x.sumUs(),
                p50Us: x.p50Us(),
                p90Us: x.p90Us(),
                p99Us: x.p99Us(),
              }));
        const nodes: NodeStats[] = [];
        for (let i = 0, n = r.nodesLength(); i < n; i++) {
          nodes.push(
            table(bb, r.nodes(i), 'NodeStats', (x: W.NodeStats) => {
              const failures: CodeCount[] = [];
              for (let k = 0, m = x.failuresLength(); k < m; k++)
                failures.push(table(bb, x.failures(k), 'CodeCount', (c: W.CodeCount) => ({ code: c.code() as number as ErrorCode, count: c.count() })));
              return {
                workspace: s(x.workspace()),
                node: s(x.node()),
                workers: x.workers(),
                inFlight: x.inFlight(),
                queueDepth: x.queueDepth(),
                completed: x.completed(),
                failed: x.failed(),
                failures,
                rate1m: x.rate1m(),
                queueWait: histogram(x.queueWait()),
                service: histogram(x.service()),
              };
            }),
          );
        }
        const recentFailures: RecentFailure[] = [];
        for (let i = 0, n = r.recentFailuresLength(); i < n; i++) {
          recentFailures.push(
            table(bb, r.recentFailures(i), 'RecentFailure', (f: W.RecentFailure) => ({
              workspace: s(f.workspace()),
              node: s(f.node()),
              code: f.code() as number as ErrorCode,
              message: s(f.message()),
              ageMs: f.ageMs(),
            })),
          );
        }
        body = { type: 'NodeStatsReport', nodes, recentFailures };
        break;
      }
      case W.ReplyBody.AdminReport:
        body = { type: 'AdminReport', json: s(get(() => new W.AdminReport()).json()) };
        break;
      case W.ReplyBody.JobInfo:
        body = { type: 'JobInfo', ...decodeJobInfo(get(() => new W.JobInfo())) };
        break;
      case W.ReplyBody.JobInfoList: {
        const l = get(() => new W.JobInfoList());
        const jobs: JobInfo[] = [];
        for (let i = 0, n = l.jobsLength(); i < n; i++) jobs.push(table(bb, l.jobs(i), 'JobInfo', decodeJobInfo));
        body = { type: 'JobInfoList', jobs, more: l.more() };
        break;
      }
      case W.ReplyBody.Batch:
        body = decodeBatch(bb, get(() => new W.Batch()));
        break;
      case W.ReplyBody.Event:
        body = decodeEvent(bb, get(() => new W.Event()));
        break;
      case W.ReplyBody.Item:
        body = decodeItem(get(() => new W.Item()));
        break;
      case W.ReplyBody.Chunk:
        body = decodeChunk(get(() => new W.Chunk()));
        break;
      case W.ReplyBody.Credit:
        body = decodeCredit(get(() => new W.Credit()));
        break;
      default:
        badUnion(t);
    }
    bb.leaveTable();
    return { requestId, body };
  });
}

export function decodeEnrollRequest(bytes: Uint8Array): EnrollRequest {
  return decodeWith(bytes, IDENTIFIERS.EnrollRequest, 'EnrollRequest', (bb, root) => {
    const m = new W.EnrollRequest().__init(root, bb);
    return {
      token: required(m.token(), 'EnrollRequest.token'),
      publicKey: required(m.publicKey(), 'EnrollRequest.public_key'),
      role: s(m.role()),
      name: s(m.name()),
      hostname: s(m.hostname()),
    };
  });
}

export function decodeEnrollResponse(bytes: Uint8Array): EnrollResponse {
  return decodeWith(bytes, IDENTIFIERS.EnrollResponse, 'EnrollResponse', (bb, root) => {
    const m = new W.EnrollResponse().__init(root, bb);
    return {
      ok: m.ok(),
      identityId: s(m.identityId()),
      role: s(m.role()),
      workspace: s(m.workspace()),
      name: s(m.name()),
      code: m.code() as number as ErrorCode,
      error: s(m.error()),
    };
  });
}

/** Wraps an encoding failure (bad field values) as a MusterError. */
export function encodeOrThrow<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof MusterError) throw e;
    throw new MusterError(ErrorCode.InvalidRequest, `cannot encode ${what}: ${(e as Error).message}`, { cause: e });
  }
}
