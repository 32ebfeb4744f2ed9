// value.ts — muster Values in JavaScript and their FlatBuffers encoding (schema/value.fbs,
// PROTOCOL.md §4).
// Owns: the mapping between JS values and the wire's Value kinds, and nested `Values` buffers
// ("MSVL").
// Must never: change a value's kind or content on a round trip: int64 stays exact, an integral
// Float stays Float, bytes stay bytes, map order is kept.
//
// The mapping (wire kind -> JS when decoding; JS -> wire kind when encoding):
//
//   Null   <-> null (undefined also encodes as Null)
//   Bool   <-> boolean
//   Int    <-> number when it is a safe integer (|n| <= 2^53 - 1), else bigint.
//              Encoding: a bigint, or a number that is a safe integer (and not -0), is an Int.
//   Float  <-> number; an integral Float (1.0, -0.0, 2^52) decodes as a `Float` wrapper so
//              that it encodes back as Float. Encoding: any other number (fraction, NaN,
//              Infinity, beyond 2^53), or `new Float(x)` / `float(x)`, is a Float.
//   String <-> string
//   Bytes  <-> Uint8Array (a Buffer or ArrayBuffer also encodes as Bytes); decoded bytes are copies
//   List   <-> Array
//   Map    <-> plain object, in key order. A map whose order a plain object cannot keep (keys that
//              look like array indices, such as "1", are iterated first by JS) decodes as a
//              `Map<string, MusterValue>`; Maps also encode as Map.
//   Error  <-> ErrorValue {code, message}
//   Chunked <-> ChunkedValue {stream, size: bigint, sha256}: a reference to bytes that travel as
//              chunks of one of the call's streams (PROTOCOL.md §7.9). The client and worker
//              chunk and reassemble the bytes (chunks.ts); the reference reaches an application
//              only for a streamed input port (ctx.inputs) and in the codec.
import * as flatbuffers from 'flatbuffers';

import { takeBuilder, finishBuilder } from './builder-pool';
import { BufferError, CheckedByteBuffer, MAX_DEPTH, openBuffer } from './checked';
import { ErrorCode, MusterError, badMessage } from './errors';
import { Entry, Value as WValue, ValueKind, Values as WValues } from './generated';

/** Forces the Float kind for a number (e.g. `new Float(2)` is Float 2.0, not Int 2). */
export class Float {
  readonly value: number;
  constructor(value: number) {
    if (typeof value !== 'number') throw new TypeError('Float needs a number');
    this.value = value;
  }
  valueOf(): number {
    return this.value;
  }
  toString(): string {
    return String(this.value);
  }
  toJSON(): number {
    return this.value;
  }
}

/** Shorthand for `new Float(x)`. */
export function float(value: number): Float {
  return new Float(value);
}

/** The Error kind of Value: an error carried as data ({"$error": {code, message}} in JSON). */
export class ErrorValue {
  readonly code: string;
  readonly message: string;
  constructor(code: string, message: string) {
    this.code = String(code);
    this.message = String(message);
  }
}

const UINT32_MAX = 2 ** 32 - 1;
const UINT64_MAX = 2n ** 64n - 1n;

/**
 * The Chunked kind of Value (PROTOCOL.md §7.9): `size` bytes whose SHA-256 is `sha256` travel as
 * Chunk messages of the call's stream `stream` (odd: the caller's, even: the worker's).
 * {"$chunked": {"stream", "size", "sha256": hex}} in JSON.
 */
export class ChunkedValue {
  readonly stream: number;
  readonly size: bigint;
  readonly sha256: Uint8Array;
  constructor(stream: number, size: bigint | number, sha256: Uint8Array) {
    if (!Number.isInteger(stream) || stream < 1 || stream > UINT32_MAX)
      throw new TypeError(`a chunked value's stream must be 1..${UINT32_MAX}, not ${stream}`);
    const n = typeof size === 'bigint' ? size : Number.isSafeInteger(size) ? BigInt(size) : -1n;
    if (n < 0n || n > UINT64_MAX) throw new TypeError(`a chunked value's size must be 0..${UINT64_MAX}, not ${size}`);
    if (!(sha256 instanceof Uint8Array) || sha256.length !== 32)
      throw new TypeError("a chunked value's sha256 must be 32 bytes");
    this.stream = stream;
    this.size = n;
    this.sha256 = sha256.slice();
  }
}

