import type { ExtensionSupport } from '../framing/extensions.js';
import type { RpcError } from '../errors/rpc-error.js';
import type { FrameSink } from '../framing/frame.js';
import type { MemoryAccount } from './memory-account.js';

/**
 * The large-message extensions (SPEC.md section 12): compression, fragments and their window. A
 * framed socket handles them in two halves: `OutgoingMessages` (compression, the Outbox of
 * fragments and its pacing, the peer's limits) and `IncomingMessages` (reassembly, inflation,
 * our WINDOW acknowledgements, the stall check). Plain version 1 frames never go through either.
 * This file holds what both halves share: their options, and what this side offers from them.
 */

/** Options of the large-message extensions (SPEC.md section 12), filled. */
export interface LargeMessageOptions {
  /** Largest fragment frame body sent; larger messages are fragmented. 0: no fragments (none offered). */
  fragmentBytes: number;
  /** Largest message received, after reassembly and after decompression; larger ones are refused. */
  maxMessageBytes: number;
  /** Fragmented messages received at once (advertised to the peer as `P`). */
  maxPartialMessages: number;
  /** Fragment bytes the peer may send ahead of our acknowledgements (advertised as `W`). */
  fragmentWindowBytes: number;
  /** Fragment bytes we send ahead of the peer's acknowledgements while small messages share the connection. */
  interleaveWindowBytes: number;
  /** Compress outgoing messages of at least this many bytes. 0: no compression (none offered). */
  compressAboveBytes: number;
  /**
   * Compressed messages received that may be inflating or waiting to, at once; beyond it a message is
   * refused RESOURCE_EXHAUSTED before it is inflated. Default: no limit (a client inflates only
   * answers to its own calls; a server passes its `maxConcurrentCalls`).
   */
  maxInflations?: number;
  /**
   * Where the memory a peer makes us hold is counted (partial messages and frames, inflations, answers
   * queued): a server's share of its `maxBufferedBytes`. Default: not counted (a client).
   */
  account?: MemoryAccount | undefined;
  /**
   * A message being received in fragments that gets no byte for this long is refused RESOURCE_EXHAUSTED
   * (its buffer freed); fragments of ours waiting for the peer's WINDOW with none coming for this long
   * end the connection (GOAWAY RESOURCE_EXHAUSTED). Checked once per period: stalled after one to two.
   * 0 or absent: no such check (a client).
   */
  stallTimeoutMs?: number | undefined;
  /**
   * Bytes of an incoming REQUEST's start shown to `LargeMessagesSink.checkHead` before its body is
   * reassembled or inflated. Absent: no early check.
   */
  headBytes?: number | undefined;
}

/** Elements of one stream a side buffers by default (its advertised `S`, SPEC.md section 13). */
export const DEFAULT_STREAM_WINDOW = 64;

/** The extensions this side offers (SPEC.md section 12.1), from its options; streams are added by the socket. */
export function largeMessageSupport(o: LargeMessageOptions): Omit<ExtensionSupport, 'streamWindow'> {
  return {
    maxPartialMessages: o.fragmentBytes > 0 ? o.maxPartialMessages : 0,
    windowBytes: o.fragmentWindowBytes,
    compression: o.compressAboveBytes > 0,
  };
}

/** Where whole messages and refusals go (the connection's handler). */
export interface LargeMessagesSink {
  onFrame: FrameSink;
  onRefused(type: number, flags: number, id: number, error: RpcError): void;
  /**
   * The start of a REQUEST still arriving in fragments or inflating (at least `headBytes` of its body,
   * or all but the end of a shorter one): false when the owner refused the call there (and answered
   * it); the rest is then discarded unbuffered, or the inflation stopped. An owner that decides later
   * calls `abandon` then. Absent: requests are checked only once whole.
   */
  checkHead?(flags: number, id: number, start: Buffer): boolean;
}
