// value.test.ts — the Value codec (FlatBuffers and JSON, PROTOCOL.md §4): exact round trips
// of every kind, the int/float rule, map order, and refusal of what has no muster form.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  ChunkedValue,
  ErrorCode,
  ErrorValue,
  Float,
  INT64_MAX,
  INT64_MIN,
  MusterError,
  type MusterValue,
  type MusterMap,
  type Values,
  decodeValues,
  encodeValues,
  float,
  fromJson,
  MAX_JSON_DEPTH,
  kindOf,
  toJson,
  valuesEqual,
  valuesFromJson,
} from '../src';

function roundTrip(v: Values): Values {
  return decodeValues(encodeValues(v));
}

function assertSame(a: MusterValue, b: MusterValue): void {
  assert.ok(valuesEqual(a, b), `${toJsonSafe(a)} != ${toJsonSafe(b)}`);
}

function toJsonSafe(v: MusterValue): string {
  try {
    return toJson(v);
  } catch {
    return String(v);
  }
}

const SAMPLE: Values = {
  null: null,
  t: true,
  f: false,
  zero: 0,
  one: 1,
  neg: -42,
  safeMax: Number.MAX_SAFE_INTEGER,
  safeMin: Number.MIN_SAFE_INTEGER,
  beyondSafe: 2n ** 53n + 1n,
  int64max: INT64_MAX,
  int64min: INT64_MIN,
  half: 0.5,
  floatOne: float(1),
  floatZero: float(0),
  negZero: -0,
  tiny: 5e-324,
  huge: 1.7976931348623157e308,
  third: 1 / 3,
  bigFloat: 2 ** 60,
  nan: NaN,
  inf: Infinity,
  ninf: -Infinity,
  empty: '',
  unicode: 'héllo wörld ☃ 日本語 😀 \u0000 nul inside',
  bytes: new Uint8Array([0, 1, 2, 254, 255]),
  emptyBytes: new Uint8Array(0),
  emptyList: [],
  emptyMap: {},
  list: [1, 'two', float(3), null, [true, [false, []]], { k: 'v' }],
  nested: { a: { b: { c: { d: [1, { e: new Uint8Array([7]) }] } } } },
  err: new ErrorValue('E_CODE', 'something failed ☹'),
};