/** A JS value that encodes as a muster Value. */
export type MusterValue =
  | null
  | undefined
  | boolean
  | number
  | bigint
  | Float
  | string
  | Uint8Array
  | ErrorValue
  | ChunkedValue
  | MusterValue[]
  | MusterMap
  | Map<string, MusterValue>;

export interface MusterMap {
  [key: string]: MusterValue;
}

/** A named set of values: inputs, outputs, parameters. */
export type Values = MusterMap | Map<string, MusterValue>;

export type Kind = 'null' | 'bool' | 'int' | 'float' | 'string' | 'bytes' | 'list' | 'map' | 'error' | 'chunked';

export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;
const SAFE_MIN = BigInt(Number.MIN_SAFE_INTEGER);
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** The wire kind a JS value encodes as; throws TypeError for what has no muster form. */
export function kindOf(v: unknown): Kind {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'boolean':
      return 'bool';
    case 'number':
      return Number.isSafeInteger(v) && !Object.is(v, -0) ? 'int' : 'float';
    case 'bigint':
      return 'int';
    case 'string':
      return 'string';
    case 'object':
      if (v instanceof Float) return 'float';
      if (v instanceof Uint8Array || v instanceof ArrayBuffer) return 'bytes';
      if (Array.isArray(v)) return 'list';
      if (v instanceof Map) return 'map';
      if (v instanceof ErrorValue) return 'error';
      if (v instanceof ChunkedValue) return 'chunked';
      if (isPlainObject(v)) return 'map';
      throw new TypeError(`a ${v.constructor?.name ?? 'object'} has no muster value form`);
    default:
      throw new TypeError(`a ${typeof v} has no muster value form`);
  }
}

/** Entries of a map value in order, whether a Map or a plain object. */
export function entriesOf(m: Values): [string, MusterValue][] {
  if (m instanceof Map) {
    const out: [string, MusterValue][] = [];
    for (const [k, v] of m) {
      if (typeof k !== 'string') throw new TypeError(`map keys must be strings, got a ${typeof k}`);
      out.push([k, v]);
    }
    return out;
  }
  return Object.keys(m).map((k) => [k, (m as MusterMap)[k]]);
}

/** Reads one key of a map value (Map or plain object). */
export function getKey(m: Values, key: string): MusterValue {
  if (m instanceof Map) return m.get(key);
  return Object.prototype.hasOwnProperty.call(m, key) ? (m as MusterMap)[key] : undefined;
}

export function hasKey(m: Values, key: string): boolean {
  return m instanceof Map ? m.has(key) : Object.prototype.hasOwnProperty.call(m, key);
}

/** Sets a key on a plain object safely (a key "__proto__" becomes an own property). */
export function setOwn(obj: MusterMap, key: string, value: MusterValue): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

/**
 * Builds the JS form of a map from ordered entries: a plain object when it keeps the order,
 * else a Map. Duplicate keys keep the first position and the last value (like the C++ SDK).
 */
export function mapFromEntries(entries: Iterable<[string, MusterValue]>): MusterMap | Map<string, MusterValue> {
  const m = new Map<string, MusterValue>();
  for (const [k, v] of entries) m.set(k, v);
  const obj: MusterMap = {};
  for (const [k, v] of m) setOwn(obj, k, v);
  const keys = Object.keys(obj);
  let i = 0;
  for (const k of m.keys()) {
    if (keys[i++] !== k) return m;
  }
  return obj;
}

// ---- encoding --------------------------------------------------------------------------

const textEncoder = new TextEncoder();

/**
 * Writes a [ubyte] vector in one copy (the 2.0 runtime has no createByteVector), its data on a
 * multiple of `alignment` (8 for a nested Values payload: PROTOCOL.md §3 rule 3).
 */
