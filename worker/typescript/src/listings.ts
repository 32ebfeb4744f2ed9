// listings.ts — what Client.nodes(), workers(), status() and nodeStats() return: the daemon's
// NodeInfo, WorkerInfo, StatusReport and NodeStatsReport with their uint64 fields (milliseconds,
// microseconds and counters) as numbers.
// Owns: the user-facing shapes of the listings and their conversion from the wire's.
// Must never: hand a user a bigint for a count or a duration: they stay far below 2^53 (2^53 ms
// is 285,000 years; 2^53 requests take 285 years at a million a second), where a number is
// exact. A port's default value stays a muster value (value.ts: a bigint only beyond 2^53).
import type { ErrorCode } from './errors';
import type { LatencyHistogram, NodeInfo, NodeSpec, NodeStats, NodeStatsReportBody, RecentFailure, StatusReportBody, WorkerInfo } from './messages';

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

/** A latency histogram of `client.nodeStats()`, every figure a number (µs, counts). */
export type LatencyListing = { [K in keyof LatencyHistogram]: LatencyHistogram[K] extends bigint[] ? number[] : number };

/** One node of `client.nodeStats()`: counters numbers, histograms as LatencyListing (null when absent). */
export type NodeStatsListing = Omit<NodeStats, 'completed' | 'failed' | 'failures' | 'queueWait' | 'service'> & {
  completed: number;
  failed: number;
  failures: { code: ErrorCode; count: number }[];
  queueWait: LatencyListing | null;
  service: LatencyListing | null;
};

/** One recent failure of `client.nodeStats()`: `ageMs` (ms ago) a number. */
export type RecentFailureListing = Omit<RecentFailure, 'ageMs'> & { ageMs: number };

/** `client.nodeStats()`: per-node statistics and the newest failures of the workspace. */
export interface NodeStatsListingReport {
  nodes: NodeStatsListing[];
  recentFailures: RecentFailureListing[];
}

function latencyListing(h: LatencyHistogram | null): LatencyListing | null {
  if (!h) return null;
  return {
    upperBoundsUs: h.upperBoundsUs.map(Number),
    counts: h.counts.map(Number),
    count: Number(h.count),
    sumUs: Number(h.sumUs),
    p50Us: Number(h.p50Us),
    p90Us: Number(h.p90Us),
    p99Us: Number(h.p99Us),
  };
}

export function nodeStatsListing(report: NodeStatsReportBody): NodeStatsListingReport {
  return {
    nodes: report.nodes.map((n) => ({
      ...n,
      completed: Number(n.completed),
      failed: Number(n.failed),
      failures: n.failures.map((f) => ({ code: f.code, count: Number(f.count) })),
      queueWait: latencyListing(n.queueWait),
      service: latencyListing(n.service),
    })),
    recentFailures: report.recentFailures.map((f) => ({ ...f, ageMs: Number(f.ageMs) })),
  };
}
