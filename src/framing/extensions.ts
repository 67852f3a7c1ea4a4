/**
 * Handshake negotiation of the large-message extensions (SPEC.md section 12.1): fragments and
 * per-message compression, offered by the client in HELLO `meta` and accepted by the server in WELCOME
 * `meta`. Pure data: no sockets here.
 */

/**
 * Meta key offering/accepting fragments; the value is 8 bytes: u32 `P`, the partial messages the
 * sender can receive at once, and u32 `W`, the fragment bytes the peer may send ahead of acknowledgements.
 */
export const FRAGMENTS_META_KEY = 'avrpc.fragments';
/** Meta key offering (comma-separated list) or accepting (one name) a compression codec. */
export const COMPRESSION_META_KEY = 'avrpc.compression';
/**
 * Meta key offering/accepting streams (SPEC.md section 13), with response headers and trailers; the
 * value is 4 bytes: u32 `S` >= 1, the DATA frames of one stream the sender takes ahead of its CREDIT.
 */
export const STREAMS_META_KEY = 'avrpc.streams';
/** The one codec defined: raw DEFLATE (RFC 1951). */
export const DEFLATE = 'deflate';

/** What one side supports, from its options. */
export interface ExtensionSupport {
  /** Partial messages this side reassembles at once (its `P`); 0 when it does not do fragments. */
  maxPartialMessages: number;
  /** Fragment bytes the peer may send ahead of our acknowledgements (its `W`). */
  windowBytes: number;
  /** True when this side does compression. */
  compression: boolean;
  /** Elements of one stream this side buffers before its consumer takes them (its `S`); 0 when it does not do streams. */
  streamWindow: number;
}

/** What a connection uses once the handshake is done. */
export interface Negotiated {
  /** The peer's `P`: fragmented messages we may have open toward it; 0 when fragments are off. */
  peerPartialMessages: number;
  /** The peer's `W`: fragment bytes we may send ahead of its acknowledgements. */
  peerWindowBytes: number;
  /** True when both sides compress. */
  compression: boolean;
  /**
   * The peer's `S`: DATA frames of one stream we may send ahead of its CREDIT; 0 when streams (and
   * response headers and trailers) are off on this connection.
   */
  peerStreamWindow: number;
}

/** Nothing negotiated: plain version 1. */
export const NONE: Negotiated = Object.freeze({ peerPartialMessages: 0, peerWindowBytes: 0, compression: false, peerStreamWindow: 0 });

/** Smallest valid `W`. */
export const MIN_WINDOW_BYTES = 8;

function fragmentsValue(own: ExtensionSupport): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeUInt32BE(own.maxPartialMessages, 0);
  b.writeUInt32BE(own.windowBytes, 4);
  return b;
}

/** Reads a valid `avrpc.fragments` value (8 bytes, P >= 1, W >= 8), or `undefined`. */
function readFragments(value: Buffer | undefined): { p: number; w: number } | undefined {
  if (value === undefined || value.length !== 8) return undefined;
  const p = value.readUInt32BE(0);
  const w = value.readUInt32BE(4);
  return p >= 1 && w >= MIN_WINDOW_BYTES ? { p, w } : undefined;
}

function streamsValue(own: ExtensionSupport): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(own.streamWindow, 0);
  return b;
}

/** Reads a valid `avrpc.streams` value (4 bytes, S >= 1), or 0. */
function readStreams(value: Buffer | undefined): number {
  if (value === undefined || value.length !== 4) return 0;
  return value.readUInt32BE(0);
}

/** The meta entries a client adds to its HELLO. */
export function offer(own: ExtensionSupport): Record<string, Buffer> {
  const meta: Record<string, Buffer> = {};
  if (own.maxPartialMessages > 0) meta[FRAGMENTS_META_KEY] = fragmentsValue(own);
  if (own.compression) meta[COMPRESSION_META_KEY] = Buffer.from(DEFLATE, 'ascii');
  if (own.streamWindow > 0) meta[STREAMS_META_KEY] = streamsValue(own);
  return meta;
}

/**
 * Server side: from the HELLO's meta and the server's own support, the meta entries to add to the
 * WELCOME and what the connection uses.
 */
export function accept(helloMeta: Record<string, Buffer>, own: ExtensionSupport): { meta: Record<string, Buffer>; negotiated: Negotiated } {
  const meta: Record<string, Buffer> = {};
  const peer = own.maxPartialMessages > 0 ? readFragments(helloMeta[FRAGMENTS_META_KEY]) : undefined;
  if (peer !== undefined) meta[FRAGMENTS_META_KEY] = fragmentsValue(own);
  const offered =
    helloMeta[COMPRESSION_META_KEY]?.toString('ascii')
      .split(',')
      .map((s) => s.trim()) ?? [];
  const compression = own.compression && offered.includes(DEFLATE);
  if (compression) meta[COMPRESSION_META_KEY] = Buffer.from(DEFLATE, 'ascii');
  const peerStreamWindow = own.streamWindow > 0 ? readStreams(helloMeta[STREAMS_META_KEY]) : 0;
  if (peerStreamWindow > 0) meta[STREAMS_META_KEY] = streamsValue(own);
  return { meta, negotiated: { peerPartialMessages: peer?.p ?? 0, peerWindowBytes: peer?.w ?? 0, compression, peerStreamWindow } };
}

/**
 * Client side: what the connection uses, from the final WELCOME's meta. Throws when the server
 * accepted something the client did not offer (a protocol error).
 */
export function accepted(welcomeMeta: Record<string, Buffer>, own: ExtensionSupport): Negotiated {
  const peer = readFragments(welcomeMeta[FRAGMENTS_META_KEY]);
  const codec = welcomeMeta[COMPRESSION_META_KEY]?.toString('ascii');
  if (peer !== undefined && own.maxPartialMessages === 0) throw new Error('server accepted fragments the client did not offer');
  if (codec !== undefined && (!own.compression || codec !== DEFLATE))
    throw new Error(`server chose compression ${JSON.stringify(codec)}, not offered`);
  const peerStreamWindow = readStreams(welcomeMeta[STREAMS_META_KEY]);
  if (peerStreamWindow > 0 && own.streamWindow === 0) throw new Error('server accepted streams the client did not offer');
  return { peerPartialMessages: peer?.p ?? 0, peerWindowBytes: peer?.w ?? 0, compression: codec !== undefined, peerStreamWindow };
}
