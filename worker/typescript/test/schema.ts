// schema.ts — a small reader of schema/*.fbs for the golden-vector tests: tables with their
// fields in schema order (with vtable slots), enums and unions, so a buffer can be described
// field by field, presence included, without trusting the SDK's own decoders.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const SCHEMA_DIR = path.resolve(__dirname, '..', '..', '..', '..', 'schema');

export type Scalar = 'bool' | 'i8' | 'u8' | 'i16' | 'u16' | 'i32' | 'u32' | 'i64' | 'u64' | 'f32' | 'f64';

const SCALARS: Record<string, Scalar> = {
  bool: 'bool',
  byte: 'i8', int8: 'i8', ubyte: 'u8', uint8: 'u8',
  short: 'i16', int16: 'i16', ushort: 'u16', uint16: 'u16',
  int: 'i32', int32: 'i32', uint: 'u32', uint32: 'u32',
  long: 'i64', int64: 'i64', ulong: 'u64', uint64: 'u64',
  float: 'f32', float32: 'f32', double: 'f64', float64: 'f64',
};

export type FieldType =
  | { kind: 'scalar'; scalar: Scalar }
  | { kind: 'enum'; name: string; scalar: Scalar }
  | { kind: 'string' }
  | { kind: 'table'; name: string }
  | { kind: 'union'; name: string }
  | { kind: 'vector'; of: FieldType };

export interface Field {
  name: string;
  type: FieldType;
  /** vtable slot (a union takes two: its type, then its value). */
  slot: number;
  required: boolean;
  nested: string | null;
  /** The default as written in the schema (a number, "true"/"false", or an enum member). */
  defaultText: string | null;
}

export interface Schema {
  tables: Map<string, Field[]>;
  enums: Map<string, { scalar: Scalar; values: Map<string, number> }>;
  unions: Map<string, string[]>;
  roots: Map<string, string>; // root table -> file identifier
}

function strip(text: string): string {
  return text.replace(/\/\/[^\n]*/g, '');
}

export function readSchema(dir = SCHEMA_DIR): Schema {
  const schema: Schema = { tables: new Map(), enums: new Map(), unions: new Map(), roots: new Map() };
  const rawTables: [string, string][] = [];
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.fbs')).sort()) {
    const text = strip(fs.readFileSync(path.join(dir, file), 'utf8'));
    for (const m of text.matchAll(/\benum\s+(\w+)\s*:\s*(\w+)\s*\{([^}]*)\}/g)) {
      const values = new Map<string, number>();
      let next = 0;
      for (const part of m[3]!.split(',').map((p) => p.trim()).filter(Boolean)) {
        const [name, value] = part.split('=').map((p) => p.trim());
        next = value !== undefined ? Number(value) : next;
        values.set(name!, next);
        next += 1;
      }
      schema.enums.set(m[1]!, { scalar: SCALARS[m[2]!]!, values });
    }
    for (const m of text.matchAll(/\bunion\s+(\w+)\s*\{([^}]*)\}/g)) {
      schema.unions.set(m[1]!, m[2]!.split(',').map((p) => p.trim()).filter(Boolean));
    }
    for (const m of text.matchAll(/\btable\s+(\w+)\s*\{([^}]*)\}/g)) rawTables.push([m[1]!, m[2]!]);
    const root = /\broot_type\s+(\w+)\s*;/.exec(text);
    const ident = /\bfile_identifier\s+"(\w{4})"\s*;/.exec(text);
    if (root && ident) schema.roots.set(root[1]!, ident[1]!);
  }
  const typeOf = (t: string): FieldType => {
    const vec = /^\[(\w+)\]$/.exec(t);
    if (vec) return { kind: 'vector', of: typeOf(vec[1]!) };
    if (t in SCALARS) return { kind: 'scalar', scalar: SCALARS[t]! };
    if (t === 'string') return { kind: 'string' };
    const e = schema.enums.get(t);
    if (e) return { kind: 'enum', name: t, scalar: e.scalar };
    if (schema.unions.has(t)) return { kind: 'union', name: t };
    return { kind: 'table', name: t };
  };
  for (const [name, body] of rawTables) {
    const fields: Field[] = [];
    let slot = 0;
    for (const decl of body.split(';').map((d) => d.trim()).filter(Boolean)) {
      const m = /^(\w+)\s*:\s*(\[?\w+\]?)\s*(?:=\s*([\w.+-]+))?\s*(?:\(([^)]*)\))?$/.exec(decl.replace(/\s+/g, ' '));
      if (!m) throw new Error(`cannot read field declaration "${decl}" in table ${name}`);
      const type = typeOf(m[2]!);
      const attrs = m[4] ?? '';
      const nested = /nested_flatbuffer\s*:\s*"(\w+)"/.exec(attrs);
      fields.push({
        name: m[1]!,
        type,
        slot,
        required: /\brequired\b/.test(attrs),
        nested: nested ? nested[1]! : null,
        defaultText: m[3] ?? null,
      });
      slot += type.kind === 'union' ? 2 : 1;
    }
    schema.tables.set(name, fields);
  }
  return schema;
}

/** The schema default of a scalar or enum field, as a number/bigint/boolean. */
export function defaultOf(schema: Schema, f: Field): number | bigint | boolean {
  const t = f.type;
  const scalar = t.kind === 'scalar' || t.kind === 'enum' ? t.scalar : null;
  if (scalar === null) throw new Error(`${f.name} is not a scalar`);
  const text = f.defaultText;
  if (scalar === 'bool') return text === 'true';
  let n: number;
  if (text === null) n = 0;
  else if (t.kind === 'enum' && !/^[-\d]/.test(text)) n = schema.enums.get(t.name)!.values.get(text)!;
  else n = Number(text);
  return scalar === 'i64' || scalar === 'u64' ? BigInt(n) : n;
}

/** snake_case -> camelCase (rate_1m -> rate1m), the SDK's field names. */
export function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}
