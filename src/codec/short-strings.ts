import avro from 'avsc';
import { readUtf8, writeShortAscii } from '../framing/short-utf8.js';

/**
 * avsc's `string` type with short ASCII strings decoded in JS (framing/short-utf8.ts): a protocol's
 * strings are mostly a few ASCII bytes, for which Node's `utf8Slice` call costs four times as much.
 */

interface Tap {
  buf: Buffer;
  pos: number;
  readLong(): number;
  writeString(s: string): void;
  _invalidate(): void;
}

/** The method of avsc's string type this subclass overrides. */
interface StringBase extends avro.Type {
  _write(tap: Tap, val: unknown): void;
}
type StringCtor = new () => StringBase;
const Base = (avro.types as unknown as { StringType: StringCtor }).StringType;

/** avsc's `string` type, reading short ASCII strings with {@link readUtf8}. */
class ShortStringType extends Base {
  /** avsc's `Tap.readString`, but for where the bytes become a string. Uses no `this` (resolvers copy it). */
  _read(tap: Tap): string | undefined {
    const len = tap.readLong();
    if (len < 0) {
      tap._invalidate();
      return '';
    }
    const pos = tap.pos;
    const buf = tap.buf;
    tap.pos = pos + len;
    if (tap.pos > buf.length) return undefined;
    return readUtf8(buf, pos, pos + len);
  }

  /**
   * avsc's `Tap.writeString`, without its `Buffer.byteLength` call (a C++ call per string) for a
   * short ASCII string: its bytes are its chars, its length one byte. Anything else goes to avsc.
   */
  _write(tap: Tap, val: unknown): void {
    if (typeof val !== 'string') return super._write(tap, val);
    // Else (and past the buffer's end) avsc's own path: it moves the tap by the exact UTF-8 length,
    // which the encoder's retry sizes its buffer by.
    const end = writeShortAscii(val, tap.buf, tap.pos);
    if (end >= 0) tap.pos = end;
    else tap.writeString(val);
  }
}

let shared: avro.Type | undefined;

/** avsc `typeHook` giving `string` schemas the {@link ShortStringType}. */
export function shortStringHook(schema: avro.Schema): avro.Type | undefined {
  const isString =
    schema === 'string' ||
    (typeof schema === 'object' && schema !== null && !Array.isArray(schema) && (schema as { type?: unknown }).type === 'string');
  return isString ? (shared ??= new ShortStringType()) : undefined;
}