export function createByteVector(b: flatbuffers.Builder, data: Uint8Array, alignment = 1): flatbuffers.Offset {
  b.startVector(1, data.length, alignment);
  const inner = b as unknown as { space: number; bb: flatbuffers.ByteBuffer };
  inner.space -= data.length;
  inner.bb.bytes().set(data, inner.space);
  return b.endVector();
}

/** Writes a string; a string that is not valid UTF-16 (lone surrogates) is refused. */
export function createString(b: flatbuffers.Builder, s: string): flatbuffers.Offset {
  if (typeof s !== 'string') throw new TypeError(`expected a string, got ${typeof s}`);
  if (!s.isWellFormed()) throw new TypeError('string contains a lone surrogate: it has no UTF-8 form');
  return b.createString(textEncoder.encode(s));
}

function invalid(message: string): MusterError {
  return new MusterError(ErrorCode.InvalidRequest, message);
}

/**
 * `depth` counts tables on the path like the FlatBuffers Verifier does; more than `maxDepth`
 * would fail the receiver's verification, so it is refused here.
 */
export function encodeValue(
  b: flatbuffers.Builder,
  v: MusterValue,
  depth = 1,
  path = '$',
  maxDepth = MAX_DEPTH,
): flatbuffers.Offset {
  if (depth > maxDepth) throw invalid(`${path}: value nested deeper than the wire allows (${maxDepth} tables)`);
  let kind: Kind;
  try {
    kind = kindOf(v);
  } catch (e) {
    throw invalid(`${path}: ${(e as Error).message}`);
  }
  switch (kind) {
    case 'null':
      WValue.startValue(b);
      return WValue.endValue(b);
    case 'bool':
      WValue.startValue(b);
      WValue.addKind(b, ValueKind.Bool);
      WValue.addBoolValue(b, v as boolean);
      return WValue.endValue(b);
    case 'int': {
      const i = typeof v === 'bigint' ? v : BigInt(v as number);
      if (i < INT64_MIN || i > INT64_MAX) throw invalid(`${path}: ${i} is outside the int64 range`);
      WValue.startValue(b);
      WValue.addKind(b, ValueKind.Int);
      WValue.addIntValue(b, i);
      return WValue.endValue(b);
    }
    case 'float': {
      const f = v instanceof Float ? v.value : (v as number);
      WValue.startValue(b);
      WValue.addKind(b, ValueKind.Float);
      // Forced: default elision compares with ==, which would drop -0.0 (it equals 0.0).
      b.forceDefaults(true);
      WValue.addFloatValue(b, f);
      b.forceDefaults(false);
      return WValue.endValue(b);
    }
    case 'string': {
      let s: flatbuffers.Offset;
      try {
        s = createString(b, v as string);
      } catch (e) {
        throw invalid(`${path}: ${(e as Error).message}`);
      }
      WValue.startValue(b);
      WValue.addKind(b, ValueKind.String);
      WValue.addStringValue(b, s);
      return WValue.endValue(b);
    }
    case 'bytes': {
      const bytes = v instanceof ArrayBuffer ? new Uint8Array(v) : (v as Uint8Array);
      const data = createByteVector(b, bytes);
      WValue.startValue(b);
      WValue.addKind(b, ValueKind.Bytes);
      WValue.addBytesValue(b, data);
      return WValue.endValue(b);
    }
    case 'list': {
      const list = v as MusterValue[];
      const items = list.map((item, i) => encodeValue(b, item, depth + 1, `${path}[${i}]`, maxDepth));
      const vec = WValue.createListValueVector(b, items);
      WValue.startValue(b);
      WValue.addKind(b, ValueKind.List);
      WValue.addListValue(b, vec);
      return WValue.endValue(b);
    }
    case 'map': {
      const vec = encodeEntries(b, v as Values, depth + 1, path, maxDepth);
      WValue.startValue(b);
      WValue.addKind(b, ValueKind.Map);
      WValue.addMapValue(b, vec);
      return WValue.endValue(b);
    }
    case 'error': {
      const e = v as ErrorValue;
      const code = createString(b, e.code);
      const msg = createString(b, e.message);
      WValue.startValue(b);
      WValue.addKind(b, ValueKind.Error);
      WValue.addErrorCode(b, code);
      WValue.addErrorMessage(b, msg);
      return WValue.endValue(b);
    }
    case 'chunked': {
      const c = v as ChunkedValue;
      const sha = createByteVector(b, c.sha256);
      WValue.startValue(b);
      WValue.addKind(b, ValueKind.Chunked);
      WValue.addChunkedStream(b, c.stream);
      WValue.addChunkedSize(b, c.size);
      WValue.addChunkedSha256(b, sha);
      return WValue.endValue(b);
    }
  }
}

