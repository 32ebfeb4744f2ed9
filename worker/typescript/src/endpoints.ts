// endpoints.ts — where the daemon's sockets are, chosen exactly like the C++ programs
// (transport/runtime_dir.cpp, transport/endpoints.cpp; PROTOCOL.md §1), and the transport
// security every socket the SDK opens gets.
// Owns: the runtime directory lookup, the default ipc:// endpoints, the rule that a tcp://
// endpoint needs CURVE keys unless `insecure` is set, and address lists (one endpoint, or both
// daemons of a failover pair comma-separated, docs/DURABILITY.md §12) and how a socket
// connects to them.
// Must never: connect to tcp:// in clear text without an explicit `insecure: true`.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { ErrorCode, MusterError } from './errors';

export type SocketRole = 'request' | 'response' | 'client' | 'enrollment';

export const DEFAULT_TCP_PORTS: Readonly<Record<SocketRole, number>> = {
  request: 7899,
  response: 7898,
  enrollment: 7900,
  client: 7901,
};

function uid(): number {
  return typeof process.getuid === 'function' ? process.getuid() : 0;
}

/** `$MUSTER_RUNTIME_DIR` if set, else `$XDG_RUNTIME_DIR/muster`, else `/tmp/muster-<uid>`. */
export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  const d = env.MUSTER_RUNTIME_DIR;
  if (d) return d;
  const x = env.XDG_RUNTIME_DIR;
  if (x) return path.join(x, 'muster');
  return `/tmp/muster-${uid()}`;
}

/** `ipc://<runtime dir>/<role>.sock` */
export function defaultEndpoint(role: SocketRole, env: NodeJS.ProcessEnv = process.env): string {
  return `ipc://${runtimeDir(env)}/${role}.sock`;
}

/**
 * CURVE keys (Z85, 40 characters each) for a tcp:// connection: the daemon's public key and this
 * peer's keypair. Enrollment (docs/SECURITY.md) is what provides them.
 */
export interface CurveKeys {
  serverKey: string;
  publicKey: string;
  secretKey: string;
}

export interface TransportSecurity {
  curve?: CurveKeys;
  /** Allows tcp:// without CURVE (only for tests and trusted networks, like `--insecure`). */
  insecure?: boolean;
}

/**
 * The endpoints of an address: one, or the comma-separated endpoints of a failover pair (spaces
 * around commas ignored). Throws MusterError(InvalidRequest) for an empty list or item.
 */
export function endpointList(address: string): string[] {
  if (typeof address !== 'string') throw new MusterError(ErrorCode.InvalidRequest, 'endpoint must be a string');
  const items = address.split(',').map((e) => e.trim());
  if (items.some((e) => e === '')) {
    throw new MusterError(
      ErrorCode.InvalidRequest,
      `'${address}': empty endpoint in the address list (give ENDPOINT or ENDPOINT,ENDPOINT)`,
    );
  }
  return items;
}

/**
 * Throws MusterError(InvalidRequest) for an address this SDK may not use as given: every
 * endpoint of it (endpointList) must be ipc://PATH, inproc://NAME, or tcp:// with CURVE (or
 * `insecure`).
 */
export function checkEndpoint(address: string, security: TransportSecurity = {}): void {
  const items = endpointList(address);
  for (const endpoint of items) checkOneEndpoint(endpoint, security);
}

function checkOneEndpoint(endpoint: string, security: TransportSecurity): void {
  if (endpoint.startsWith('tcp://')) {
    if (!security.curve && !security.insecure) {
      throw new MusterError(
        ErrorCode.InvalidRequest,
        `${endpoint}: tcp:// endpoints are CURVE-encrypted; without CURVE keys they are refused unless you pass insecure: true`,
      );
    }
    return;
  }
  if (endpoint.startsWith('ipc://')) {
    if (endpoint.length <= 6) throw new MusterError(ErrorCode.InvalidRequest, `${endpoint}: empty ipc path`);
    return;
  }
  if (endpoint.startsWith('inproc://')) return;
  throw new MusterError(
    ErrorCode.InvalidRequest,
    `${endpoint}: unsupported endpoint (use ipc://PATH or tcp://HOST:PORT)`,
  );
}

/** The filesystem path of an ipc:// endpoint, else null. */
export function ipcPath(endpoint: string): string | null {
  return endpoint.startsWith('ipc://') ? endpoint.slice(6) : null;
}

/**
 * True unless every endpoint of the address is ipc:// with no socket file there (nobody is
 * listening; a failover pair's standby binds nothing, so one live endpoint is enough).
 */
export function endpointMayBeLive(address: string): boolean {
  return endpointList(address).some(oneEndpointMayBeLive);
}

function oneEndpointMayBeLive(endpoint: string): boolean {
  const p = ipcPath(endpoint);
  if (p === null || p.startsWith('@')) return true;
  try {
    return fs.statSync(p).isSocket();
  } catch {
    return false;
  }
}

interface CurveSocket {
  curveServerKey: string | null;
  curvePublicKey: string | null;
  curveSecretKey: string | null;
}

/** Applies CURVE client keys to a zeromq socket before it connects (an address with a tcp:// endpoint only). */
export function applySecurity(socket: object, address: string, security: TransportSecurity = {}): void {
  checkEndpoint(address, security);
  if (endpointList(address).some((e) => e.startsWith('tcp://')) && security.curve) {
    const s = socket as unknown as CurveSocket;
    s.curveServerKey = security.curve.serverKey;
    s.curvePublicKey = security.curve.publicKey;
    s.curveSecretKey = security.curve.secretKey;
  }
}

/** Whether the address names several endpoints (a failover pair). */
export function isAddressList(address: string): boolean {
  return endpointList(address).length > 1;
}

/**
 * Connects a socket to every endpoint of the address (after applySecurity). With several (a
 * failover pair) a Dealer gets ZMQ_IMMEDIATE first: it queues only on completed connections,
 * i.e. to the daemon that is bound, never for the standby's endpoint, where a message would
 * wait and reach it, stale, once it takes over. Its send() then waits until a connection
 * completes.
 */
export function connectAll(socket: { connect(endpoint: string): void; immediate?: boolean }, address: string, dealer: boolean): void {
  const items = endpointList(address);
  if (items.length > 1 && dealer) socket.immediate = true;
  for (const e of items) socket.connect(e);
}
