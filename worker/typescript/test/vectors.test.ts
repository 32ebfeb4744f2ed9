// vectors.test.ts — the golden vectors of tests/vectors/ (format: tests/vectors/README.md).
// For every valid vector: the SDK decodes NAME.bin, and a field-by-field description of the
// buffer (read through the SDK's checked buffer, presence included) equals NAME.json strictly;
// the description built into a buffer with the SDK's own encoders decodes back to the same.
// For every invalid vector: the SDK's decoder refuses it with BadMessage.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import {
  ErrorCode,
  Float,
  EventKind,
  JobState,
  MusterError,
  type MusterMap,
  type MusterValue,
  type Values,
  decodeClientMessage,
  decodeClientReply,
  decodeDaemonMessage,
  decodeEnrollRequest,
  decodeEnrollResponse,
  decodeValue,
  decodeValues,
  decodeWorkerMessage,
  encodeClientMessage,
  encodeClientReply,
  encodeDaemonMessage,
  encodeEnrollRequest,
  encodeEnrollResponse,
  encodeValues,
  encodeWorkerMessage,
  entriesOf,
  errorCodeFromName,
  errorCodeName,
  fromJson,
  kindOf,
  toJson,
  valuesEqual,
} from '../src';
import { BufferError, CheckedByteBuffer, MESSAGE_MAX_DEPTH, MESSAGE_MAX_TABLES, openBuffer } from '../src/checked';
import { base64Decode, base64Encode } from '../src/json';
import { Value as WValue } from '../src/generated';
import { type Field, type Schema, camel, defaultOf, readSchema } from './schema';

const VECTORS = process.env.MUSTER_VECTORS_DIR || path.resolve(__dirname, '..', '..', '..', '..', 'tests', 'vectors');
const schema: Schema = readSchema();

type Root = 'WorkerMessage' | 'DaemonMessage' | 'ClientMessage' | 'ClientReply' | 'EnrollRequest' | 'EnrollResponse' | 'Values';

const DECODE: Record<Exclude<Root, 'Values'>, (b: Uint8Array) => unknown> = {
  WorkerMessage: decodeWorkerMessage,
  DaemonMessage: decodeDaemonMessage,
  ClientMessage: decodeClientMessage,
  ClientReply: decodeClientReply,
  EnrollRequest: decodeEnrollRequest,
  EnrollResponse: decodeEnrollResponse,
};
const ENCODE: Record<Exclude<Root, 'Values'>, (m: never) => Uint8Array> = {
  WorkerMessage: encodeWorkerMessage,
  DaemonMessage: encodeDaemonMessage,
  ClientMessage: encodeClientMessage,
  ClientReply: encodeClientReply,
  EnrollRequest: encodeEnrollRequest,
  EnrollResponse: encodeEnrollResponse,
};

const TOP_LEVEL = { maxDepth: MESSAGE_MAX_DEPTH };

// ---- buffer -> description (independent of the SDK's message decoders) ----------------------

/** JobState as the descriptions spell it (tests/vectors/README.md): the enumerator in capitals. */
function jobStateName(v: number): string | number {
  const name = JobState[v];
  return name === undefined ? v : name.toUpperCase();
}

function jobStateFromName(name: string): JobState {
  const key = (Object.keys(JobState) as (keyof typeof JobState)[]).find((k) => k.toUpperCase() === name);
  assert.ok(key !== undefined, `unknown job state ${name}`);
  return JobState[key];
}

/** EventKind as the descriptions spell it: NodeAdded -> NODE_ADDED. */
function eventKindName(v: number): string | number {
  const name = EventKind[v];
  return name === undefined ? v : name.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
}

function eventKindFromName(name: string): EventKind {
  const key = (Object.keys(EventKind) as (keyof typeof EventKind)[]).find(
    (k) => typeof EventKind[k] === 'number' && eventKindName(EventKind[k]) === name,
  );
  assert.ok(key !== undefined, `unknown event kind ${name}`);
  return EventKind[key];
}

