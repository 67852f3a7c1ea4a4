/**
 * Handshake negotiation of the large-message extensions (SPEC.md section 11.1): fragments and
 * per-message compression, offered by the client in HELLO `meta` and accepted by the server in WELCOME
 * `meta`. Pure data: no sockets here.
 */

/** Meta key offering/accepting fragments; the value is a u32: partial messages the sender can receive at once. */
export const FRAGMENTS_META_KEY = 'avrpc.fragments';
/** Meta key offering (comma-separated list) or accepting (one name) a compression codec. */
export const COMPRESSION_META_KEY = 'avrpc.compression';
/** The one codec defined: raw DEFLATE (RFC 1951). */
export const DEFLATE = 'deflate';

/** What one side supports, from its options. */
export interface ExtensionSupport {
  /** Partial messages this side reassembles at once (its `P`); 0 when it does not do fragments. */
  maxPartialMessages: number;
  /** True when this side does compression. */
  compression: boolean;
}

/** What a connection uses once the handshake is done. */
export interface Negotiated {
  /** The peer's `P`: fragmented messages we may have open toward it; 0 when fragments are off. */
  peerPartialMessages: number;
  /** True when both sides compress. */
  compression: boolean;
}

/** Nothing negotiated: plain version 1. */
export const NONE: Negotiated = Object.freeze({ peerPartialMessages: 0, compression: false });

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** Reads a valid `avrpc.fragments` value (4 bytes, >= 1), or 0. */
function readPartial(value: Buffer | undefined): number {
  if (value === undefined || value.length !== 4) return 0;
  return value.readUInt32BE(0);
}

/** The meta entries a client adds to its HELLO. */
export function offer(own: ExtensionSupport): Record<string, Buffer> {
  const meta: Record<string, Buffer> = {};
  if (own.maxPartialMessages > 0) meta[FRAGMENTS_META_KEY] = u32(own.maxPartialMessages);
  if (own.compression) meta[COMPRESSION_META_KEY] = Buffer.from(DEFLATE, 'ascii');
  return meta;
}

/**
 * Server side: from the HELLO's meta and the server's own support, the meta entries to add to the
 * WELCOME and what the connection uses.
 */
export function accept(helloMeta: Record<string, Buffer>, own: ExtensionSupport): { meta: Record<string, Buffer>; negotiated: Negotiated } {
  const meta: Record<string, Buffer> = {};
  const peerPartial = own.maxPartialMessages > 0 ? readPartial(helloMeta[FRAGMENTS_META_KEY]) : 0;
  if (peerPartial > 0) meta[FRAGMENTS_META_KEY] = u32(own.maxPartialMessages);
  const offered = helloMeta[COMPRESSION_META_KEY]?.toString('ascii').split(',').map((s) => s.trim()) ?? [];
  const compression = own.compression && offered.includes(DEFLATE);
  if (compression) meta[COMPRESSION_META_KEY] = Buffer.from(DEFLATE, 'ascii');
  return { meta, negotiated: { peerPartialMessages: peerPartial, compression } };
}

/**
 * Client side: what the connection uses, from the final WELCOME's meta. Throws when the server
 * accepted something the client did not offer (a protocol error).
 */
export function accepted(welcomeMeta: Record<string, Buffer>, own: ExtensionSupport): Negotiated {
  const peerPartial = readPartial(welcomeMeta[FRAGMENTS_META_KEY]);
  const codec = welcomeMeta[COMPRESSION_META_KEY]?.toString('ascii');
  if (peerPartial > 0 && own.maxPartialMessages === 0) throw new Error('server accepted fragments the client did not offer');
  if (codec !== undefined && (!own.compression || codec !== DEFLATE)) throw new Error(`server chose compression ${JSON.stringify(codec)}, not offered`);
  return { peerPartialMessages: peerPartial, compression: codec !== undefined };
}