describe('value codec', () => {
  it('round-trips every kind exactly', () => {
    const back = roundTrip(SAMPLE);
    assertSame(back, SAMPLE);
    assert.deepEqual(Object.keys(back), Object.keys(SAMPLE));
  });

  it('keeps int64 limits exact and as bigint beyond the safe range', () => {
    const back = roundTrip({ max: INT64_MAX, min: INT64_MIN, s: 2 ** 53 - 1 }) as Record<string, unknown>;
    assert.equal(back.max, 9223372036854775807n);
    assert.equal(back.min, -9223372036854775808n);
    assert.equal(back.s, 9007199254740991);
    assert.throws(() => encodeValues({ x: INT64_MAX + 1n }), (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.InvalidRequest);
    assert.throws(() => encodeValues({ x: INT64_MIN - 1n }), MusterError);
  });

  it('keeps Float and Int apart', () => {
    assert.equal(kindOf(1), 'int');
    assert.equal(kindOf(1.5), 'float');
    assert.equal(kindOf(float(1)), 'float');
    assert.equal(kindOf(-0), 'float');
    assert.equal(kindOf(2 ** 53), 'float');
    assert.equal(kindOf(5n), 'int');
    const back = roundTrip({ f: float(2), i: 2, nz: -0 }) as Record<string, unknown>;
    assert.ok(back.f instanceof Float);
    assert.equal(Number(back.f), 2);
    assert.equal(back.i, 2);
    assert.ok(back.nz instanceof Float && Object.is((back.nz as Float).value, -0));
    // A Float still works as a number.
    assert.equal((back.f as unknown as number) * 2, 4);
  });

  it('keeps map order, including keys a plain object would reorder', () => {
    const m = new Map<string, MusterValue>([['b', 1], ['2', 2], ['a', 3], ['1', 4]]);
    const back = roundTrip({ m });
    const inner = (back as Record<string, unknown>).m;
    assert.ok(inner instanceof Map);
    assert.deepEqual([...(inner as Map<string, unknown>).keys()], ['b', '2', 'a', '1']);
    // Ordinary keys come back as a plain object in order.
    const plain = roundTrip({ z: 1, y: 2, x: 3 });
    assert.deepEqual(Object.keys(plain), ['z', 'y', 'x']);
    // A "__proto__" key is an ordinary key.
    const proto = roundTrip(JSON.parse('{"__proto__": 5, "a": 1}') as Values) as Record<string, unknown>;
    assert.deepEqual(Object.keys(proto), ['__proto__', 'a']);
    assert.equal(Object.getPrototypeOf(proto), Object.prototype);
  });

  it('treats an empty payload as no values and refuses garbage as BadMessage', () => {
    assert.deepEqual(decodeValues(new Uint8Array(0)), {});
    assert.deepEqual(decodeValues(undefined), {});
    for (const bad of [new Uint8Array([1, 2, 3]), new Uint8Array(32).fill(0xff), new Uint8Array(16)]) {
      assert.throws(() => decodeValues(bad), (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.BadMessage);
    }
  });

  it('never crashes on corrupted buffers', () => {
    const good = encodeValues(SAMPLE);
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 3000; i++) {
      const b = good.slice(0, i % 7 === 0 ? rand(good.length) : good.length);
      for (let k = 0; k <= rand(4); k++) if (b.length) b[rand(b.length)] = rand(256);
      try {
        decodeValues(b);
      } catch (e) {
        assert.ok(e instanceof MusterError && e.codeNumber === ErrorCode.BadMessage, String(e));
      }
    }
  });

  it('refuses JS values with no muster form', () => {
    for (const bad of [{ f: () => 1 }, { s: Symbol('x') }, { d: new Date() }, { s: '\ud800' }, { u: [undefined, new Set()] }]) {
      assert.throws(() => encodeValues(bad as never), (e: unknown) => e instanceof MusterError && e.codeNumber === ErrorCode.InvalidRequest);
    }
    assert.throws(() => encodeValues([1] as never), MusterError);
  });

  it('refuses values nested deeper than the Verifier allows', () => {
    let v: MusterValue = 1;
    for (let i = 0; i < 100; i++) v = [v];
    assert.throws(() => encodeValues({ v }), (e: unknown) => e instanceof MusterError && /nested deeper/.test(e.message));
    let ok: MusterValue = 1;
    for (let i = 0; i < 50; i++) ok = [ok];
    assertSame(roundTrip({ ok }), { ok });
  });
});

describe('JSON form', () => {
  it('writes floats with a fraction or exponent and ints without', () => {
    assert.equal(toJson({ i: 1, f: float(1), h: 0.5, e: 1e21, n: -0, big: 2n ** 63n - 1n }), '{"i":1,"f":1.0,"h":0.5,"e":1e+21,"n":-0.0,"big":9223372036854775807}');
    assert.throws(() => toJson(NaN), RangeError);
    assert.throws(() => toJson({ x: Infinity }), RangeError);
  });

  it('reads int literals that fit int64 as Int, everything else as Float', () => {
    const v = fromJson('{"a": 1, "b": 1.0, "c": 9223372036854775807, "d": -9223372036854775808, "e": 9223372036854775808, "f": 1e2, "g": -0, "h": 2.5e-7}') as Record<string, MusterValue>;
    assert.equal(v.a, 1);
    assert.equal(kindOf(v.b), 'float');
    assert.equal(v.c, INT64_MAX);
    assert.equal(v.d, INT64_MIN);
    assert.equal(kindOf(v.e), 'float');
    assert.equal(kindOf(v.f), 'float');
    assert.equal(kindOf(v.g), 'int');
    assert.equal(v.h, 2.5e-7);
  });

  it('maps bytes and errors and keeps key order', () => {
    const text = '{"z":{"$bytes":"AAEC/w=="},"a":{"$error":{"code":"E","message":"m"}},"9":[],"b":{"$bytes":"x","other":1}}';
    const v = fromJson(text);
    assert.ok(v instanceof Map);
    assert.deepEqual([...v.keys()], ['z', 'a', '9', 'b']);
    assert.deepEqual(v.get('z'), new Uint8Array([0, 1, 2, 255]));
    assert.deepEqual(v.get('a'), new ErrorValue('E', 'm'));
    assert.equal(kindOf(v.get('b')), 'map');
    assert.equal(toJson(v), text);
    assert.throws(() => fromJson('{"$bytes": "abc"}'), SyntaxError);
  });

  it('refuses JSON nested deeper than MAX_JSON_DEPTH levels, as the C++ and Python SDKs', () => {
    const nested = (depth: number) => `{"x":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;
    assert.equal(MAX_JSON_DEPTH, 128);
    assert.doesNotThrow(() => valuesFromJson(nested(MAX_JSON_DEPTH)));
    assert.throws(() => valuesFromJson(nested(MAX_JSON_DEPTH + 1)), /nested deeper than 128 levels/);
    assert.throws(() => fromJson(nested(100_000)), /nested deeper than 128 levels/);
  });

  it('round-trips the sample through JSON (finite values)', () => {
    const finite = Object.fromEntries(Object.entries(SAMPLE).filter(([k]) => !['nan', 'inf', 'ninf'].includes(k))) as Values;
    const text = toJson(finite, 2);
    const back = valuesFromJson(text);
    assertSame(back, finite);
    assert.equal(toJson(back, 2), text);
  });

  it('rejects malformed JSON and non-object documents where an object is needed', () => {
    for (const bad of ['', '{', '{"a":}', '[1,]', '01', '1.', '"\\x"', '{"a":1}x', 'nul', '1e999']) {
      assert.throws(() => fromJson(bad), SyntaxError, bad);
    }
    assert.throws(() => valuesFromJson('[1]'), SyntaxError);
    assert.deepEqual(fromJson(' [ "a\\u00e9\\n" , true , null ] '), ['aé\n', true, null]);
  });

  it('reads and writes chunked values (PROTOCOL.md §7.9) exactly, and refuses what it cannot map', () => {
    const sha = new Uint8Array(32).map((_x, i) => i);
    const c = new ChunkedValue(3, 2n ** 64n - 1n, sha);
    const back = decodeValues(encodeValues({ data: c })) as MusterMap;
    assert.ok(valuesEqual(back.data, c));
    const text = toJson({ data: c });
    assert.equal(text, `{"data":{"$chunked":{"stream":3,"size":18446744073709551615,"sha256":"${Buffer.from(sha).toString('hex')}"}}}`);
    assert.ok(valuesEqual(fromJson(text, { exactIntegers: true }), { data: c }));
    for (const bad of [
      '{"stream":0,"size":1,"sha256":"' + '00'.repeat(32) + '"}',
      '{"stream":1,"size":-1,"sha256":"' + '00'.repeat(32) + '"}',
      '{"stream":1,"size":1,"sha256":"' + '00'.repeat(31) + '"}',
      '{"stream":1,"size":1,"sha256":"' + 'AB'.repeat(32) + '"}',
      '{"stream":1,"size":1}',
    ])
      assert.throws(() => fromJson(`{"$chunked":${bad}}`), SyntaxError, bad);
    assert.throws(() => new ChunkedValue(1, 1, new Uint8Array(31)), TypeError);
  });
});
