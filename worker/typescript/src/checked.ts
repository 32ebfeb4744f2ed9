// checked.ts — a bounds-checking flatbuffers ByteBuffer: the TypeScript stand-in for the
// FlatBuffers Verifier, which the JS runtime lacks.
// Owns: the rule that every read of a received buffer is in bounds and aligned, every offset
// points forward inside the buffer, every string is NUL-terminated valid UTF-8, and how much
// structure a buffer may contain (depth, table count), with the C++ Verifier's limits.
// Must never: let a read outside the buffer return garbage silently: it throws BufferError,
// which the decoders turn into a BadMessage.
import * as flatbuffers from 'flatbuffers';

/** Thrown by CheckedByteBuffer on any malformed access. */
export class BufferError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BufferError';
  }
}

/** FLATBUFFERS_MIN_BUFFER_SIZE of the C++ library: root offset, vtable offset, two voffsets. */
export const MIN_BUFFER_SIZE = 12;
/** The C++ Verifier's default limits, which are what apply to nested `Values` buffers. */
export const MAX_DEPTH = 64;
export const MAX_TABLES = 1_000_000;
/** The limits muster's C++ programs use for whole messages (schema/include/muster/messages.hpp). */
export const MESSAGE_MAX_DEPTH = 128;
export const MESSAGE_MAX_TABLES = 10_000_000;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export class CheckedByteBuffer extends flatbuffers.ByteBuffer {
  private readonly size: number;
  private readonly view: Uint8Array;
  /** Tables decoded so far, and the current nesting depth (maintained by the decoders). */
  tables = 0;
  depth = 0;
  readonly maxDepth: number;
  readonly maxTables: number;

  constructor(bytes: Uint8Array, maxDepth = MAX_DEPTH, maxTables = MAX_TABLES) {
    super(bytes);
    this.view = bytes;
    this.size = bytes.length;
    this.maxDepth = maxDepth;
    this.maxTables = maxTables;
  }

  private check(offset: number, size: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset + size > this.size) {
      throw new BufferError(`read of ${size} bytes at ${offset} is outside the ${this.size}-byte buffer`);
    }
    if (size > 1 && offset % size !== 0) {
      throw new BufferError(`misaligned ${size}-byte read at ${offset}`);
    }
  }

  override readInt8(offset: number): number {
    this.check(offset, 1);
    return super.readInt8(offset);
  }
  override readUint8(offset: number): number {
    this.check(offset, 1);
    return super.readUint8(offset);
  }
  override readInt16(offset: number): number {
    this.check(offset, 2);
    return super.readInt16(offset);
  }
  override readUint16(offset: number): number {
    this.check(offset, 2);
    return super.readUint16(offset);
  }
  override readInt32(offset: number): number {
    this.check(offset, 4);
    return super.readInt32(offset);
  }
  override readUint32(offset: number): number {
    this.check(offset, 4);
    return super.readUint32(offset);
  }
  override readInt64(offset: number): bigint {
    this.check(offset, 8);
    return super.readInt64(offset);
  }
  override readUint64(offset: number): bigint {
    this.check(offset, 8);
    return super.readUint64(offset);
  }
  override readFloat32(offset: number): number {
    this.check(offset, 4);
    return super.readFloat32(offset);
  }
  override readFloat64(offset: number): number {
    this.check(offset, 8);
    return super.readFloat64(offset);
  }

  /** A vtable lookup that checks the table's vtable before trusting it. */
  override __offset(bb_pos: number, vtable_offset: number): number {
    const vtable = bb_pos - this.readInt32(bb_pos);
    const vsize = this.readUint16(vtable);
    if (vsize < 4 || (vsize & 1) !== 0 || vtable + vsize > this.size) {
      throw new BufferError(`bad vtable at ${vtable}`);
    }
    return vtable_offset < vsize ? this.readUint16(vtable + vtable_offset) : 0;
  }

  /** Follows a uoffset: it must be non-zero, not wrap, and land inside the buffer. */
  override __indirect(offset: number): number {
    const o = this.readUint32(offset);
    if (o === 0 || o > 0x7fffffff) throw new BufferError(`bad offset ${o} at ${offset}`);
    const target = offset + o;
    if (target >= this.size) throw new BufferError(`offset at ${offset} points outside the buffer`);
    return target;
  }

  override __union(t: flatbuffers.Table, offset: number): flatbuffers.Table {
    t.bb_pos = this.__indirect(offset);
    t.bb = this;
    return t;
  }

  private vectorAt(offset: number): { start: number; length: number } {
    const p = this.__indirect(offset);
    const length = this.readUint32(p);
    if (length > this.size - p - 4) throw new BufferError(`vector at ${p} is longer than the buffer`);
    return { start: p + 4, length };
  }

  override __vector(offset: number): number {
    return this.vectorAt(offset).start;
  }

  override __vector_len(offset: number): number {
    return this.vectorAt(offset).length;
  }

  override __string(offset: number, opt_encoding?: flatbuffers.Encoding): string | Uint8Array {
    const { start, length } = this.vectorAt(offset);
    if (start + length >= this.size || this.view[start + length] !== 0) {
      throw new BufferError(`string at ${start} is not NUL-terminated`);
    }
    const bytes = this.view.subarray(start, start + length);
    if (opt_encoding === flatbuffers.Encoding.UTF8_BYTES) return bytes;
    try {
      return utf8.decode(bytes);
    } catch {
      throw new BufferError(`string at ${start} is not valid UTF-8`);
    }
  }

  /** Called by decoders on entering a table: enforces the depth and table-count limits. */
  enterTable(): void {
    this.tables += 1;
    this.depth += 1;
    if (this.depth > this.maxDepth) throw new BufferError(`nested deeper than ${this.maxDepth} tables`);
    if (this.tables > this.maxTables) throw new BufferError(`more than ${this.maxTables} tables`);
  }
  leaveTable(): void {
    this.depth -= 1;
  }
}

/**
 * Opens a received buffer: checks its size and file identifier (when given) and returns the
 * checked buffer and the position of its root table.
 */
export function openBuffer(
  bytes: Uint8Array,
  identifier: string | null,
  maxDepth = MAX_DEPTH,
  maxTables = MAX_TABLES,
): { bb: CheckedByteBuffer; root: number } {
  if (!(bytes instanceof Uint8Array)) throw new BufferError('not a byte buffer');
  if (bytes.length < MIN_BUFFER_SIZE) throw new BufferError(`buffer of ${bytes.length} bytes is too short`);
  if (bytes.length > 0x7fffffff) throw new BufferError('buffer is too large');
  const bb = new CheckedByteBuffer(bytes, maxDepth, maxTables);
  if (identifier !== null && !bb.__has_identifier(identifier)) {
    const got = Array.from(bytes.subarray(4, 8), (c) => (c >= 32 && c < 127 ? String.fromCharCode(c) : '?')).join('');
    throw new BufferError(`wrong file identifier "${got}", expected "${identifier}"`);
  }
  const root = bb.__indirect(0);
  return { bb, root };
}

