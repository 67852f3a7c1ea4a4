import avro from 'avsc';
import { SPLICE_MIN_BYTES, splicing } from '../framing/splices.js';

/**
 * Avro `bytes` values at least this long decode as views of the message buffer instead of copies.
 * Shorter ones are copied, so a small value does not pin a whole socket chunk (up to 64 KiB) it may
 * share with other frames.
 */
export const VIEW_BYTES_MIN = 4096;

interface Tap {
  buf: Buffer;
  pos: number;
  readLong(): number;
  readBytes(): Buffer | undefined;
  writeLong(n: number): void;
  writeBytes(buf: Buffer): void;
  _invalidate(): void;
}

/** The methods of avsc's bytes and fixed types these subclasses override. */
interface BufferType extends avro.Type {
  _check(val: unknown, flags: unknown, hook: unknown): boolean;
  _write(tap: Tap, val: unknown): void;
  _copy(val: unknown, opts: unknown): unknown;
}
type BytesCtor = new () => BufferType;
type FixedCtor = new (schema: avro.Schema, opts: unknown) => BufferType;
const Base = (avro.types as unknown as { BytesType: BytesCtor }).BytesType;
const FixedBase = (avro.types as unknown as { FixedType: FixedCtor }).FixedType;

/**
 * `val` as a Buffer when it is a Uint8Array that is not one: a view of the same bytes (no copy, and
 * only its own bytes when it is a window of a larger ArrayBuffer); anything else as is. avsc's bytes
 * and fixed types take Buffers only (`Buffer.isBuffer`, then Buffer methods such as `copy`).
 */
export function asBuffer(val: unknown): unknown {
  return val instanceof Uint8Array && !Buffer.isBuffer(val) ? Buffer.from(val.buffer, val.byteOffset, val.byteLength) : val;
}

/**
 * The `bytes` type of protocols (installed per protocol through avsc's `typeHook`, avsc itself is not
 * patched): it decodes large values as `subarray` views of the buffer being decoded, so a 1 MB payload
 * is not copied again (avsc copies every `bytes` value into a new zero-filled buffer). It encodes a
 * Uint8Array as well as a Buffer; decoded values are Buffers.
 *
 * Contract: the buffer a message is decoded from belongs to that message alone: a reassembled or
 * inflated message, a frame body collected across socket chunks, a socket chunk (Node allocates each
 * read afresh and never reuses it), or the bytes a worker received. So a decoded Buffer stays valid
 * for as long as the caller keeps it, and writing into it changes nothing anyone else reads.
 */
class ViewBytesType extends Base {
  /**
   * Writes a large value by reference while a frame is being encoded (framing/splices.ts): its length
   * here, its bytes as a buffer of their own in the socket write. It must not change until written,
   * like any buffer given to `socket.write`; a caller's request is written before its call settles.
   */
  override _write(tap: Tap, val: unknown): void {
    // avsc's own check and copy, inlined: this runs for every bytes value encoded.
    if (!(val instanceof Uint8Array)) return super._write(tap, val);
    const buf = Buffer.isBuffer(val) ? val : (asBuffer(val) as Buffer);
    const into = splicing.into;
    if (into === undefined || buf.length < SPLICE_MIN_BYTES) return tap.writeBytes(buf);
    tap.writeLong(buf.length);
    into.push({ at: tap.pos, data: buf });
  }

  override _check(val: unknown, flags: unknown, hook: unknown): boolean {
    return super._check(asBuffer(val), flags, hook);
  }

  override _copy(val: unknown, opts: unknown): unknown {
    return super._copy(asBuffer(val), opts);
  }

  _read(tap: Tap): Buffer | undefined {
    const pos = tap.pos;
    const len = tap.readLong();
    if (len < VIEW_BYTES_MIN) {
      tap.pos = pos;
      return tap.readBytes();
    }
    const start = tap.pos;
    tap.pos = start + len;
    if (tap.pos > tap.buf.length) return undefined;
    return tap.buf.subarray(start, start + len);
  }
}

/** avsc's `fixed` type, encoding a Uint8Array as well as a Buffer (one per schema: fixed types are named). */
class InputFixedType extends FixedBase {
  override _check(val: unknown, flags: unknown, hook: unknown): boolean {
    return super._check(asBuffer(val), flags, hook);
  }

  override _write(tap: Tap, val: unknown): void {
    super._write(tap, asBuffer(val));
  }

  override _copy(val: unknown, opts: unknown): unknown {
    return super._copy(asBuffer(val), opts);
  }
}

let shared: avro.Type | undefined;

/**
 * avsc `typeHook` giving `bytes` schemas the view-decoding type and `fixed` ones the type taking
 * Uint8Arrays too. avrpc registers no logical types, so a `bytes` with a `logicalType` is plain bytes.
 */
export function viewBytesHook(schema: avro.Schema, opts?: avro.ForSchemaOptions): avro.Type | undefined {
  if (schema === 'bytes') return (shared ??= new ViewBytesType());
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return undefined;
  const type = (schema as { type?: unknown }).type;
  if (type === 'bytes') return (shared ??= new ViewBytesType());
  if (type === 'fixed') return new InputFixedType(schema, opts ?? {});
  return undefined;
}
