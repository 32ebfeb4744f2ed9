// enrollment.ts — how a TypeScript worker or client gets its CURVE keys for tcp:// endpoints
// (docs/SECURITY.md §5, PROTOCOL.md §9): find the token, load or create the key pair and the
// saved identity in the data directory, enroll over CURVE if not enrolled yet, and hand back the
// CurveKeys every socket then uses.
// Owns: the enrollment exchange on the wire (a DEALER to the enrollment endpoint as a CURVE
// client whose server key is the token's daemon key; one EnrollRequest, one EnrollResponse,
// a bounded wait) and when it is needed.
// Must never: send the token to a daemon whose key did not come from the token; wait without a
// bound; put the token text into an error or a log line.
import * as os from 'node:os';

import * as zmq from 'zeromq';

import { type CurveKeys, DEFAULT_TCP_PORTS } from './endpoints';
import { ErrorCode, MusterError } from './errors';
import {
  DaemonKeyMismatch,
  type EnrollmentPlan,
  type FoundToken,
  KeyPermissionError,
  type LocalIdentity,
  NotEnrolled,
  TokenFormatError,
  defaultDataDir,
  findEnrollmentToken,
  planEnrollment,
  recordEnrollment,
} from './keys';
import { type Logger } from './log';
import { decodeEnrollResponse, encodeEnrollRequest } from './messages';

export const DEFAULT_ENROLLMENT_TIMEOUT_MS = 10000;

/**
 * Enrollment failed: the daemon refused (its code and message), did not answer (Unavailable),
 * or the local files or token do not allow it (InvalidRequest, PermissionDenied).
 */
export class EnrollmentError extends MusterError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Options of a peer that enrolls (WorkerOptions and ClientOptions carry them). */
export interface EnrollmentOptions {
  /** Where the keys and the identity live (default $MUSTER_DATA_DIR, else $XDG_DATA_HOME/muster, else ~/.local/share/muster). */
  dataDir?: string;
  /** The daemon's enrollment endpoint (default tcp://<host of the first tcp:// endpoint>:7900). */
  enrollmentAddress?: string;
  /** A file holding the token, used when MUSTER_ENROLLMENT_TOKEN is not set. */
  enrollmentTokenFile?: string;
  /** File name stem of <name>-curve.key and <name>-identity.json ("worker" / "client"). */
  name?: string;
  /** How long to wait for the daemon's answer. Default 10000 ms. */
  enrollmentTimeoutMs?: number;
}

/** A host name as the daemon accepts it: [A-Za-z0-9._-]{0,255}. */
export function localHostname(host: string = os.hostname()): string {
  return host.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 255);
}

/** The endpoints of addresses, a failover pair's comma-separated list split (no check: endpointList does it). */
function eachEndpoint(addresses: (string | undefined)[]): string[] {
  return addresses.flatMap((a) => (a ? a.split(',').map((e) => e.trim()) : []));
}

/** tcp://HOST:7900 for the host of the first tcp:// endpoint (of address lists too), else null. */
export function defaultEnrollmentAddress(endpoints: (string | undefined)[]): string | null {
  for (const ep of eachEndpoint(endpoints)) {
    if (!ep || !ep.startsWith('tcp://')) continue;
    const rest = ep.slice('tcp://'.length);
    const colon = rest.lastIndexOf(':');
    const host = colon >= 0 && !rest.endsWith(']') ? rest.slice(0, colon) : rest;
    return `tcp://${host}:${DEFAULT_TCP_PORTS.enrollment}`;
  }
  return null;
}

/** True when some endpoint is tcp:// and neither keys nor `insecure` were given. */
export function needsCurve(endpoints: (string | undefined)[], curve: CurveKeys | undefined, insecure: boolean | undefined): boolean {
  return !curve && !insecure && eachEndpoint(endpoints).some((e) => e.startsWith('tcp://'));
}

/**
 * Sends EnrollRequest{token, public_key, role, name, hostname} to `address` over CURVE (server key:
 * the token's daemon key) and, on ok, saves <name>-identity.json. Rejects with EnrollmentError: the
 * daemon's code and message if it refused, Unavailable if no answer came in time (which is also
 * what a wrong daemon key looks like: the CURVE handshake never completes).
 */
