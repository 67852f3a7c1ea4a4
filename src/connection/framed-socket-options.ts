import type { RpcError } from '../errors/rpc-error.js';
import type { FrameSink } from '../framing/frame.js';
import type { RpcObserver } from '../observability/observer.js';
import type { Clock } from '../util/clock.js';
import type { LargeMessageOptions } from './large-messages.js';

/** Filled options of a `FramedSocket`. */
export interface FramedSocketOptions extends LargeMessageOptions {
  maxFrameBytes: number;
  expectPreface: boolean;
  /**
   * Send a PING after this long without receiving anything; 0 disables keepalive. While the owner
   * awaits replies ({@link FramedSocketHandler.awaitingReplies}) the PING goes out after only
   * `probeAfterMs` (keepalive.ts) of silence.
   */
  keepaliveMs: number;
  /** Declare the peer dead when nothing arrives this long after a PING (our own loop stalls not counted). */
  keepaliveTimeoutMs: number;
  /** Stop reading from the socket while it cannot be written (a peer that does not read us). */
  pauseReadsWhenBlocked: boolean;
  /** Bytes allowed to wait for a peer that does not read before the connection is dropped. */
  maxQueuedBytes: number;
  /** Frames of one event-loop turn after which they are written at once, before the turn's end; 0 or absent: off. */
  earlyWriteFrames?: number;
  /**
   * Elements of one stream this side buffers before its consumer takes them: advertised as the
   * stream's credit `S` (SPEC.md section 13). Default 64; absent: 64.
   */
  maxBufferedElements?: number;
  /**
   * Count fragments waiting for the peer's WINDOW in `FramedSocket.queuedBytes`, beyond those of
   * one message: on a server they are answers a peer asked for (it could ask for gigabytes and never
   * acknowledge); a client's own requests are its caller's to bound. Default false.
   */
  countUnsentFragments?: boolean;
  /** Told of bytes in and out, when metrics are wanted. */
  observer?: RpcObserver | undefined;
  /** Time source and timers of keepalive, the stall check and fragment pacing. Default: the real clock; tests pass a fake one. */
  clock?: Clock | undefined;
}

/** What a `FramedSocket` reports to its owner. */
export interface FramedSocketHandler {
  onFrame: FrameSink;
  /** Called exactly once, when the socket is gone; `error` says why (code UNAVAILABLE for a plain close). */
  onClose(error: RpcError): void;
  /** A REQUEST or RESPONSE was refused before delivery (too large, does not inflate): fail that call. */
  onRefused(type: number, flags: number, id: number, error: RpcError): void;
  /** See `LargeMessagesSink.checkHead`: a REQUEST judged from its start before its body is all here. */
  checkHead?(flags: number, id: number, start: Buffer): boolean;
  /**
   * True while the owner waits for the peer to answer (a client with calls in flight). A peer that
   * says nothing then is probed early: a silent peer is found within a call's deadline, not after
   * `keepaliveMs` of idleness. Absent: keepalive probes only after `keepaliveMs`.
   */
  awaitingReplies?(): boolean;
  /**
   * Asked before a fragment, a compressed or an oversized REQUEST/RESPONSE, or a CONTINUATION, is
   * reassembled or inflated: false drops the frame (the owner fails the connection if it is a
   * protocol error). Absent: every such frame is taken.
   */
  admits?(type: number, flags: number, id: number): boolean;
  /** A PONG arrived (keepalive has seen it already). */
  onPong?(id: number): void;
  /**
   * Called after a flush handed the encoder's bytes (and any fragments it could) to the socket: every
   * frame appended before it is written, except messages `FramedSocket.pending` still names.
   */
  onWritten?(): void;
}
