/**
 * Frame layout constants of wire protocol v1 (SPEC.md, "Frames"). Pure data: no sockets here.
 *
 * Every frame is a 10-byte header followed by `length` body bytes:
 * `u32 length | u8 type | u8 flags | u32 id | body`, all integers big-endian.
 */

/** Bytes in a frame header. */
export const HEADER_BYTES = 10;

/** Frame types. Unknown types are a protocol error. */
export const FrameType = {
  HELLO: 0x01,
  WELCOME: 0x02,
  REQUEST: 0x03,
  RESPONSE: 0x04,
  ERROR: 0x05,
  CANCEL: 0x06,
  PING: 0x07,
  PONG: 0x08,
  GOAWAY: 0x09,
  /** Next bytes of a fragmented REQUEST or RESPONSE (SPEC.md section 12); only once negotiated. */
  CONTINUATION: 0x0a,
  /** Acknowledges fragment bytes read, returning send credit to the peer (SPEC.md section 12.3). */
  WINDOW: 0x0b,
  /** Response headers of a call, an Avro `map<string>`, before its first answer frame (SPEC.md section 13); only once negotiated. */
  HEADERS: 0x0c,
  /** One element of a stream, either direction (SPEC.md section 13); only once negotiated. */
  DATA: 0x0d,
  /** Ends the sender's side of a stream: the client's half-close, or the server's successful end with trailers. */
  END: 0x0e,
  /** u32 count: more DATA frames of one stream the sender of CREDIT takes (per-stream flow control). */
  CREDIT: 0x0f,
} as const;

/** One of the numeric values of {@link FrameType}. */
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** The highest frame type this version understands. */
export const MAX_FRAME_TYPE = FrameType.CREDIT;

/** Flag bits. Which frame types may carry which bit is in SPEC.md; undefined bits must be zero. */
export const Flag = {
  /** REQUEST: a u32 relative timeout in milliseconds follows the message index. */
  DEADLINE: 0x01,
  /** REQUEST, ERROR: an Avro `map<string>` of metadata follows; RESPONSE, END: the trailers, before the value (streams negotiated). */
  METADATA: 0x02,
  /** REQUEST: one-way message, the server sends nothing back. */
  ONE_WAY: 0x04,
  /** ERROR: a declared Avro error value (the message's error union) ends the body. */
  DECLARED: 0x08,
  /**
   * ERROR: the server refused the request before dispatching it, so no handler ran for it (over a
   * limit, after GOAWAY, shutting down, undecodable...). Only this makes a non-idempotent call safe to
   * send again elsewhere: a handler may itself throw any code, UNAVAILABLE included, after side effects.
   */
  REFUSED: 0x10,
  /** REQUEST, RESPONSE, DATA: the message bytes are deflate-compressed (negotiated, SPEC.md section 12). */
  COMPRESSED: 0x40,
  /** REQUEST, RESPONSE, DATA, CONTINUATION: more fragments of this message follow (negotiated). */
  MORE: 0x80,
} as const;

/** The connection preface a client sends before its first frame: ASCII "AVRP", version 1, reserved 0. */
export const PREFACE = Buffer.from([0x41, 0x56, 0x52, 0x50, 0x01, 0x00]);

/** Wire protocol version carried in the preface. */
export const PROTOCOL_VERSION = 1;

/** Largest request id; ids are u32, 0 is reserved for connection-level frames. */
export const MAX_ID = 0xffffffff;

/** Receives each decoded frame. `body` is a view that stays valid after the call returns. */
export type FrameSink = (type: number, flags: number, id: number, body: Buffer) => void;
/**
 * True when request id `id` comes after `lastId` in wrap-around order (u32 serial-number
 * arithmetic): 1 comes after 0xffffffff, and ids less than 2^31 apart compare by their distance.
 */
export function idAfter(id: number, lastId: number): boolean {
  const distance = (id - lastId) >>> 0;
  return distance > 0 && distance < 0x80000000;
}
