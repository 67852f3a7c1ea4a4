/**
 * Bounded reading of Avro maps from a peer: request metadata (`map<string>`) and HELLO meta
 * (`map<bytes>`). avsc decodes a whole map before anyone can look at its size, so a 15 MiB map of
 * tiny entries cost a second of event loop before a size limit refused it; these readers stop as soon
 * as the map passes its limit, having allocated nothing for the part beyond it.
 */
import { readUtf8, writeShortAscii } from './short-utf8.js';

/** Position after the last {@link readLong} (module state: reads allocate nothing). */
let at = 0;

/** Thrown inside {@link readStringMap} when the map goes beyond its byte limit. */
const OVER = new Error('over the limit');

/** Largest varint accepted: 7 bytes (49 bits), far beyond any length or count a limit allows. */
const MAX_LONG_BYTES = 7;

/**
 * Reads an Avro long (zig-zag varint) at `pos`, not reading at or past `end`, and sets `at` after it.
 * Throws {@link OVER} when it would pass `end` and `end` is not the buffer's end, else a truncation error.
 */
function readLong(buf: Buffer, pos: number, end: number): number {
  let n = 0;
  let mul = 1;
  for (let i = 0; i < MAX_LONG_BYTES; i++) {
    if (pos >= end) throw end < buf.length ? OVER : new Error('truncated Avro map');
    const b = buf[pos++]!;
    n += (b & 0x7f) * mul;
    if (b < 0x80) {
      at = pos;
      return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
    }
    mul *= 128;
  }
  throw new Error('Avro long out of range in a map');
}

/** Skips a block header's count (and byte size, for a negative count) at `pos`; returns the count, sets `at`. */
function blockCount(buf: Buffer, pos: number, end: number): number {
  const n = readLong(buf, pos, end);
  if (n >= 0) return n;
  readLong(buf, at, end);
  return -n;
}

/** A string's length at `pos`, checked against `end`; sets `at` to its first byte. */
function stringLength(buf: Buffer, pos: number, end: number): number {
  const len = readLong(buf, pos, end);
  if (len < 0) throw new Error('negative string length in an Avro map');
  if (at + len > end) throw end < buf.length ? OVER : new Error('truncated Avro map');
  return len;
}

/** The offset just past the Avro string (or bytes) at `pos`, without decoding it; -1 if truncated or malformed. */
export function afterString(buf: Buffer, pos: number): number {
  try {
    const len = stringLength(buf, pos, buf.length);
    return at + len;
  } catch {
    return -1;
  }
}

/** Slots of {@link readKey}'s table (a power of two). */
const KEY_SLOTS = 64;
/** Longest key the table keeps, in bytes. */
const KEY_BYTES = 40;
/** Each slot's key bytes, in one fixed block (a miss allocates nothing but the key's string). */
const keyBytes = new Uint8Array(KEY_SLOTS * KEY_BYTES);
/** Each slot's key length; 0: empty. */
const keyLengths = new Uint8Array(KEY_SLOTS);
const keyStrings: string[] = new Array<string>(KEY_SLOTS).fill('');

/**
 * A metadata key from its UTF-8 bytes `buf[start, end)`. The keys a service sends recur on every
 * call (`trace-id`, `tenant`): a table of those seen, by their bytes, gives back the same string,
 * already internalized, so the map's property store is a cached transition and no string is made.
 * A miss (a new key, or two keys sharing a slot) decodes it and takes the slot: any bytes are
 * correct here, the table only saves work. Its size is fixed: a peer sending new keys costs a
 * decode each, as without it.
 */
export function readKey(buf: Buffer, start: number, end: number): string {
  const n = end - start;
  if (n === 0 || n > KEY_BYTES) return readUtf8(buf, start, end);
  const slot = (n * 31 + buf[start]! * 7 + buf[end - 1]!) & (KEY_SLOTS - 1);
  const base = slot * KEY_BYTES;
  if (keyLengths[slot] === n) {
    let i = 0;
    while (i < n && keyBytes[base + i] === buf[start + i]) i++;
    if (i === n) return keyStrings[slot]!;
  }
  // The internalized copy: a property key is stored as one.
  const key = Object.keys({ [readUtf8(buf, start, end)]: 0 })[0]!;
  keyBytes.set(buf.subarray(start, end), base);
  keyLengths[slot] = n;
  keyStrings[slot] = key;
  return key;
}