export async function enroll(
  plan: EnrollmentPlan,
  dataDir: string,
  name: string,
  address: string,
  role: string,
  options: { enrollName?: string; hostname?: string; timeoutMs?: number } = {},
): Promise<LocalIdentity> {
  if (!plan.token) throw new EnrollmentError(ErrorCode.InvalidRequest, 'nothing to enroll with: no token');
  if (!address || !address.startsWith('tcp://')) {
    throw new EnrollmentError(ErrorCode.InvalidRequest, `the enrollment address must be a tcp:// endpoint, got ${JSON.stringify(address)}`);
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_ENROLLMENT_TIMEOUT_MS;
  const request = encodeEnrollRequest({
    token: plan.token,
    publicKey: plan.keys.publicKey,
    role,
    name: options.enrollName ?? '',
    hostname: localHostname(options.hostname),
  });
  const sock = new zmq.Dealer({ linger: 0, sendTimeout: timeoutMs, receiveTimeout: timeoutMs });
  let answer: Buffer;
  try {
    sock.curveServerKey = plan.daemonPublicKey;
    sock.curvePublicKey = plan.keys.publicKey;
    sock.curveSecretKey = plan.keys.secretKey;
    sock.connect(address);
    try {
      await sock.send(request);
      const frames = await sock.receive();
      answer = frames[frames.length - 1]!;
    } catch (e) {
      if ((e as { code?: string }).code === 'EAGAIN') {
        throw new EnrollmentError(
          ErrorCode.Unavailable,
          `no answer from the daemon at ${address} within ${timeoutMs} ms: unreachable, or its key is not the one in the token (${plan.daemonPublicKey})`,
        );
      }
      throw new EnrollmentError(ErrorCode.Unavailable, `enrollment at ${address} failed: ${(e as Error).message}`, { cause: e });
    }
  } finally {
    sock.close();
  }
  let resp;
  try {
    resp = decodeEnrollResponse(answer);
  } catch (e) {
    throw new EnrollmentError(ErrorCode.BadMessage, `unreadable answer from the enrollment endpoint ${address}: ${(e as Error).message}`);
  }
  if (!resp.ok) {
    const code = resp.code === ErrorCode.None ? ErrorCode.PermissionDenied : resp.code;
    throw new EnrollmentError(code, `enrollment refused by the daemon at ${address}: ${resp.error || 'no reason given'}`);
  }
  try {
    return recordEnrollment(dataDir, name, plan, resp.identityId, resp.role, resp.workspace, resp.name);
  } catch (e) {
    if (e instanceof RangeError) {
      throw new EnrollmentError(ErrorCode.BadMessage, `the daemon at ${address} accepted the enrollment but answered oddly: ${e.message}`);
    }
    throw e;
  }
}

/**
 * The CURVE keys for a peer with tcp:// `endpoints`: the identity saved in `dataDir`, or a new
 * enrollment with the token found as docs/SECURITY.md §5 says. Every problem is an
 * EnrollmentError whose message says what to do.
 */
export async function prepareCurve(
  endpoints: (string | undefined)[],
  role: string,
  options: EnrollmentOptions & { hostname?: string; enrollName?: string; logger?: Logger },
): Promise<CurveKeys> {
  const name = options.name ?? (role === 'worker' ? 'worker' : 'client');
  const dataDir = options.dataDir || defaultDataDir();
  const log = options.logger;
  let found: FoundToken | null = null;
  let plan: EnrollmentPlan;
  try {
    found = findEnrollmentToken(options.enrollmentTokenFile, process.env, (m) => log?.warn(m));
    plan = planEnrollment(dataDir, name, found ? found.token : null, null, log);
  } catch (e) {
    const msg = (e as Error).message;
    if (e instanceof TokenFormatError) {
      throw new EnrollmentError(ErrorCode.InvalidRequest, found ? `${msg} (from ${found.source})` : msg);
    }
    if (e instanceof NotEnrolled) {
      throw new EnrollmentError(
        ErrorCode.PermissionDenied,
        `${msg}. tcp:// endpoints are CURVE-encrypted with keys from enrollment (or pass explicit CURVE keys, or insecure: true / --insecure for clear text)`,
      );
    }
    if (e instanceof DaemonKeyMismatch || e instanceof KeyPermissionError) throw new EnrollmentError(ErrorCode.PermissionDenied, msg);
    throw new EnrollmentError(ErrorCode.InvalidRequest, msg, { cause: e });
  }
  if (plan.identity === null) {
    const address = options.enrollmentAddress || defaultEnrollmentAddress(endpoints);
    if (!address) {
      throw new EnrollmentError(
        ErrorCode.InvalidRequest,
        'not enrolled yet and no enrollment address: pass enrollmentAddress (--enrollment-address tcp://HOST:7900)',
      );
    }
    const id = await enroll(plan, dataDir, name, address, role, {
      enrollName: options.enrollName,
      hostname: options.hostname,
      timeoutMs: options.enrollmentTimeoutMs,
    });
    log?.info(`enrolled as identity ${id.identityId} (${id.role} in workspace ${id.workspace})`);
  }
  return { serverKey: plan.daemonPublicKey, publicKey: plan.keys.publicKey, secretKey: plan.keys.secretKey };
}
