// decoded-payloads.ts — the Values a message's verification decoded, kept for the one reader
// that decodes the same payload next (the worker: a WorkRequest's inputs and parameters; the
// client: a Result's outputs, an Item's values), so a payload is decoded once, not twice.
// Owns: the weak map from a decoded message's payload bytes to their values, and the rule
// that those values are handed out once.
// Must never: hand the same values object out twice (its first reader may change it), or keep
// a payload alive (the map is weak).
import { type Values, decodeValues } from './value';

const decoded = new WeakMap<Uint8Array, Values>();

/** Remembers what `bytes` (a decoded message's own copy of a payload) decoded to. */
export function rememberValues(bytes: Uint8Array, values: Values): void {
  decoded.set(bytes, values);
}

/**
 * decodeValues(bytes): the values remembered for them the first time, decoded again after that
 * and for any other bytes.
 */
export function takeValues(bytes: Uint8Array): Values {
  const values = decoded.get(bytes);
  if (values === undefined) return decodeValues(bytes);
  decoded.delete(bytes);
  return values;
}
