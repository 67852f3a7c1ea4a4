/**
 * The server's limits, advertised in WELCOME `meta` (SPEC.md section 11.4), so that a client need not
 * learn them from refusals: a REQUEST frame over `maxFrameBytes` costs it the whole connection. Pure
 * data: no sockets here.
 */
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { Metadata } from './bodies.js';

/** WELCOME meta key carrying the server's limits. */
export const LIMITS_META_KEY = 'avrpc.limits';

/** Bytes of the version 1 value: four u32, big-endian. Later versions may append more u32 fields. */
export const LIMITS_VALUE_BYTES = 16;

/** The largest value a field holds: a limit at or above it is sent as this, and means "none the wire can reach". */
export const LIMIT_MAX = 0xffffffff;

/** Smallest `maxFrameBytes` a server may have (its option's minimum): a smaller advertised value is invalid. */
export const MIN_ADVERTISED_FRAME_BYTES = 64;

/** What a server advertises, in the order of the value's fields. */
export interface ServerLimits {
  /** Largest frame body the server reads (any frame, fragments included). */
  readonly maxFrameBytes: number;
  /** Largest REQUEST body, whole (after reassembly and decompression). */
  readonly maxMessageBytes: number;
  /** Largest request metadata map, as encoded. */
  readonly maxMetadataBytes: number;
  /** Calls that may run at once on one connection. */
  readonly maxConcurrentCalls: number;
}

const FIELDS = ['maxFrameBytes', 'maxMessageBytes', 'maxMetadataBytes', 'maxConcurrentCalls'] as const;

/**
 * The `avrpc.limits` value for `limits`: 16 bytes, four u32 big-endian. A limit above {@link LIMIT_MAX}
 * (Infinity included) is sent as LIMIT_MAX. Throws INVALID_ARGUMENT for a value that is not a
 * non-negative integer (a caller's bug, not a peer's input).
 */
export function encodeLimits(limits: ServerLimits): Buffer {
  const value = Buffer.allocUnsafe(LIMITS_VALUE_BYTES);
  FIELDS.forEach((name, i) => {
    const n = limits[name];
    if (!(n === Infinity || (Number.isInteger(n) && n >= 0)))
      throw new RpcError(Code.INVALID_ARGUMENT, `encodeLimits: ${name} must be a non-negative integer, got ${String(n)}`);
    value.writeUInt32BE(Math.min(n, LIMIT_MAX), i * 4);
  });
  return value;
}

/**
 * Why `value` is not a valid `avrpc.limits` value, or `undefined` when it is: shorter than 16 bytes,
 * not a whole number of u32 fields, `maxFrameBytes` below 64 or `maxConcurrentCalls` 0.
 */
export function limitsProblem(value: Buffer): string | undefined {
  if (value.length < LIMITS_VALUE_BYTES) return `avrpc.limits value of ${value.length} bytes, expected at least ${LIMITS_VALUE_BYTES}`;
  if (value.length % 4 !== 0) return `avrpc.limits value of ${value.length} bytes is not a whole number of u32 fields`;
  const frame = value.readUInt32BE(0);
  if (frame < MIN_ADVERTISED_FRAME_BYTES) return `avrpc.limits maxFrameBytes ${frame} is below ${MIN_ADVERTISED_FRAME_BYTES}`;
  if (value.readUInt32BE(12) === 0) return 'avrpc.limits maxConcurrentCalls is 0';
  return undefined;
}

/**
 * The limits a WELCOME's `avrpc.limits` value advertises, or `undefined` when it is absent or invalid
 * (see {@link limitsProblem}): the client then assumes nothing, as with a server that advertises none.
 * Fields beyond the first four are ignored. Never throws.
 */
export function decodeLimits(value: Buffer | undefined): ServerLimits | undefined {
  if (value === undefined || limitsProblem(value) !== undefined) return undefined;
  return {
    maxFrameBytes: value.readUInt32BE(0),
    maxMessageBytes: value.readUInt32BE(4),
    maxMetadataBytes: value.readUInt32BE(8),
    maxConcurrentCalls: value.readUInt32BE(12),
  };
}

/** The sizes of a REQUEST about to be sent, for {@link requestRefusal}. */
export interface OutgoingRequest {
  /** The REQUEST body (section 4 of SPEC.md: index, timeout, metadata, payload), uncompressed. */
  readonly bodyBytes: number;
  /** The metadata map as encoded ({@link encodedMetadataBytes}); 0 without metadata. */
  readonly metadataBytes: number;
  /** The largest frame body it will go in: the whole body (or compressed body) unfragmented, else its largest fragment. */
  readonly largestFrameBytes: number;
  /** Two-way calls of this client already outstanding on the connection. */
  readonly callsInFlight: number;
}

/**
 * The error a client fails a call with, locally and before sending it, when the server's advertised
 * `limits` say the server would refuse it (RESOURCE_EXHAUSTED, `mayHaveRun` false), or `undefined`.
 * A frame over `maxFrameBytes` would cost the whole connection (GOAWAY), not only this call.
 */
export function requestRefusal(limits: ServerLimits, r: OutgoingRequest): RpcError | undefined {
  let why: string | undefined;
  if (r.largestFrameBytes > limits.maxFrameBytes)
    why = `frame of ${r.largestFrameBytes} bytes exceeds the server's maxFrameBytes (${limits.maxFrameBytes})`;
  else if (r.metadataBytes > limits.maxMetadataBytes)
    why = `request metadata exceeds the server's maxMetadataBytes (${limits.maxMetadataBytes})`;
  else if (r.bodyBytes > limits.maxMessageBytes)
    why = `request of ${r.bodyBytes} bytes exceeds the server's maxMessageBytes (${limits.maxMessageBytes})`;
  else if (r.callsInFlight >= limits.maxConcurrentCalls) why = `too many concurrent calls (the server's max ${limits.maxConcurrentCalls})`;
  return why === undefined ? undefined : new RpcError(Code.RESOURCE_EXHAUSTED, why, { mayHaveRun: false });
}

/**
 * Bytes of `metadata` as the reference writes it (an Avro `map<string>`: one block of all entries, then
 * the 0 that ends the map; an empty map is that 0 alone), without encoding it; 0 for `undefined` (no
 * METADATA flag). What a server compares with its `maxMetadataBytes`.
 */
export function encodedMetadataBytes(metadata: Metadata | undefined): number {
  if (metadata === undefined) return 0;
  const keys = Object.keys(metadata);
  let n = keys.length > 0 ? varintBytes(keys.length) + 1 : 1;
  for (const k of keys) {
    const kb = Buffer.byteLength(k);
    const vb = Buffer.byteLength(metadata[k]!);
    n += varintBytes(kb) + kb + varintBytes(vb) + vb;
  }
  return n;
}

/** Bytes of a non-negative Avro `long` (zig-zag varint: 7 bits of 2n per byte). */
function varintBytes(n: number): number {
  let z = n * 2;
  let bytes = 1;
  while (z >= 128) {
    z = Math.floor(z / 128);
    bytes++;
  }
  return bytes;
}
