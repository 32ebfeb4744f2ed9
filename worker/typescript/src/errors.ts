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

const NAMES: readonly string[] = [
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
];

/** "NO_WORKER", "TIMEOUT", ... as the C++ CLI prints them; "UNKNOWN" for a value outside the enum. */
export function errorCodeName(code: number): string {
  return Number.isInteger(code) && code >= 0 && code < NAMES.length ? NAMES[code]! : 'UNKNOWN';
}

/** The code for a name such as "WORKER_ERROR" (also accepts the enum spelling "WorkerError"). */
export function errorCodeFromName(name: string): ErrorCode | undefined {
  const i = NAMES.indexOf(name);
  if (i >= 0) return i as ErrorCode;
  const v = (ErrorCode as unknown as Record<string, unknown>)[name];
  return typeof v === 'number' ? (v as ErrorCode) : undefined;
}

/** Every error the SDK reports with a protocol code: `err.code` is an ErrorCode. */
export class MusterError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MusterError';
    this.code = code;
  }
  /** "WORKER_ERROR", ... */
  get codeName(): string {
    return errorCodeName(this.code);
  }
  override toString(): string {
    return `MusterError: ${this.codeName}: ${this.message}`;
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
