// nodes.ts — how a TypeScript worker declares a node (name, ports, defaults) and how the SDK
// checks a request's inputs and parameters against that declaration (PROTOCOL.md §5).
// Owns: the name rules for nodes and worker ids, port types, and "required ports present,
// defaults applied".
// Must never: accept a node or worker name the protocol forbids, or let a request with a
// missing required input reach a handler.
import { ErrorCode, MusterError } from './errors';
import type { NodeSpec, Port } from './messages';
import { type MusterValue, type Values, entriesOf, getKey, hasKey, kindOf, mapFromEntries } from './value';

export const PORT_TYPES = ['any', 'null', 'bool', 'int', 'float', 'string', 'bytes', 'list', 'map'] as const;
export type PortType = (typeof PORT_TYPES)[number];

const NODE_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
const WORKER_ID = /^[A-Za-z0-9_.-]{1,64}$/;

export function validNodeName(name: string): boolean {
  return typeof name === 'string' && NODE_NAME.test(name);
}
export function validWorkerId(id: string): boolean {
  return typeof id === 'string' && WORKER_ID.test(id);
}

/** A port as a node declares it. `default` present (even `null`) means the port has a default. */
export interface PortDefinition {
  name: string;
  type?: PortType;
  description?: string;
  required?: boolean;
  default?: MusterValue;
  /**
   * Inputs of type bytes only, an SDK-side setting (not sent to musterd): the handler reads
   * this input as it arrives with `ctx.inputStream(name)` (a Readable), and the request starts
   * before its bytes are in (docs/STREAMS.md §3). `ctx.inputs[name]` then holds the
   * ChunkedValue reference (its `size`) when the value came chunked, or the bytes when it came
   * inline. Without it, a chunked input is assembled and checked before the handler runs.
   */
  stream?: boolean;
}

/** Ports as a list, or as a record from name to the rest of the definition. */
export type PortsDefinition = PortDefinition[] | Record<string, Omit<PortDefinition, 'name'> | PortType>;

export interface NodeDefinition {
  name: string;
  description?: string;
  category?: string;
  version?: string;
  inputs?: PortsDefinition;
  outputs?: PortsDefinition;
  parameters?: PortsDefinition;
  /** Safe to run again on another worker if this one dies mid-request. */
  idempotent?: boolean;
  /** Every call to the node is durable (journaled by musterd, survives a daemon restart; docs/DURABILITY.md), whether or not the caller asked. */
  durable?: boolean;
  /** Timeout when a Submit gives none (0 or absent: the daemon's default, 30 s). */
  timeoutMs?: number;
}

function invalid(message: string): MusterError {
  return new MusterError(ErrorCode.InvalidRequest, message);
}

function toPorts(def: PortsDefinition | undefined, where: string): Port[] {
  const list = portList(def);
  const seen = new Set<string>();
  return list.map((p) => {
    if (!p || typeof p.name !== 'string' || p.name.length === 0) throw invalid(`${where}: every port needs a name`);
    if (seen.has(p.name)) throw invalid(`${where}: port "${p.name}" is declared twice`);
    seen.add(p.name);
    const type = p.type ?? 'any';
    if (!(PORT_TYPES as readonly string[]).includes(type)) {
      throw invalid(`${where}: port "${p.name}" has unknown type "${type}" (one of ${PORT_TYPES.join(', ')})`);
    }
    const port: Port = { name: p.name, type, description: p.description ?? '', required: !!p.required };
    if (Object.prototype.hasOwnProperty.call(p, 'default')) {
      port.defaultValue = p.default ?? null;
      kindOf(port.defaultValue); // throws for a default with no muster form
    }
    return port;
  });
}

function portList(def: PortsDefinition | undefined): PortDefinition[] {
  if (def === undefined) return [];
  return Array.isArray(def)
    ? def
    : Object.entries(def).map(([name, p]) => (typeof p === 'string' ? { name, type: p } : { name, ...p }));
}

/** The inputs a node reads as streams (`stream: true`); throws MusterError(InvalidRequest) for one that is not bytes. */
export function streamedInputs(def: NodeDefinition): Set<string> {
  const out = new Set<string>();
  for (const p of portList(def.inputs)) {
    if (!p?.stream) continue;
    if (p.type !== 'bytes') throw invalid(`node ${def.name} inputs: port "${p.name}" is read as a stream, so its type must be "bytes"`);
    out.add(p.name);
  }
  return out;
}

/** Turns a definition into the NodeSpec sent in Attach; throws MusterError(InvalidRequest). */
export function toNodeSpec(def: NodeDefinition): NodeSpec {
  if (!def || !validNodeName(def.name)) {
    throw invalid(`invalid node name ${JSON.stringify(def?.name)}: use [A-Za-z0-9_.:-], 1 to 128 characters`);
  }
  const t = def.timeoutMs ?? 0;
  if (!Number.isInteger(t) || t < 0) throw invalid(`node ${def.name}: timeoutMs must be a non-negative integer`);
  return {
    name: def.name,
    description: def.description ?? '',
    category: def.category ?? '',
    version: def.version ?? '',
    inputs: toPorts(def.inputs, `node ${def.name} inputs`),
    outputs: toPorts(def.outputs, `node ${def.name} outputs`),
    parameters: toPorts(def.parameters, `node ${def.name} parameters`),
    idempotent: !!def.idempotent,
    defaultTimeoutMs: BigInt(t),
    durable: !!def.durable,
  };
}

/**
 * Checks received values against declared ports, as every muster SDK does (PROTOCOL.md §5):
 * a port that is missing or null gets its default if it has one; a required port that is
 * missing is an InvalidRequest. Types are not checked (the declared type documents the port;
 * handlers check what they need). Values for undeclared names pass through unchanged.
 * Returns a plain object, or a Map when a plain object cannot keep the key order; `values`
 * itself when no port adds or refuses anything (a decoded payload already is such a value).
 */
/** Whether applyPorts has something to do for `port`: a default to apply, or a required port missing. */
function changes(values: Values, port: Port): boolean {
  const v = getKey(values, port.name);
  if ((v === undefined || v === null) && port.defaultValue !== undefined) return true;
  return port.required && !hasKey(values, port.name);
}

export function applyPorts(values: Values, ports: Port[], what: 'input' | 'parameter'): Values {
  if (!ports.some((port) => changes(values, port))) return values; // the common case: no copy
  const out = new Map(entriesOf(values));
  for (const port of ports) {
    const v = out.get(port.name);
    if ((v === undefined || v === null) && port.defaultValue !== undefined) {
      out.set(port.name, port.defaultValue);
    } else if (!out.has(port.name) && port.required) {
      throw invalid(`missing required ${what} '${port.name}'`);
    }
  }
  return mapFromEntries(out);
}
