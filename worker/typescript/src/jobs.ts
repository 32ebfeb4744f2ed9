// jobs.ts — the client side of durable calls (docs/DURABILITY.md §6): which durable calls are
// open, which job ids were already handed to the application, what a reconnect sends (JobResume,
// JobAck again), and what Client.jobGet / jobList / jobCancel return.
// Owns: the bookkeeping of client.ts for durable calls; it knows no socket. A durable call is
// known by its job id from its Accepted on; after a reconnect it is bound again under a new
// request id. A terminal reply for a job id already delivered is a duplicate: dropped and
// acknowledged again.
// Must never: let a job's terminal reply reach the application twice, or acknowledge a job
// before its reply was handed over.
import { ErrorCode, MusterError } from './errors';
import { type ClientBody, type JobInfo, JobState, type JobRef, type ReplyBody } from './messages';
import { takeValues } from './decoded-payloads';
import type { Values } from './value';

/** How many delivered job ids a client remembers (to drop a second reply, and to acknowledge again after a reconnect). */
export const REMEMBER_DELIVERED = 4096;

/** One durable call as `jobList()` / `jobCancel()` list it: times (wall clock, ms since the Unix epoch) as numbers, the job id exact. */
export type JobListing = Omit<JobInfo, 'submittedMs' | 'finishedMs'> & { submittedMs: number; finishedMs: number };

/**
 * A durable call fetched by job id (`jobGet`): `info` while it is open (queued, running,
 * recovering); once finished (`done`), `outputs` (a Result) or `error` (its Failure) and
 * `info` null. `result()` returns the outputs or throws.
 */
export interface Job<Out extends object = Values> {
  jobId: bigint;
  state: JobState;
  done: boolean;
  info: JobListing | null;
  outputs: Out | null;
  error: MusterError | null;
  result(): Out;
}

export function jobListing(info: JobInfo): JobListing {
  const { type: _type, ...rest } = info as JobInfo & { type?: string };
  return { ...rest, submittedMs: Number(info.submittedMs), finishedMs: Number(info.finishedMs) };
}

/** The job id of a terminal reply (Result, Failure) of a durable call; 0n otherwise. */
export function terminalJobId(body: ReplyBody): bigint {
  return body.type === 'Result' || body.type === 'Failure' ? (body.jobId ?? 0n) : 0n;
}

function makeJob<Out extends object>(jobId: bigint, state: JobState, info: JobListing | null, outputs: Out | null, error: MusterError | null): Job<Out> {
  return {
    jobId,
    state,
    done: state === JobState.Finished,
    info,
    outputs,
    error,
    result(): Out {
      if (error) throw error;
      if (state !== JobState.Finished) {
        throw new MusterError(ErrorCode.InvalidRequest, `job ${jobId} is not finished (state ${JobState[state] ?? state})`);
      }
      return (outputs ?? {}) as Out;
    },
  };
}

/**
 * The Job a JobGet answer describes: a JobInfo, or the kept Result/Failure. A Failure without
 * job id ("no such job") is thrown as its MusterError.
 */
export function jobFromReply<Out extends object = Values>(jobId: bigint, body: ReplyBody): Job<Out> {
  switch (body.type) {
    case 'JobInfo':
      return makeJob<Out>(body.jobId || jobId, body.state, jobListing(body), null, null);
    case 'Result':
      return makeJob<Out>(body.jobId || jobId, JobState.Finished, null, takeValues(body.outputs) as Out, null);
    case 'Failure': {
      const error = new MusterError(body.code, body.message);
      if (!body.jobId) throw error;
      return makeJob<Out>(body.jobId, JobState.Finished, null, null, error);
    }
    default:
      throw new MusterError(ErrorCode.BadMessage, `unexpected ${body.type} in answer to JobGet`);
  }
}

/**
 * Open durable calls of one client by job id (`T` is the client's handle of a call) and the
 * job ids already delivered.
 */
export class DurableJobs<T> {
  readonly open = new Map<bigint, T>();
  private readonly deliveredIds = new Set<bigint>(); // insertion-ordered: the oldest first
  private ackedNow: bigint[] = [];
  private ackedBefore: bigint[] = [];

  constructor(private readonly remember = REMEMBER_DELIVERED) {}

  /** `call` got its job id: it can be resumed. */
  opened(jobId: bigint, call: T): void {
    if (jobId && !this.deliveredIds.has(jobId)) this.open.set(jobId, call);
  }

  /** Whether the terminal reply of `jobId` was handed to the application already. */
  delivered(jobId: bigint): boolean {
    return this.deliveredIds.has(jobId);
  }

  /** The terminal reply of `jobId` was handed over: remember it, and count its acknowledgement. */
  finish(jobId: bigint): void {
    this.open.delete(jobId);
    this.deliveredIds.delete(jobId);
    this.deliveredIds.add(jobId);
    while (this.deliveredIds.size > this.remember) this.deliveredIds.delete(this.deliveredIds.values().next().value as bigint);
    this.acked(jobId);
  }

  acked(jobId: bigint): void {
    this.ackedNow.push(jobId);
    if (this.ackedNow.length > this.remember) this.ackedNow.splice(0, this.ackedNow.length - this.remember);
  }

  /** `jobId` ended without a reply to hand over (failed locally): not resumed again. */
  forget(jobId: bigint): void {
    this.open.delete(jobId);
  }

  /** The acknowledgements sent on the lost connection may not have reached the journal. */
  connectionLost(): void {
    this.ackedBefore = [...this.ackedBefore, ...this.ackedNow].slice(-this.remember);
    this.ackedNow = [];
  }

  /**
   * For a new connection: the JobResume of `calls` ([job id, handle], each under a new request
   * id from `nextId`), the JobAck repeating the lost connection's acknowledgements (null when
   * empty), and new request id -> handle.
   */
  reconnected(calls: [bigint, T][], nextId: () => number): { resume: ClientBody | null; ack: ClientBody | null; bound: Map<number, T> } {
    const bound = new Map<number, T>();
    const jobs: JobRef[] = [];
    for (const [jobId, call] of calls) {
      const requestId = nextId();
      bound.set(requestId, call);
      jobs.push({ jobId, requestId: BigInt(requestId) });
    }
    const again = this.ackedBefore;
    this.ackedBefore = [];
    return {
      resume: jobs.length > 0 ? { type: 'JobResume', jobs } : null,
      ack: again.length > 0 ? { type: 'JobAck', jobIds: again } : null,
      bound,
    };
  }
}
