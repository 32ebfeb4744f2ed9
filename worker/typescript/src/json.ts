// json.ts — the JSON form of muster values (PROTOCOL.md §4): text in, text out.
// Owns: reading and writing JSON so that Int and Float stay apart (`1` is Int, `1.0` is Float),
// int64 stays exact (JSON.parse would round 9223372036854775807), bytes are {"$bytes": base64}
// errors {"$error": {"code", "message"}} and chunked values {"$chunked": {"stream", "size", "sha256"}}.
// Must never: write a Float that reads back as an Int, or accept JSON it cannot map exactly
// (non-finite floats have no JSON form).
import { ChunkedValue, ErrorValue, Float, INT64_MAX, INT64_MIN, type MusterValue, type Values, entriesOf, kindOf, mapFromEntries } from './value';

// ---- base64 (standard alphabet, padded, strict) ------------------------------------------

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function base64Encode(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** Throws SyntaxError on anything but padded standard base64. */
export function base64Decode(s: string): Uint8Array {
  if (s.length % 4 !== 0) throw new SyntaxError('base64 length is not a multiple of 4');
  if (!B64.test(s)) throw new SyntaxError('invalid base64');
  return new Uint8Array(Buffer.from(s, 'base64'));
}

// ---- writing ---------------------------------------------------------------------------

/** The JSON text of a float: always with a fraction or exponent, so it reads back as Float. */
export function formatFloat(f: number): string {
  if (!Number.isFinite(f)) throw new RangeError('a non-finite float has no JSON form');
  if (Object.is(f, -0)) return '-0.0';
  const s = String(f);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

function write(v: MusterValue, indent: string, level: number, out: string[], path: string): void {
  const kind = kindOf(v);
  const nl = indent ? '\n' + indent.repeat(level + 1) : '';
  const close = indent ? '\n' + indent.repeat(level) : '';
  const colon = indent ? ': ' : ':';
  switch (kind) {
    case 'null':
      out.push('null');
      return;
    case 'bool':
      out.push(v ? 'true' : 'false');
      return;
    case 'int':
      out.push(typeof v === 'bigint' ? v.toString() : String(v));
      return;
    case 'float':
      try {
        out.push(formatFloat(v instanceof Float ? v.value : (v as number)));
      } catch (e) {
        throw new RangeError(`${path}: ${(e as Error).message}`);
      }
      return;
    case 'string':
      out.push(JSON.stringify(v));
      return;
    case 'bytes': {
      const bytes = v instanceof ArrayBuffer ? new Uint8Array(v) : (v as Uint8Array);
      out.push(`{${JSON.stringify('$bytes')}${colon}${JSON.stringify(base64Encode(bytes))}}`);
      return;
    }
    case 'list': {
      const list = v as MusterValue[];
      if (list.length === 0) {
        out.push('[]');
        return;
      }
      out.push('[');
      list.forEach((item, i) => {
        if (i > 0) out.push(',');
        out.push(nl);
        write(item, indent, level + 1, out, `${path}[${i}]`);
      });
      out.push(close, ']');
      return;
    }
    case 'map': {
      const entries = entriesOf(v as Values);
      if (entries.length === 0) {
        out.push('{}');
        return;
      }
      out.push('{');
      entries.forEach(([k, item], i) => {
        if (i > 0) out.push(',');
        out.push(nl, JSON.stringify(k), colon);
        write(item, indent, level + 1, out, `${path}.${k}`);
      });
      out.push(close, '}');
      return;
    }
    case 'error': {
      const e = v as ErrorValue;
      out.push(
        `{"$error"${colon}{"code"${colon}${JSON.stringify(e.code)},${indent ? ' ' : ''}"message"${colon}${JSON.stringify(e.message)}}}`,
      );
      return;
    }
    case 'chunked': {
      const c = v as ChunkedValue;
      const sp = indent ? ' ' : '';
      const hex = Array.from(c.sha256, (x) => x.toString(16).padStart(2, '0')).join('');
      out.push(
        `{"$chunked"${colon}{"stream"${colon}${c.stream},${sp}"size"${colon}${c.size},${sp}"sha256"${colon}"${hex}"}}`,
      );
      return;
    }
  }
}

/** {"stream", "size", "sha256": 64 lowercase hex digits}, nothing else (as the C++ reader). */
function chunkedFromJson(v: Values, path: string): ChunkedValue {
  const fields = new Map(entriesOf(v));
  const stream = fields.get('stream');
  const size = fields.get('size');
  const sha = fields.get('sha256');
  if (fields.size !== 3 || stream === undefined || size === undefined || sha === undefined)
    throw new SyntaxError(`${path}: $chunked: expected exactly stream, size and sha256`);
  if (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha))
    throw new SyntaxError(`${path}: $chunked: sha256 must be 64 lowercase hex digits`);
  if (kindOf(stream) !== 'int' || kindOf(size) !== 'int')
    throw new SyntaxError(`${path}: $chunked: stream and size must be integers`);
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = parseInt(sha.slice(2 * i, 2 * i + 2), 16);
  try {
    return new ChunkedValue(Number(stream as number | bigint), BigInt(size as number | bigint), bytes);
  } catch (e) {
    throw new SyntaxError(`${path}: $chunked: ${(e as Error).message}`);
  }
}

/**
 * The JSON text of a value. `indent` (a number of spaces or a string) pretty-prints.
 * Throws RangeError for non-finite floats and TypeError for JS values with no muster form.
 */
export function toJson(v: MusterValue, indent?: number | string): string {
  const ind = typeof indent === 'number' ? ' '.repeat(indent) : (indent ?? '');
  const out: string[] = [];
  write(v, ind, 0, out, '$');
  return out.join('');
}

// ---- reading ---------------------------------------------------------------------------

/**
 * JSON may nest arrays and objects at most this deep (the outermost counts as 1), as in the C++
 * and Python SDKs (PROTOCOL.md §10): deeper than any value a Values buffer carries.
 */
export const MAX_JSON_DEPTH = 128;

export interface FromJsonOptions {
  /**
   * Read every integer literal as an integer (a number when safe, else a bigint), even beyond
   * the int64 range. For documents that are not muster values (such as the golden vectors'
   * descriptions, with uint64 fields); a value read this way may not encode.
   */
  exactIntegers?: boolean;
}

class Parser {
  private i = 0;
  constructor(
    private readonly s: string,
    private readonly options: FromJsonOptions = {},
  ) {}

  fail(msg: string): never {
    throw new SyntaxError(`invalid JSON at offset ${this.i}: ${msg}`);
  }

  ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else break;
    }
  }

  parseDocument(): MusterValue {
    this.ws();
    const v = this.value('$', 0);
    this.ws();
    if (this.i !== this.s.length) this.fail('unexpected text after the value');
    return v;
  }

  value(path: string, depth: number): MusterValue {
    this.ws();
    const c = this.s[this.i];
    // `depth` containers enclose this value: one more is too many beyond MAX_JSON_DEPTH.
    if ((c === '{' || c === '[') && depth >= MAX_JSON_DEPTH) this.fail(`nested deeper than ${MAX_JSON_DEPTH} levels`);
    switch (c) {
      case '{':
        return this.object(path, depth);
      case '[':
        return this.array(path, depth);
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
        return this.fail(c === undefined ? 'unexpected end' : `unexpected character ${JSON.stringify(c)}`);
    }
  }

  literal<T extends MusterValue>(word: string, v: T): T {
    if (this.s.startsWith(word, this.i)) {
      this.i += word.length;
      return v;
    }
    return this.fail(`expected ${word}`);
  }

  number(): MusterValue {
    const m = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
    m.lastIndex = this.i;
    const r = m.exec(this.s);
    if (!r || r[0] === '-') this.fail('bad number');
    const text = r![0];
    this.i += text.length;
    if (r![1] === undefined && r![2] === undefined) {
      const n = BigInt(text);
      if (this.options.exactIntegers || (n >= INT64_MIN && n <= INT64_MAX)) {
        return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
      }
    }
    // A fraction, an exponent, or an integer beyond int64: a Float.
    const f = Number(text);
    if (!Number.isFinite(f)) this.fail(`number ${text} is out of range`);
    return Number.isSafeInteger(f) || Object.is(f, -0) ? new Float(f) : f;
  }

  string(): string {
    // Let JSON.parse handle escapes; find the closing quote ourselves.
    const start = this.i;
    this.i++;
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        this.i++;
        try {
          return JSON.parse(s.slice(start, this.i)) as string;
        } catch (e) {
          this.i = start;
          return this.fail(`bad string: ${(e as Error).message}`);
        }
      }
      if (c === 0x5c) this.i += 2;
      else if (c < 0x20) this.fail('control character in string');
      else this.i++;
    }
    return this.fail('unterminated string');
  }

  array(path: string, depth: number): MusterValue[] {
    this.i++;
    const out: MusterValue[] = [];
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      out.push(this.value(`${path}[${out.length}]`, depth + 1));
      this.ws();
      const c = this.s[this.i++];
      if (c === ']') return out;
      if (c !== ',') {
        this.i--;
        this.fail('expected , or ]');
      }
    }
  }

  object(path: string, depth: number): MusterValue {
    this.i++;
    const entries: [string, MusterValue][] = [];
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
    } else {
      for (;;) {
        this.ws();
        if (this.s[this.i] !== '"') this.fail('expected a key');
        const key = this.string();
        this.ws();
        if (this.s[this.i++] !== ':') {
          this.i--;
          this.fail('expected :');
        }
        entries.push([key, this.value(`${path}.${key}`, depth + 1)]);
        this.ws();
        const c = this.s[this.i++];
        if (c === '}') break;
        if (c !== ',') {
          this.i--;
          this.fail('expected , or }');
        }
      }
    }
    if (entries.length === 1) {
      const [key, v] = entries[0]!;
      if (key === '$bytes' && typeof v === 'string') {
        try {
          return base64Decode(v);
        } catch (e) {
          throw new SyntaxError(`${path}: $bytes: ${(e as Error).message}`);
        }
      }
      if (key === '$error' && v !== null && typeof v === 'object' && kindOf(v) === 'map') {
        let code = '';
        let message = '';
        for (const [k, x] of entriesOf(v as Values)) {
          if (k === 'code' && typeof x === 'string') code = x;
          if (k === 'message' && typeof x === 'string') message = x;
        }
        return new ErrorValue(code, message);
      }
      if (key === '$chunked' && v !== null && typeof v === 'object' && kindOf(v) === 'map') {
        return chunkedFromJson(v as Values, path);
      }
    }
    return mapFromEntries(entries);
  }
}

/**
 * Reads JSON text into a muster value: integer literals that fit int64 are Int, other numbers
 * Float; {"$bytes": "..."} is Bytes; {"$error": {...}} is Error. Throws SyntaxError.
 */
export function fromJson(text: string, options?: FromJsonOptions): MusterValue {
  return new Parser(text, options).parseDocument();
}

/** Reads JSON text whose top level must be an object (inputs, outputs, parameters). */
export function valuesFromJson(text: string): Values {
  const v = fromJson(text);
  if (v === null || typeof v !== 'object' || kindOf(v) !== 'map') throw new SyntaxError('expected a JSON object');
  return v as Values;
}
