/**
 * Where the gateway's direct writers print a response: JSON appended as UTF-8 bytes to a slab, one
 * response after another, each handed out as a view of its bytes. Printing into bytes allocates no
 * string per field (the string a response used to be built as was a tree of small pieces, its
 * largest per-call allocation) and no copy of the text for the socket.
 */

import { miss, wellFormed } from './json-direct.js';

/**
 * A slab's size; a response longer than this gets a buffer of its own. A response the socket has not
 * sent yet keeps its whole slab alive (a client that does not read pins it): as small as Node's own
 * Buffer pool, so that costs no more than a pooled buffer would.
 */
const SLAB_BYTES = 8 * 1024;
/** Strings and bytes longer than this are escaped natively (`JSON.stringify`), not byte by byte. */
const LONG_VALUE = 1024;

/** Node's Buffer methods without the argument checks of `write` and `toString`. */
interface FastBuffer extends Buffer {
  latin1Write(s: string, offset: number): number;
  utf8Write(s: string, offset: number): number;
  latin1Slice(): string;
}

/** How a byte value (a code point 0-255) appears inside a JSON string, as `JSON.stringify` writes it. */
const enum Kind {
  /** As itself: printable ASCII, DEL. */
  Plain,
  /** A backslash and one character: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`. */
  Short,
  /** `\u00XX`: the other control characters. */
  Unicode,
  /** U+0080-U+00FF: two bytes of UTF-8. */
  Latin1,
}
const KIND = new Uint8Array(256);
/** The character after the backslash of a {@link Kind.Short} escape. */
const SHORT = new Uint8Array(128);
const HEX = Buffer.from('0123456789abcdef', 'latin1');
for (let b = 0; b < 256; b++) {
  const e = JSON.stringify(String.fromCharCode(b)).slice(1, -1);
  KIND[b] = b >= 0x80 ? Kind.Latin1 : e.length === 1 ? Kind.Plain : e.length === 2 ? Kind.Short : Kind.Unicode;
  if (e.length === 2) SHORT[b] = e.charCodeAt(1);
}
/** `\u00` as a little-endian u32, and each byte's two hex digits as a little-endian u16: an escape in two stores. */
const U00 = 0x5c | (0x75 << 8) | (0x30 << 16) | (0x30 << 24);
const HEX2 = new Uint16Array(256);
for (let c = 0; c < 256; c++) HEX2[c] = HEX[c >> 4]! | (HEX[c & 15]! << 8);

/**
 * A JSON text being printed. `take()` ends one and returns its bytes (a view no later write
 * touches); `abandon()` drops a partly printed one. One instance serves every route of a thread:
 * printing is synchronous.
 */
export class JsonBytes {
  private slab = slab(SLAB_BYTES);
  /** The slab as a DataView, for multi-byte stores (latin1Bytes's escapes). */
  private view = viewOf(this.slab);
  private start = 0;
  private pos = 0;

  /** The bytes printed since the last `take` or `abandon`. */
  take(): Buffer {
    const out = this.slab.subarray(this.start, this.pos);
    // A slab grown for one long response is not kept for the next ones.
    if (this.slab.length > SLAB_BYTES) {
      this.slab = slab(SLAB_BYTES);
      this.view = viewOf(this.slab);
      this.pos = 0;
    }
    this.start = this.pos;
    return out;
  }

  /** Drops what was printed since the last `take`. */
  abandon(): void {
    this.pos = this.start;
  }

  /** One ASCII byte. */
  byte(c: number): void {
    if (this.pos === this.slab.length) this.room(1);
    this.slab[this.pos++] = c;
  }

  /** Bytes as they are (JSON already: punctuation, a field's name). */
  raw(bytes: Uint8Array): void {
    const n = bytes.length;
    if (this.pos + n > this.slab.length) this.room(n);
    const b = this.slab;
    const p = this.pos;
    if (n > 16) b.set(bytes, p);
    else for (let i = 0; i < n; i++) b[p + i] = bytes[i]!;
    this.pos = p + n;
  }

  /** An ASCII string as it is (a number's digits, base64). */
  ascii(s: string): void {
    const n = s.length;
    if (this.pos + n > this.slab.length) this.room(n);
    if (n > 64) {
      this.pos += this.slab.latin1Write(s, this.pos);
      return;
    }
    const b = this.slab;
    const p = this.pos;
    for (let i = 0; i < n; i++) b[p + i] = s.charCodeAt(i);
    this.pos = p + n;
  }

  /** An integer in int32 range, in decimal. */
  int(v: number): void {
    if (this.pos + 11 > this.slab.length) this.room(11);
    const b = this.slab;
    let p = this.pos;
    let n = v;
    if (n < 0) {
      b[p++] = 0x2d;
      n = -n;
    }
    let digits = 1;
    for (let t = n; t >= 10; t = (t / 10) | 0) digits++;
    p += digits;
    for (let i = 1; i <= digits; i++, n = (n / 10) | 0) b[p - i] = 0x30 + (n % 10);
    this.pos = p;
  }