/** A vector of Entry tables; `depth` is the depth of the entries. */
export function encodeEntries(
  b: flatbuffers.Builder,
  m: Values,
  depth = 2,
  path = '$',
  maxDepth = MAX_DEPTH,
): flatbuffers.Offset {
  if (depth > maxDepth) throw invalid(`${path}: value nested deeper than the wire allows (${maxDepth} tables)`);
  let entries: [string, MusterValue][];
  try {
    entries = entriesOf(m);
  } catch (e) {
    throw invalid(`${path}: ${(e as Error).message}`);
  }
  const offsets = entries.map(([k, v]) => {
    const sub = `${path}.${k}`;
    let key: flatbuffers.Offset;
    try {
      key = createString(b, k);
    } catch (e) {
      throw invalid(`${sub}: key: ${(e as Error).message}`);
    }
    const value = encodeValue(b, v, depth + 1, sub, maxDepth);
    Entry.startEntry(b);
    Entry.addKey(b, key);
    Entry.addValue(b, value);
    return Entry.endEntry(b);
  });
  return WValues.createEntriesVector(b, offsets);
}

export interface ValuesBufferOptions {
  /**
   * Tables a buffer may nest. 64 (the default) for payloads nested in messages, which
   * receivers verify with the FlatBuffers Verifier's default limit; 128 for a standalone
   * top-level Values buffer (MESSAGE_MAX_DEPTH).
   */
  maxDepth?: number;
}

/** A complete, separately finished `Values` buffer (identifier MSVL), as nested in messages. */
export function encodeValues(m: Values | null | undefined, options: ValuesBufferOptions = {}): Uint8Array {
  const values = m ?? {};
  if (typeof values !== 'object' || Array.isArray(values) || kindOfSafe(values) !== 'map') {
    throw invalid('values must be a map (a plain object or a Map)');
  }
  const b = takeBuilder(256);
  const entries = encodeEntries(b, values, 2, '$', options.maxDepth ?? MAX_DEPTH);
  WValues.startValues(b);
  WValues.addEntries(b, entries);
  return finishBuilder(b, WValues.endValues(b), 'MSVL');
}

function kindOfSafe(v: unknown): Kind | undefined {
  try {
    return kindOf(v);
  } catch {
    return undefined;
  }
}

// ---- decoding --------------------------------------------------------------------------

function str(s: string | null): string {
  return s ?? '';
}

