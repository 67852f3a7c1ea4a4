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

type BytesCtor = new () => avro.Type & { _write(tap: Tap, val: unknown): void };
const Base = (avro.types as unknown as { BytesType: BytesCtor }).BytesType;

/**
 * The `bytes` type of protocols (installed per protocol through avsc's `typeHook`, avsc itself is not
 * patched): it decodes large values as `subarray` views of the buffer being decoded, so a 1 MB payload
 * is not copied again (avsc copies every `bytes` value into a new zero-filled buffer).
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
    if (!Buffer.isBuffer(val)) return super._write(tap, val);
    const into = splicing.into;
    if (into === undefined || val.length < SPLICE_MIN_BYTES) return tap.writeBytes(val);
    tap.writeLong(val.length);
    into.push({ at: tap.pos, data: val });
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

let shared: avro.Type | undefined;

/** avsc `typeHook` giving plain `bytes` schemas (no logical type) the view-decoding type. */
export function viewBytesHook(schema: avro.Schema): avro.Type | undefined {
  const plain =
    schema === 'bytes' ||
    (typeof schema === 'object' &&
      schema !== null &&
      !Array.isArray(schema) &&
      (schema as { type?: unknown }).type === 'bytes' &&
      (schema as { logicalType?: unknown }).logicalType === undefined);
  if (!plain) return undefined;
  return (shared ??= new ViewBytesType());
}