  /** A string as JSON (quoted, escaped as `JSON.stringify` escapes it); a lone surrogate is a {@link Miss}. */
  string(s: string): void {
    const n = s.length;
    if (n > LONG_VALUE) return this.utf8(JSON.stringify(wellFormed(s)));
    // At most 6 bytes per UTF-16 unit (`\u001f`), and the quotes.
    if (this.pos + 6 * n + 2 > this.slab.length) this.room(6 * n + 2);
    const b = this.slab;
    let p = this.pos;
    b[p++] = 0x22;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x80) {
        const kind = KIND[c]!;
        if (kind === Kind.Plain) b[p++] = c;
        else p = escape(b, p, c, kind);
      } else if (c < 0x800) {
        b[p++] = 0xc0 | (c >> 6);
        b[p++] = 0x80 | (c & 0x3f);
      } else if (c < 0xd800 || c > 0xdfff) {
        b[p++] = 0xe0 | (c >> 12);
        b[p++] = 0x80 | ((c >> 6) & 0x3f);
        b[p++] = 0x80 | (c & 0x3f);
      } else {
        const d = c < 0xdc00 && i + 1 < n ? s.charCodeAt(i + 1) : 0;
        if (d < 0xdc00 || d > 0xdfff) miss();
        i++;
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        b[p++] = 0xf0 | (cp >> 18);
        b[p++] = 0x80 | ((cp >> 12) & 0x3f);
        b[p++] = 0x80 | ((cp >> 6) & 0x3f);
        b[p++] = 0x80 | (cp & 0x3f);
      }
    }
    b[p++] = 0x22;
    this.pos = p;
  }

  /** Avro bytes in JSON's encoding: a string of code points 0-255, one per byte. */
  latin1Bytes(v: Uint8Array): void {
    const n = v.length;
    if (n > LONG_VALUE) return this.utf8(JSON.stringify((Buffer.from(v.buffer, v.byteOffset, n) as FastBuffer).latin1Slice()));
    if (this.pos + 6 * n + 2 > this.slab.length) this.room(6 * n + 2);
    const b = this.slab;
    const view = this.view;
    let p = this.pos;
    b[p++] = 0x22;
    for (let i = 0; i < n; i++) {
      const c = v[i]!;
      const kind = KIND[c]!;
      // The escapes written in place, in u32/u16 stores: a 64-byte blob of control bytes (all
      // `\u00XX`) printed and taken in 260-280 ns instead of 340-350 with six byte stores each.
      if (kind === Kind.Plain) b[p++] = c;
      else if (kind === Kind.Unicode) {
        view.setUint32(p, U00, true);
        view.setUint16(p + 4, HEX2[c]!, true);
        p += 6;
      } else if (kind === Kind.Latin1) {
        view.setUint16(p, 0xc0 | (c >> 6) | ((0x80 | (c & 0x3f)) << 8), true);
        p += 2;
      } else {
        view.setUint16(p, 0x5c | (SHORT[c]! << 8), true);
        p += 2;
      }
    }
    b[p++] = 0x22;
    this.pos = p;
  }

  /** Text (JSON already) in UTF-8. */
  private utf8(text: string): void {
    const max = 3 * text.length;
    if (this.pos + max > this.slab.length) this.room(max);
    this.pos += this.slab.utf8Write(text, this.pos);
  }

  /** Makes room for `n` more bytes: a new slab, what this response has so far copied to it. */
  private room(n: number): void {
    const used = this.pos - this.start;
    const next = slab(Math.max(SLAB_BYTES, 2 * (used + n)));
    this.slab.copy(next, 0, this.start, this.pos);
    this.slab = next;
    this.view = viewOf(next);
    this.start = 0;
    this.pos = used;
  }
}

/** Writes the escape of ASCII control or quoting character `c` at `p`; returns the position after it. */
function escape(b: Uint8Array, p: number, c: number, kind: Kind): number {
  b[p] = 0x5c;
  if (kind === Kind.Short) {
    b[p + 1] = SHORT[c]!;
    return p + 2;
  }
  b[p + 1] = 0x75;
  b[p + 2] = 0x30;
  b[p + 3] = 0x30;
  b[p + 4] = HEX[c >> 4]!;
  b[p + 5] = HEX[c & 15]!;
  return p + 6;
}

/** A DataView of all of `b`. */
function viewOf(b: Buffer): DataView {
  return new DataView(b.buffer, b.byteOffset, b.length);
}

/** A slab: not pooled (it is one already), not zeroed (only what is printed is handed out). */
function slab(size: number): FastBuffer {
  return Buffer.allocUnsafeSlow(size) as FastBuffer;
}
