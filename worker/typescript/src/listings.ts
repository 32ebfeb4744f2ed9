// listings.ts — what Client.nodes(), workers() and status() return: the daemon's NodeInfo,
// WorkerInfo and StatusReport with their uint64 fields (milliseconds and counters) as numbers.
// Owns: the user-facing shapes of the listings and their conversion from the wire's.
// Must never: hand a user a bigint for a count or a duration: they stay far below 2^53 (2^53 ms
// is 285,000 years; 2^53 requests take 285 years at a million a second), where a number is
// exact. A port's default value stays a muster value (value.ts: a bigint only beyond 2^53).
import type { ErrorCode } from './errors';
import type { NodeInfo, NodeSpec, StatusReportBody, WorkerInfo } from './messages';

/** A node's spec as listed: `defaultTimeoutMs` a number. */
export type NodeSpecListing = Omit<NodeSpec, 'defaultTimeoutMs'> & { defaultTimeoutMs: number };

/** One node of `client.nodes()`. */
export type NodeListing = Omit<NodeInfo, 'spec'> & { spec: NodeSpecListing | null };

/** One worker of `client.workers()`: `attachedMs` and `lastSeenMs` (ms ago) are numbers. */
export type WorkerListing = Omit<WorkerInfo, 'attachedMs' | 'lastSeenMs'> & { attachedMs: number; lastSeenMs: number };

/** `client.status()`: uptime and counters are numbers. */
export type StatusListing = Omit<
  StatusReportBody,
  'type' | 'uptimeMs' | 'submitted' | 'completed' | 'failed' | 'failures' | 'redispatched'
> & {
  uptimeMs: number;
  submitted: number;
  completed: number;
  failed: number;
  failures: { code: ErrorCode; count: number }[];
  redispatched: number;
};

export function nodeListing(info: NodeInfo): NodeListing {
  const spec = info.spec ? { ...info.spec, defaultTimeoutMs: Number(info.spec.defaultTimeoutMs) } : null;
  return { ...info, spec };
}

export function workerListing(info: WorkerInfo): WorkerListing {
  return { ...info, attachedMs: Number(info.attachedMs), lastSeenMs: Number(info.lastSeenMs) };
}

export function statusListing(report: StatusReportBody): StatusListing {
  const { type: _type, ...rest } = report;
  return {
    ...rest,
    uptimeMs: Number(report.uptimeMs),
    submitted: Number(report.submitted),
    completed: Number(report.completed),
    failed: Number(report.failed),
    failures: report.failures.map((f) => ({ code: f.code, count: Number(f.count) })),
    redispatched: Number(report.redispatched),
  };
}