/** Reads a Value table (already positioned); a null table reads as null. */
export function decodeValue(v: WValue | null, bb: CheckedByteBuffer): MusterValue {
  if (v === null) return null;
  bb.enterTable();
  try {
    switch (v.kind()) {
      case ValueKind.Null:
        return null;
      case ValueKind.Bool:
        return v.boolValue();
      case ValueKind.Int: {
        const i = v.intValue();
        return i >= SAFE_MIN && i <= SAFE_MAX ? Number(i) : i;
      }
      case ValueKind.Float: {
        const f = v.floatValue();
        return Number.isSafeInteger(f) || Object.is(f, -0) ? new Float(f) : f;
      }
      case ValueKind.String:
        return str(v.stringValue());
      case ValueKind.Bytes: {
        const a = v.bytesValueArray();
        return a ? a.slice() : new Uint8Array(0);
      }
      case ValueKind.List: {
        const n = v.listValueLength();
        const out: MusterValue[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = decodeValue(v.listValue(i), bb);
        return out;
      }
      case ValueKind.Map: {
        const n = v.mapValueLength();
        const entries: [string, MusterValue][] = [];
        for (let i = 0; i < n; i++) entries.push(decodeEntry(v.mapValue(i), bb));
        return mapFromEntries(entries);
      }
      case ValueKind.Error:
        return new ErrorValue(str(v.errorCode()), str(v.errorMessage()));
      case ValueKind.Chunked: {
        const sha = v.chunkedSha256Array();
        try {
          return new ChunkedValue(v.chunkedStream(), v.chunkedSize(), sha ?? new Uint8Array(0));
        } catch (e) {
          throw new BufferError((e as Error).message);
        }
      }
      default:
        // An unknown kind from a newer writer reads as null rather than failing the message.
        return null;
    }
  } finally {
    bb.leaveTable();
  }
}

function decodeEntry(e: Entry | null, bb: CheckedByteBuffer): [string, MusterValue] {
  if (e === null) throw new BufferError('null entry');
  bb.enterTable();
  try {
    const key = e.key();
    if (key === null) throw new BufferError('map entry without its required key');
    return [key, decodeValue(e.value(), bb)];
  } finally {
    bb.leaveTable();
  }
}

/** Reads the entries of a `Values` table. */
export function decodeValuesTable(v: WValues, bb: CheckedByteBuffer): Values {
  bb.enterTable();
  try {
    const n = v.entriesLength();
    const entries: [string, MusterValue][] = [];
    for (let i = 0; i < n; i++) entries.push(decodeEntry(v.entries(i), bb));
    return mapFromEntries(entries);
  } finally {
    bb.leaveTable();
  }
}

/**
 * Decodes a nested `Values` buffer. Empty (or absent) input is an empty map. The MSVL
 * identifier is optional (PROTOCOL.md §3 rule 3). Throws MusterError(BadMessage) if the bytes
 * are not a valid Values buffer.
 */
export function decodeValues(bytes: Uint8Array | null | undefined, options: ValuesBufferOptions = {}): Values {
  if (!bytes || bytes.length === 0) return {};
  try {
    const { bb, root } = openBuffer(bytes, null, options.maxDepth ?? MAX_DEPTH);
    const values = new WValues().__init(root, bb);
    return decodeValuesTable(values, bb);
  } catch (e) {
    if (e instanceof MusterError) throw e;
    throw badMessage(`payload is not a valid muster Values buffer: ${(e as Error).message}`, e);
  }
}

/** Deep equality of two muster values, kind included (Int 1 != Float 1.0; map order matters). */
export function valuesEqual(a: MusterValue, b: MusterValue): boolean {
  const ka = kindOf(a);
  const kb = kindOf(b);
  if (ka !== kb) return false;
  switch (ka) {
    case 'null':
      return true;
    case 'bool':
    case 'string':
      return a === b;
    case 'int':
      return BigInt(a as number | bigint) === BigInt(b as number | bigint);
    case 'float':
      return Object.is(Number(a), Number(b));
    case 'bytes': {
      const x = a instanceof ArrayBuffer ? new Uint8Array(a) : (a as Uint8Array);
      const y = b instanceof ArrayBuffer ? new Uint8Array(b) : (b as Uint8Array);
      return x.length === y.length && x.every((c, i) => c === y[i]);
    }
    case 'list': {
      const x = a as MusterValue[];
      const y = b as MusterValue[];
      return x.length === y.length && x.every((item, i) => valuesEqual(item, y[i]));
    }
    case 'map': {
      const x = entriesOf(a as Values);
      const y = entriesOf(b as Values);
      return x.length === y.length && x.every(([k, v], i) => k === y[i]![0] && valuesEqual(v, y[i]![1]));
    }
    case 'error': {
      const x = a as ErrorValue;
      const y = b as ErrorValue;
      return x.code === y.code && x.message === y.message;
    }
    case 'chunked': {
      const x = a as ChunkedValue;
      const y = b as ChunkedValue;
      return x.stream === y.stream && x.size === y.size && x.sha256.every((c, i) => c === y.sha256[i]);
    }
  }
}
