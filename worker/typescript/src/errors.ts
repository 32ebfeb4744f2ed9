// errors.ts — the closed set of muster error codes (schema/common.fbs ErrorCode, PROTOCOL.md §6),
// their names as the CLI prints them ("NO_WORKER", ...), and MusterError, the one error class
// the SDK throws for anything the protocol has a code for.
// Must never: invent a code the schema does not have.

/** Mirrors `muster.wire.ErrorCode`; the numeric values are the wire values. */
export enum ErrorCode {
  None = 0,
  NoWorker = 1,
  Timeout = 2,
  WorkerLost = 3,
  Cancelled = 4,
  InvalidRequest = 5,
  PermissionDenied = 6,
  QueueFull = 7,
  WorkerError = 8,
  BadMessage = 9,
  Internal = 10,
  ShuttingDown = 11,
  Unavailable = 12,
}

const NAMES = [
  'NONE',
  'NO_WORKER',
  'TIMEOUT',
  'WORKER_LOST',
  'CANCELLED',
  'INVALID_REQUEST',
  'PERMISSION_DENIED',
  'QUEUE_FULL',
  'WORKER_ERROR',
  'BAD_MESSAGE',
  'INTERNAL',
  'SHUTTING_DOWN',
  'UNAVAILABLE',
] as const;

/** A code's printed name ("WORKER_ERROR"); "UNKNOWN" for a number from a newer peer. */
export type ErrorCodeName = (typeof NAMES)[number] | 'UNKNOWN';

/** "NO_WORKER", "TIMEOUT", ... as the C++ CLI prints them; "UNKNOWN" for a value outside the enum. */
export function errorCodeName(code: number): ErrorCodeName {
  return Number.isInteger(code) && code >= 0 && code < NAMES.length ? NAMES[code]! : 'UNKNOWN';
}

/** The code for a name such as "WORKER_ERROR" (also accepts the enum spelling "WorkerError"). */
export function errorCodeFromName(name: string): ErrorCode | undefined {
  const i = (NAMES as readonly string[]).indexOf(name);
  if (i >= 0) return i as ErrorCode;
  const v = (ErrorCode as unknown as Record<string, unknown>)[name];
  return typeof v === 'number' ? (v as ErrorCode) : undefined;
}

/**
 * Every error the SDK reports with a protocol code. `err.code` is the code's name
 * ("WORKER_ERROR", as Node's own errors carry "ENOENT"), `err.codeNumber` its wire value
 * (an ErrorCode), `err.message` the message alone; `String(err)` and the stack's first line
 * read `MusterError: WORKER_ERROR: message`.
 */
export class MusterError extends Error {
  readonly code: ErrorCodeName;
  readonly codeNumber: ErrorCode;
  constructor(code: ErrorCode | ErrorCodeName, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.codeNumber = typeof code === 'number' ? code : (errorCodeFromName(code) ?? ErrorCode.Internal);
    this.code = errorCodeName(this.codeNumber);
    if (typeof this.stack === 'string' && this.stack.startsWith(`${this.name}: `)) {
      this.stack = `${this.name}: ${this.code}: ${this.stack.slice(this.name.length + 2)}`;
    }
  }
  /** "WORKER_ERROR", ... (the same as `code`). */
  get codeName(): ErrorCodeName {
    return this.code;
  }
  override toString(): string {
    return `${this.name}: ${this.code}: ${this.message}`;
  }
}

/**
 * The code a worker's Failure carries (PROTOCOL.md §6): WorkerError (the node's own code failed),
 * InvalidRequest (inputs or parameters it cannot accept), or what a worker that forwards calls
 * to others met downstream (NoWorker, WorkerLost, Timeout, ShuttingDown). Any other code
 * becomes WorkerError.
 */
const WORKER_MAY_SEND: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.WorkerError,
  ErrorCode.InvalidRequest,
  ErrorCode.NoWorker,
  ErrorCode.WorkerLost,
  ErrorCode.Timeout,
  ErrorCode.ShuttingDown,
]);
export function workerFailureCode(code: ErrorCode): ErrorCode {
  return WORKER_MAY_SEND.has(code) ? code : ErrorCode.WorkerError;
}

/** The message was not a verifiable buffer of the expected type (PROTOCOL.md §3, §10). */
export function badMessage(message: string, cause?: unknown): MusterError {
  return new MusterError(ErrorCode.BadMessage, message, cause === undefined ? undefined : { cause });
}
