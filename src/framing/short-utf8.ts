/**
 * Short ASCII strings decoded in JS. Node's `utf8Slice` is a C++ call of about 100 ns whatever the
 * length; most strings a protocol carries (names, tags, enum-like values, metadata keys) are a few
 * ASCII bytes, which `String.fromCharCode` with fixed arguments builds in a quarter of that. Longer or
 * non-ASCII strings still go to `utf8Slice`, which is right and fast for them.
 */

/** Node's own slicer, without `toString`'s argument checks and encoding lookup (bounds are ours). */
interface Utf8Slicer extends Buffer {
  utf8Slice(start: number, end: number): string;
}

/** Longest string decoded in JS; beyond it the C++ call is cheaper per byte. */
const SHORT_BYTES = 12;

const fcc = String.fromCharCode;

/** The ASCII bytes `buf[p, p + n)` (n <= 12) as a string. */
function ascii(b: Buffer, p: number, n: number): string {
  switch (n) {
    case 0:
      return '';
    case 1:
      return fcc(b[p]!);
    case 2:
      return fcc(b[p]!, b[p + 1]!);
    case 3:
      return fcc(b[p]!, b[p + 1]!, b[p + 2]!);
    case 4:
      return fcc(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!);
    case 5:
      return fcc(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!);
    case 6:
      return fcc(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!);
    case 7:
      return fcc(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!);
    case 8:
      return fcc(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!);
    default:
      return fcc(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!) + ascii(b, p + 8, n - 8);
  }
}

/** The UTF-8 bytes `buf[start, end)` as a string (`end <= buf.length`), as `buf.toString('utf8', start, end)` gives it. */
export function readUtf8(buf: Buffer, start: number, end: number): string {
  if (end - start <= SHORT_BYTES) {
    let i = start;
    while (i < end && buf[i]! < 0x80) i++;
    if (i === end) return ascii(buf, start, end - start);
  }
  return (buf as Utf8Slicer).utf8Slice(start, end);
}

/**
 * Writes `s` as an Avro string (zig-zag length, then UTF-8) at `pos` when it is ASCII of at most 63
 * characters and fits in `buf`; returns its end, or -1 (nothing to rely on written) otherwise. The
 * bytes are its chars and the length one byte: cheaper than Buffer's byteLength and write, C++ calls.
 */
export function writeShortAscii(s: string, buf: Uint8Array, pos: number): number {
  const n = s.length;
  if (n > 63 || pos + 1 + n > buf.length) return -1;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return -1;
    buf[pos + 1 + i] = c;
  }
  buf[pos] = n << 1;
  return pos + 1 + n;
}
