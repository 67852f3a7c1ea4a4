import avro from 'avsc';
import './avro-limits.js';
import { readStringMap, writeStringMap } from './avro-map.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { Flag } from './frame.js';

/**
 * Encoders and decoders of the frame bodies other than payloads (SPEC.md, "Frame bodies"). Integers
 * are big-endian; strings and metadata use Avro binary encoding (a zig-zag varint length, then UTF-8).
 */

/** String-to-string metadata, sent as an Avro `map<string>`. */
export type Metadata = Readonly<Record<string, string>>;

/** Shared empty metadata: requests without metadata allocate nothing. */
export const NO_METADATA: Metadata = Object.freeze({});

const metadataType = avro.Type.forSchema({ type: 'map', values: 'string' });
const stringType = avro.Type.forSchema('string');

/** Missing bytes reported when a fixed-size prefix does not fit; the encoder then grows and retries. */
const SHORT = -64;

/** What the REQUEST body writer needs; one mutable instance is reused per connection. */
export interface RequestDraft {
  index: number;
  /** Relative timeout in ms, or -1 for none. */
  timeoutMs: number;
  metadata: Metadata | undefined;
  /**
   * The server's advertised `maxMetadataBytes`: a larger map fails the encode (RESOURCE_EXHAUSTED,
   * the call never ran), measured as it is written rather than by a pass of its own. Default: no limit.
   */
  maxMetadataBytes?: number;
  type: avro.Type;
  value: unknown;
}

/** Flags a REQUEST frame needs for this draft (DEADLINE, METADATA); ONE_WAY is added by the caller. */
export function requestFlags(d: RequestDraft): number {
  return (d.timeoutMs >= 0 ? Flag.DEADLINE : 0) | (d.metadata !== undefined ? Flag.METADATA : 0);
}

/** Writes a REQUEST body: `u16 index [u32 timeoutMs] [map<string> metadata] request`. */
export function writeRequest(d: RequestDraft, buf: Buffer, pos: number): number {
  let p = pos + 2 + (d.timeoutMs >= 0 ? 4 : 0);
  if (p > buf.length) return SHORT;
  buf.writeUInt16BE(d.index, pos);
  if (d.timeoutMs >= 0) buf.writeUInt32BE(d.timeoutMs, pos + 2);
  if (d.metadata !== undefined) {
    const start = p;
    p = writeStringMap(d.metadata, buf, p);
    // Grown and written again: its size is not known until it fits.
    if (p < 0) return SHORT - (buf.length - start);
    const max = d.maxMetadataBytes;
    if (max !== undefined && p - start > max)
      throw new RpcError(Code.RESOURCE_EXHAUSTED, `request metadata exceeds the server's maxMetadataBytes (${max})`, { mayHaveRun: false });
  }
  return d.type.encode(d.value, buf, p);
}

/** The parsed prefix of a REQUEST body; the payload starts at `offset`. */
export interface RequestHead {
  index: number;
  /** Relative timeout in ms, or -1. */
  timeoutMs: number;
  metadata: Metadata;
  /**
   * Bytes the metadata map took (0 without metadata); more than the `maxMetadataBytes` given when the
   * map is longer, and then `metadata` is empty and `offset` meaningless: the rest was not read.
   */
  metadataBytes: number;
  offset: number;
}

/**
 * Parses the prefix of a REQUEST body, reading at most `maxMetadataBytes` of metadata (a longer map is
 * reported, not decoded). Throws on malformed input (the caller maps it to a code).
 */
export function readRequestHead(flags: number, body: Buffer, maxMetadataBytes = Infinity): RequestHead {
  let p = 2;
  if (body.length < 2) throw new Error('request body too short');
  const index = body.readUInt16BE(0);
  let timeoutMs = -1;
  if ((flags & Flag.DEADLINE) !== 0) {
    if (body.length < 6) throw new Error('request body too short for its deadline');
    timeoutMs = body.readUInt32BE(2);
    p = 6;
  }
  let metadata = NO_METADATA;
  const start = p;
  if ((flags & Flag.METADATA) !== 0) {
    const r = readStringMap(body, p, maxMetadataBytes);
    if (r === undefined) return { index, timeoutMs, metadata: NO_METADATA, metadataBytes: maxMetadataBytes + 1, offset: body.length };
    metadata = r.value;
    p = r.end;
  }
  return { index, timeoutMs, metadata, metadataBytes: p - start, offset: p };
}

/** What an ERROR body carries. */
export interface ErrorDraft {
  code: number;
  message: string;
  metadata: Metadata | undefined;
  /** The message's error union and the union-encoded declared value, if any. */
  declared: { type: avro.Type; value: unknown } | undefined;
}