/** Result of {@link readStringMap}: the map and where it ended, or `undefined` when over the limit. */
export interface StringMapRead {
  value: Record<string, string>;
  /** Offset just past the map. */
  end: number;
}

/**
 * Decodes an Avro `map<string>` at `pos`, reading at most `maxBytes` bytes: returns `undefined` as
 * soon as the map turns out longer, without reading (or allocating for) the rest. Throws on a
 * truncated or malformed map.
 */
export function readStringMap(buf: Buffer, pos: number, maxBytes: number): StringMapRead | undefined {
  const end = Math.min(buf.length, pos + maxBytes);
  const value: Record<string, string> = {};
  try {
    let p = pos;
    for (let n = blockCount(buf, p, end); n !== 0; n = blockCount(buf, p, end)) {
      p = at;
      while (n-- > 0) {
        let len = stringLength(buf, p, end);
        const key = readKey(buf, at, at + len);
        p = at + len;
        len = stringLength(buf, p, end);
        value[key] = readUtf8(buf, at, at + len);
        p = at + len;
      }
    }
    return { value, end: at };
  } catch (err) {
    if (err === OVER) return undefined;
    throw err;
  }
}

/**
 * Counts the entries of an Avro map of strings or bytes at `pos`, without decoding them, stopping
 * once there are more than `max`. Returns the count (`max + 1` when over), or -1 for a malformed or
 * truncated map (the caller's full decode reports that).
 */
export function countMapEntries(buf: Buffer, pos: number, max: number): number {
  const end = buf.length;
  let count = 0;
  try {
    let p = pos;
    for (let n = blockCount(buf, p, end); n !== 0; n = blockCount(buf, p, end)) {
      p = at;
      count += n;
      if (count > max) return max + 1;
      while (n-- > 0) {
        let len = stringLength(buf, p, end);
        p = at + len;
        len = stringLength(buf, p, end);
        p = at + len;
      }
    }
    return count;
  } catch {
    return -1;
  }
}

/** Writes the zig-zag varint of a non-negative `n` at `p`; returns its end, or -1 when it does not fit. */
function writeCount(n: number, buf: Buffer, p: number): number {
  for (let z = n * 2; ; z = Math.floor(z / 128)) {
    if (p >= buf.length) return -1;
    if (z < 0x80) {
      buf[p] = z;
      return p + 1;
    }
    buf[p++] = (z % 128) | 0x80;
  }
}

/**
 * Writes an Avro string at `pos`; returns its end, or -1 when it does not fit. ASCII strings of up to
 * 63 characters are copied by a loop (Buffer's byteLength and write are C++ calls dearer than that).
 */
function writeString(s: string, buf: Buffer, pos: number): number {
  const short = writeShortAscii(s, buf, pos);
  if (short >= 0) return short;
  const len = Buffer.byteLength(s);
  const p = writeCount(len, buf, pos);
  if (p < 0 || p + len > buf.length) return -1;
  buf.write(s, p, len, 'utf8');
  return p + len;
}

/**
 * Writes `map` as an Avro `map<string>` (one block, then the 0 count), byte for byte as avsc's map type
 * does; returns its end, or -1 when it does not fit. Throws a TypeError for a value that is not a string.
 */
export function writeStringMap(map: Readonly<Record<string, string>>, buf: Buffer, pos: number): number {
  const keys = Object.keys(map);
  const n = keys.length;
  let p = pos;
  if (n > 0) {
    p = writeCount(n, buf, p);
    for (let i = 0; i < n && p >= 0; i++) {
      const k = keys[i]!;
      const v = map[k];
      if (typeof v !== 'string') throw new TypeError(`invalid "string": ${JSON.stringify(v)}`);
      p = writeString(k, buf, p);
      if (p >= 0) p = writeString(v, buf, p);
    }
    if (p < 0) return -1;
  }
  if (p >= buf.length) return -1;
  buf[p] = 0;
  return p + 1;
}