function num(v: number | bigint): number | bigint {
  const n = typeof v === 'bigint' ? v : BigInt(v);
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

function asFloat(x: number): MusterValue {
  return Number.isSafeInteger(x) || Object.is(x, -0) ? new Float(x) : x;
}

function readScalar(bb: CheckedByteBuffer, pos: number, scalar: string): number | bigint | boolean {
  switch (scalar) {
    case 'bool': return bb.readUint8(pos) !== 0;
    case 'i8': return bb.readInt8(pos);
    case 'u8': return bb.readUint8(pos);
    case 'i16': return bb.readInt16(pos);
    case 'u16': return bb.readUint16(pos);
    case 'i32': return bb.readInt32(pos);
    case 'u32': return bb.readUint32(pos);
    case 'i64': return bb.readInt64(pos);
    case 'u64': return bb.readUint64(pos);
    case 'f32': return bb.readFloat32(pos);
    case 'f64': return bb.readFloat64(pos);
  }
  throw new Error(scalar);
}

function scalarDescription(f: Field, v: number | bigint | boolean): MusterValue {
  const t = f.type;
  if (t.kind === 'enum' && t.name === 'ErrorCode') return errorCodeName(Number(v));
  if (t.kind === 'enum' && t.name === 'JobState') return jobStateName(Number(v));
  if (t.kind === 'enum' && t.name === 'EventKind') return eventKindName(Number(v));
  if (t.kind === 'enum') return num(v as number);
  if (typeof v === 'boolean') return v;
  if (t.kind === 'scalar' && (t.scalar === 'f64' || t.scalar === 'f32')) return asFloat(v as number);
  return num(v);
}

function nestedDescription(bytes: Uint8Array): MusterValue {
  if (bytes.length === 0) throw new BufferError('present but empty nested buffer');
  return decodeValues(bytes);
}

/** Describes the table at `pos` following the README's rules. */
function describeTable(bb: CheckedByteBuffer, pos: number, table: string): MusterMap {
  const fields = schema.tables.get(table);
  if (!fields) throw new Error(`unknown table ${table}`);
  bb.enterTable();
  const out: MusterMap = {};
  for (const f of fields) {
    const voff = 4 + 2 * f.slot;
    const o = bb.__offset(pos, voff);
    const at = pos + o;
    const t = f.type;
    if (t.kind === 'scalar' || t.kind === 'enum') {
      out[f.name] = scalarDescription(f, o ? readScalar(bb, at, t.scalar) : defaultOf(schema, f));
      continue;
    }
    if (t.kind === 'union') {
      const typeOff = bb.__offset(pos, 4 + 2 * f.slot);
      const valueOff = bb.__offset(pos, 4 + 2 * (f.slot + 1));
      const member = typeOff ? bb.readUint8(pos + typeOff) : 0;
      if (member === 0) {
        if (valueOff) throw new BufferError(`${table}.${f.name}: a value with a NONE type`);
        continue;
      }
      const name = schema.unions.get(t.name)![member - 1];
      if (!name) throw new BufferError(`${table}.${f.name}: unknown member ${member}`);
      if (!valueOff) throw new BufferError(`${table}.${f.name}: ${name} without its table`);
      out[f.name] = { type: name, ...describeTable(bb, bb.__indirect(pos + valueOff), name) };
      continue;
    }
    if (!o) {
      if (f.required) throw new BufferError(`${table}.${f.name} is required`);
      continue;
    }
    if (t.kind === 'string') {
      out[f.name] = bb.__string(at) as string;
    } else if (t.kind === 'table') {
      const sub = bb.__indirect(at);
      out[f.name] = t.name === 'Value' ? decodeValue(new WValue().__init(sub, bb), bb) : describeTable(bb, sub, t.name);
    } else if (t.kind === 'vector') {
      const start = bb.__vector(at);
      const n = bb.__vector_len(at);
      const of = t.of;
      if (f.nested) {
        out[f.name] = nestedDescription(new Uint8Array(bb.bytes().subarray(start, start + n)));
      } else if (of.kind === 'table') {
        out[f.name] = Array.from({ length: n }, (_x, i) => describeTable(bb, bb.__indirect(start + 4 * i), of.name));
      } else if (of.kind === 'string') {
        out[f.name] = Array.from({ length: n }, (_x, i) => bb.__string(start + 4 * i) as string);
      } else if (of.kind === 'scalar' && of.scalar === 'u64') {
        out[f.name] = Array.from({ length: n }, (_x, i) => num(bb.readUint64(start + 8 * i)));
      } else if (of.kind === 'scalar' && of.scalar === 'u8') {
        // a [ubyte] that is not a nested payload (BatchItem.message): standard base64
        out[f.name] = base64Encode(new Uint8Array(bb.bytes().subarray(start, start + n)));
      } else {
        throw new Error(`${table}.${f.name}: vector type not handled by this test`);
      }
    }
  }
  bb.leaveTable();
  return out;
}

function describeBuffer(bytes: Uint8Array, root: Root): MusterValue {
  if (root === 'Values') return decodeValues(bytes, TOP_LEVEL);
  const { bb, root: pos } = openBuffer(bytes, schema.roots.get(root)!, MESSAGE_MAX_DEPTH, MESSAGE_MAX_TABLES);
  return describeTable(bb, pos, root);
}

// ---- description -> the SDK's message model --------------------------------------------------

function get(d: MusterMap, key: string): MusterValue {
  return Object.prototype.hasOwnProperty.call(d, key) ? d[key] : undefined;
}

function toModel(table: string, d: MusterMap): Record<string, unknown> {
  const fields = schema.tables.get(table)!;
  const known = new Set(fields.map((f) => f.name).concat('type'));
  for (const k of Object.keys(d)) assert.ok(known.has(k), `${table}: unknown field ${k}`);
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    const v = get(d, f.name);
    const key = camel(f.name);
    const t = f.type;
    if (t.kind === 'scalar' || t.kind === 'enum') {
      const x = v === undefined ? defaultOf(schema, f) : v;
      if (t.kind === 'enum' && t.name === 'ErrorCode') out[key] = typeof x === 'string' ? errorCodeFromName(x) : Number(x);
      else if (t.kind === 'enum' && t.name === 'JobState') out[key] = typeof x === 'string' ? jobStateFromName(x) : Number(x);
      else if (t.kind === 'enum' && t.name === 'EventKind') out[key] = typeof x === 'string' ? eventKindFromName(x) : Number(x);
      else if (t.scalar === 'bool') out[key] = x as boolean;
      else if (t.scalar === 'i64' || t.scalar === 'u64') out[key] = BigInt(x as number | bigint);
      else out[key] = Number(x as number);
    } else if (t.kind === 'string') {
      out[key] = v ?? '';
    } else if (t.kind === 'union') {
      const body = v as MusterMap;
      const type = body.type as string;
      const rest = { ...body };
      delete rest.type;
      out[key] = { type, ...toModel(type, rest) };
    } else if (t.kind === 'table') {
      if (t.name === 'Value') {
        if (v !== undefined) out[key] = v;
      } else {
        out[key] = v === undefined ? null : toModel(t.name, v as MusterMap);
      }
    } else if (t.kind === 'vector') {
      const of = t.of;
      if (f.nested) out[key] = v === undefined ? new Uint8Array(0) : encodeValues(v as Values);
      else if (of.kind === 'table') out[key] = ((v ?? []) as MusterMap[]).map((x) => toModel(of.name, x));
      else if (of.kind === 'scalar' && of.scalar === 'u64') out[key] = ((v ?? []) as (number | bigint)[]).map((x) => BigInt(x));
      else if (of.kind === 'scalar' && of.scalar === 'u8') out[key] = v === undefined ? null : base64Decode(v as string);
      else out[key] = v ?? [];
    }
  }
  // The SDK's message roots without a body wrapper keep their fields at the top.
  return out;
}