/** Writes an ERROR body: `u8 code, string message [map<string> metadata] [declared error union]`. */
export function writeError(d: ErrorDraft, buf: Buffer, pos: number): number {
  if (pos + 1 > buf.length) return SHORT;
  buf[pos] = d.code;
  let p = stringType.encode(d.message, buf, pos + 1);
  if (p >= 0 && d.metadata !== undefined) p = metadataType.encode(d.metadata, buf, p);
  if (p >= 0 && d.declared !== undefined) p = d.declared.type.encode(d.declared.value, buf, p);
  return p < 0 ? p + SHORT : p;
}

/** Flags an ERROR frame needs for this draft. */
export function errorFlags(d: ErrorDraft): number {
  return (d.metadata !== undefined ? Flag.METADATA : 0) | (d.declared !== undefined ? Flag.DECLARED : 0);
}

/** The parsed prefix of an ERROR body; a declared error, if flagged, starts at `offset`. */
export interface ErrorHead {
  code: number;
  message: string;
  metadata: Metadata;
  offset: number;
}

/** Parses an ERROR body up to its declared error. Throws on malformed input. */
export function readErrorHead(flags: number, body: Buffer): ErrorHead {
  if (body.length < 1) throw new Error('error body too short');
  const msg = stringType.decode(body, 1);
  if (msg.offset < 0) throw new Error('truncated error message');
  let metadata = NO_METADATA;
  let p = msg.offset;
  if ((flags & Flag.METADATA) !== 0) {
    const r = metadataType.decode(body, p);
    if (r.offset < 0) throw new Error('truncated error metadata');
    metadata = r.value as Metadata;
    p = r.offset;
  }
  return { code: body[0]!, message: msg.value as string, metadata, offset: p };
}

/** Writes a GOAWAY body: `u32 lastId, u8 code, string message`. */
export function writeGoaway(d: { lastId: number; code: number; message: string }, buf: Buffer, pos: number): number {
  if (pos + 5 > buf.length) return SHORT;
  buf.writeUInt32BE(d.lastId, pos);
  buf[pos + 4] = d.code;
  const p = stringType.encode(d.message, buf, pos + 5);
  return p < 0 ? p + SHORT : p;
}

/** Parses a GOAWAY body. Throws on malformed input. */
export function readGoaway(body: Buffer): { lastId: number; code: number; message: string } {
  if (body.length < 5) throw new Error('goaway body too short');
  const msg = stringType.decode(body, 5);
  if (msg.offset < 0) throw new Error('truncated goaway message');
  return { lastId: body.readUInt32BE(0), code: body[4]!, message: msg.value as string };
}

/** Byte size of a metadata map as sent (for limits). */
export function metadataBytes(metadata: Metadata): number {
  return metadataType.toBuffer(metadata).length;
}

/**
 * Writes a metadata map alone: the body of HEADERS, and of an END flagged METADATA (SPEC.md section 13).
 */
export function writeMetadata(metadata: Metadata, buf: Buffer, pos: number): number {
  const p = metadataType.encode(metadata, buf, pos);
  return p < 0 ? p + SHORT : p;
}

/**
 * Reads a metadata map at `pos` of `body`, at most `maxBytes` of it: `undefined` when it is longer.
 * Throws on malformed input (the caller maps it to a code).
 */
export function readMetadata(body: Buffer, pos: number, maxBytes: number): { value: Metadata; end: number } | undefined {
  const r = readStringMap(body, pos, maxBytes);
  return r === undefined ? undefined : { value: r.value, end: r.end };
}

/** A value preceded, when `trailers` is set, by the trailers map: a RESPONSE flagged METADATA (SPEC.md section 13). */
export interface TrailedValue {
  trailers: Metadata | undefined;
  type: avro.Type;
  value: unknown;
}

/** Writes a {@link TrailedValue}: `[map<string> trailers] value`. */
export function writeTrailed(d: TrailedValue, buf: Buffer, pos: number): number {
  let p = pos;
  if (d.trailers !== undefined) {
    p = metadataType.encode(d.trailers, buf, p);
    if (p < 0) return p + SHORT;
  }
  return d.type.encode(d.value, buf, p);
}

/** Writes a CREDIT body: u32 count of further DATA frames the peer may send (at least 1). */
export function writeCredit(n: number, buf: Buffer, pos: number): number {
  if (pos + 4 > buf.length) return SHORT;
  buf.writeUInt32BE(n, pos);
  return pos + 4;
}

/** Reads a CREDIT body: u32 count, at least 1. Throws when the body is not 4 bytes or the count is 0. */
export function readCredit(body: Buffer): number {
  if (body.length !== 4) throw new Error(`CREDIT body of ${body.length} bytes, expected 4`);
  const n = body.readUInt32BE(0);
  if (n === 0) throw new Error('CREDIT of 0');
  return n;
}
