/**
 * Zero-copy encoding of large byte values. While a {@link FrameEncoder} encodes a frame body, the
 * codec's `bytes` type (codec/view-bytes.ts) writes a value of at least {@link SPLICE_MIN_BYTES} as its
 * length only and records the value here, with the body offset where its bytes belong; the encoder
 * then sends the value itself as one more buffer of the write, instead of copying it into the frame.
 * Outside a frame encoding nothing is collected and values are copied as usual.
 */

/** Byte values at least this long are spliced into frames instead of copied. */
export const SPLICE_MIN_BYTES = 64 * 1024;

/** One value spliced into a frame body: its bytes go at arena offset `at`. */
export interface Splice {
  at: number;
  data: Buffer;
}

/** The list the frame being encoded collects splices in; undefined when no frame is being encoded. */
export const splicing: { into: Splice[] | undefined } = { into: undefined };