/** Compares two SDK models; nested payload bytes compare by the values they hold. */
function modelEqual(a: unknown, b: unknown, where = '$'): void {
  if (a instanceof Uint8Array && b instanceof Uint8Array && /\.(inputs|parameters|outputs|values)$/.test(where)) {
    assert.ok(valuesEqual(decodeValues(a), decodeValues(b)), `${where}: payloads differ`);
    return;
  }
  if (where.endsWith('.defaultValue')) {
    assert.ok(valuesEqual(a as MusterValue, b as MusterValue), `${where}: ${toJson(a as MusterValue)} != ${toJson(b as MusterValue)}`);
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    assert.equal(a.length, b.length, `${where}: lengths differ`);
    a.forEach((x, i) => modelEqual(x, b[i], `${where}[${i}]`));
    return;
  }
  if (a && b && typeof a === 'object' && typeof b === 'object' && !(a instanceof Uint8Array)) {
    assert.deepEqual(Object.keys(a), Object.keys(b), `${where}: fields differ`);
    for (const k of Object.keys(a)) modelEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${where}.${k}`);
    return;
  }
  assert.deepEqual(a, b, where);
}

/** Strict equality, except that an absent string/vector equals an empty one (the SDK writes ""/[] as it likes). */
function sameModuloPresence(a: MusterValue, b: MusterValue, where = '$'): void {
  const ka = kindOf(a);
  if (ka === 'map' && kindOf(b) === 'map' && !(a instanceof Map)) {
    const ea = new Map(entriesOf(a as Values));
    const eb = new Map(entriesOf(b as Values));
    const emptyish = (v: MusterValue) => v === '' || (Array.isArray(v) && v.length === 0);
    const keys = [...new Set([...ea.keys(), ...eb.keys()])];
    assert.deepEqual(
      [...ea.keys()].filter((k) => eb.has(k)),
      [...eb.keys()].filter((k) => ea.has(k)),
      `${where}: field order`,
    );
    for (const k of keys) {
      if (!ea.has(k)) assert.ok(emptyish(eb.get(k)), `${where}.${k} only on one side`);
      else if (!eb.has(k)) assert.ok(emptyish(ea.get(k)), `${where}.${k} only on one side`);
      else sameModuloPresence(ea.get(k), eb.get(k), `${where}.${k}`);
    }
    return;
  }
  if (ka === 'list' && Array.isArray(b)) {
    const la = a as MusterValue[];
    assert.equal(la.length, b.length, `${where}: lengths differ`);
    la.forEach((x, i) => sameModuloPresence(x, b[i], `${where}[${i}]`));
    return;
  }
  assert.ok(valuesEqual(a, b), `${where}: ${safeJson(a)} != ${safeJson(b)}`);
}

function safeJson(v: MusterValue): string {
  try {
    return toJson(v);
  } catch {
    return String(v);
  }
}

// ---- PROTOCOL.md §3 rule 3: a nested payload starts on an 8-byte boundary of its message ------
// Read with a few lines of raw FlatBuffers (not the SDK), so the check does not depend on the
// code it checks. Field indexes are positions in schema/*.fbs (a union takes two: type, table).

const BODY: Record<string, [number, number]> = { WorkerMessage: [1, 2], DaemonMessage: [0, 1], ClientMessage: [1, 2], ClientReply: [1, 2] };
const PAYLOADS: Record<string, [string, number][]> = {
  'WorkerMessage.4': [['Result.outputs', 1]],
  'DaemonMessage.2': [['WorkRequest.inputs', 2], ['WorkRequest.parameters', 3]],
  'ClientMessage.1': [['Submit.inputs', 1], ['Submit.parameters', 2]],
  'ClientReply.3': [['Result.outputs', 1]],
};

/** [field, offset of the payload's first byte] for each nested payload present in `buf`. */
function payloadOffsets(buf: Uint8Array, root: string): [string, number][] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const field = (table: number, index: number): number | undefined => {
    const vtable = table - dv.getInt32(table, true);
    const slot = 4 + 2 * index;
    if (slot >= dv.getUint16(vtable, true)) return undefined;
    const off = dv.getUint16(vtable + slot, true);
    return off ? table + off : undefined;
  };
  if (!(root in BODY)) return [];
  const table = dv.getUint32(0, true);
  const typePos = field(table, BODY[root][0]);
  const bodyPos = field(table, BODY[root][1]);
  if (typePos === undefined || bodyPos === undefined) return [];
  const body = bodyPos + dv.getUint32(bodyPos, true);
  const out: [string, number][] = [];
  for (const [name, index] of PAYLOADS[`${root}.${buf[typePos]}`] ?? []) {
    const pos = field(body, index);
    if (pos !== undefined) out.push([name, pos + dv.getUint32(pos, true) + 4]);
  }
  return out;
}

function misalignedPayloads(buf: Uint8Array, root: string): string[] {
  return payloadOffsets(buf, root)
    .filter(([, off]) => off % 8 !== 0)
    .map(([f, off]) => `${f} at offset ${off}`);
}

// ---- the tests -------------------------------------------------------------------------------

const names = fs.existsSync(VECTORS)
  ? fs.readdirSync(VECTORS).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort()
  : [];

describe('golden vectors', { skip: names.length === 0 ? `no vectors in ${VECTORS}` : false }, () => {
  it('covers every root type, valid and invalid', () => {
    const roots = new Set<string>();
    let invalid = 0;
    for (const name of names) {
      const desc = JSON.parse(fs.readFileSync(path.join(VECTORS, `${name}.json`), 'utf8')) as { root: string; valid?: boolean };
      roots.add(desc.root);
      if (desc.valid === false) invalid += 1;
    }
    for (const r of Object.keys(DECODE)) assert.ok(roots.has(r), `no vector for ${r}`);
    assert.ok(invalid > 0, 'no invalid vectors');
  });

  it('covers every member of every message union (admin commands included)', () => {
    const seen = new Set<string>();
    for (const name of names) {
      const desc = JSON.parse(fs.readFileSync(path.join(VECTORS, `${name}.json`), 'utf8')) as {
        root: string;
        valid?: boolean;
        message?: { body?: { type: string } };
      };
      if (desc.valid === false || !desc.message?.body) continue;
      seen.add(`${desc.root}.${desc.message.body.type}`);
    }
    const unions: Record<string, string> = {
      WorkerMessage: 'WorkerBody',
      DaemonMessage: 'DaemonBody',
      ClientMessage: 'ClientBody',
      ClientReply: 'ReplyBody',
    };
    for (const [root, union] of Object.entries(unions)) {
      for (const member of schema.unions.get(union)!) assert.ok(seen.has(`${root}.${member}`), `no vector for ${root}.${member}`);
    }
    for (const m of ['TokenCreate', 'TokenList', 'TokenRevoke', 'KeyList', 'KeyRevoke']) assert.ok(seen.has(`ClientMessage.${m}`));
    for (const m of ['TokenCreated', 'AdminReport']) assert.ok(seen.has(`ClientReply.${m}`));
    for (const m of ['JobResume', 'JobAck', 'JobGet', 'JobList', 'JobCancel']) assert.ok(seen.has(`ClientMessage.${m}`));
    for (const m of ['JobInfo', 'JobInfoList']) assert.ok(seen.has(`ClientReply.${m}`));
  });

  it('has many valid vectors with nested payloads (each checked for 8-byte alignment below)', () => {
    let withPayload = 0;
    for (const name of names) {
      const desc = JSON.parse(fs.readFileSync(path.join(VECTORS, `${name}.json`), 'utf8')) as { root: string; valid?: boolean };
      if (desc.valid === false) continue;
      if (payloadOffsets(new Uint8Array(fs.readFileSync(path.join(VECTORS, `${name}.bin`))), desc.root).length > 0) withPayload += 1;
    }
    assert.ok(withPayload >= 10, `only ${withPayload} valid vectors carry a nested payload`);
  });

  for (const name of names) {
    it(name, () => {
      const text = fs.readFileSync(path.join(VECTORS, `${name}.json`), 'utf8');
      const desc = fromJson(text, { exactIntegers: true }) as MusterMap;
      const root = desc.root as Root;
      const bytes = new Uint8Array(fs.readFileSync(path.join(VECTORS, `${name}.bin`)));
      assert.ok(root === 'Values' || root in DECODE, `unknown root ${root}`);

      if (desc.valid === false) {
        const refuse = () => (root === 'Values' ? decodeValues(bytes.length ? bytes : new Uint8Array(1), TOP_LEVEL) : DECODE[root](bytes));
        assert.throws(refuse, (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.BadMessage, `${name} must be refused: ${desc.why}`);
        return;
      }
      const message = desc.message as MusterValue;
      assert.deepEqual(misalignedPayloads(bytes, root), [], `${name}: nested payload off an 8-byte boundary (PROTOCOL.md §3 rule 3)`);

      // 1. The buffer, described, is the description; and the SDK decodes it to the same model.
      const described = describeBuffer(bytes, root);
      assert.ok(valuesEqual(described, message), `${name}: described as\n${safeJson(described)}\nexpected\n${safeJson(message)}`);

      if (root === 'Values') {
        // 2. Built again with the SDK's encoder, it decodes back the same.
        const again = decodeValues(encodeValues(message as Values, TOP_LEVEL), TOP_LEVEL);
        assert.ok(valuesEqual(again, message), `${name}: re-encoded values differ`);
        return;
      }
      const decoded = DECODE[root](bytes);
      const model = toModel(root, message as MusterMap);
      modelEqual(decoded, model);

      // 2. The description, encoded by the SDK, verifies, decodes and describes back the same.
      const encoded = ENCODE[root](model as never);
      assert.deepEqual(misalignedPayloads(encoded, root), [], `${name}: the SDK wrote a nested payload off an 8-byte boundary`);
      modelEqual(DECODE[root](encoded), model);
      sameModuloPresence(describeBuffer(encoded, root), message);
    });
  }
});
