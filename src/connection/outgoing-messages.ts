import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { NONE, type Negotiated } from '../framing/extensions.js';
import { Flag } from '../framing/frame.js';
import type { BodyWriter, FrameEncoder } from '../framing/frame-encoder.js';
import type { ServerLimits } from '../framing/limits.js';
import { realClock, type Clock } from '../util/clock.js';
import { compress } from './compression.js';
import type { LargeMessageOptions } from './large-messages.js';
import { Outbox, type DiscardResult } from './outbox.js';

/** How long fragments stay shallow after the last small message (see {@link OutgoingMessages.pace}). */
const SHALLOW_HOLD_MS = 100;

/** The socket side an {@link OutgoingMessages} works with (the encoder it appends to is passed beside it). */
export interface OutgoingHost {
  /** Schedules a write of what was appended to the encoder. */
  flushSoon(): void;
  /** True once the socket is gone: late compression results are dropped. */
  readonly gone: boolean;
  /** Fragments were queued in the outbox: the stall check watches for the peer's WINDOW (`IncomingMessages.watchStalls`). */
  fragmentsQueued(): void;
}

/**
 * Sending REQUEST/RESPONSE messages with the negotiated extensions (SPEC.md section 12): held to the
 * limits the peer advertised, compressed, and fragmented into an {@link Outbox} that the socket writer
 * drains at the pace {@link pace} chooses. `discard` forgets a call that ended early. The incoming
 * side (and the peer's WINDOW, which credits the outbox) is `IncomingMessages`.
 */
export class OutgoingMessages {
  readonly outbox: Outbox;
  /** Limits the peer advertised (SPEC.md section 11.4): a client's requests are held to them before they go out. */
  private peerLimits: ServerLimits | undefined;
  /** Messages longer than this go in fragments (when negotiated): `fragmentBytes`, or less for a peer's small frames. */
  private fragmentAbove: number;
  private negotiated: Negotiated = NONE;
  /** Ids whose message is being compressed; `discard` removes them so the result is dropped. */
  private readonly deflating = new Map<number, object>();
  /** Unfragmented REQUESTs and RESPONSEs sent or received so far, and when {@link pace} last saw one. */
  smallMessages = 0;
  private smallSeen = 0;
  private shallowUntil = 0;

  constructor(
    private readonly options: LargeMessageOptions,
    /** The socket's encoder: whole frames and fragments are appended here. */
    private readonly encoder: FrameEncoder,
    private readonly host: OutgoingHost,
    /** Time source of {@link pace}; tests pass a fake one. */
    private readonly clock: Clock = realClock,
  ) {
    this.fragmentAbove = options.fragmentBytes;
    this.outbox = new Outbox(options.fragmentBytes, options.interleaveWindowBytes, options.account);
  }

  /** Starts using what the handshake negotiated, and the limits the peer advertised. */
  use(negotiated: Negotiated, peerLimits?: ServerLimits): void {
    this.negotiated = negotiated;
    this.peerLimits = peerLimits;
    // A message longer than the largest frame the peer reads goes in fragments too (when it takes them).
    this.fragmentAbove = Math.min(this.options.fragmentBytes, peerLimits?.maxFrameBytes ?? Infinity);
    this.outbox.configure(negotiated.peerPartialMessages, negotiated.peerWindowBytes, peerLimits?.maxFrameBytes);
  }

  /** Ids of outgoing messages none of which was written yet: waiting to open in the outbox, or being compressed. */
  unstartedIds(): number[] {
    return [...this.outbox.unstartedIds(), ...this.deflating.keys()];
  }

  /** True while messages are still to be written (queued fragments, compression under way). */
  get sending(): boolean {
    return this.outbox.size > 0 || this.deflating.size > 0;
  }

  /** True while the message of `id` is not yet all in the encoder (fragments left, compression under way). */
  pending(id: number): boolean {
    return (this.outbox.size > 0 && this.outbox.has(id)) || (this.deflating.size > 0 && this.deflating.has(id));
  }

  /** Appends a REQUEST or RESPONSE: one frame, or taken back to be compressed and/or fragmented. */
  send<T>(type: number, flags: number, id: number, value: T, write: BodyWriter<T>): void {
    const enc = this.encoder;
    enc.frame(type, flags, id, value, write);
    const n = this.negotiated;
    if (this.peerLimits !== undefined) this.checkPeerLimits(this.peerLimits, n, enc);
    if (n === NONE) return;
    const len = enc.lastBodyLength;
    if (n.compression && len >= this.options.compressAboveBytes) this.compressThenSend(type, flags, id, joined(enc.detachLast()));
    else if (n.peerPartialMessages > 0 && len > this.fragmentAbove) {
      this.outbox.add(type, flags, id, enc.detachLast());
      this.host.fragmentsQueued();
    } else this.smallMessages++;
  }

  /**
   * Takes back the message just appended, and throws RESOURCE_EXHAUSTED, when the peer advertised
   * limits it breaks (SPEC.md section 11.4): longer than its `maxMessageBytes`, or going in one frame
   * longer than its `maxFrameBytes` (judged uncompressed). Such a frame would cost the connection.
   */
  private checkPeerLimits(limits: ServerLimits, n: Negotiated, enc: FrameEncoder): void {
    const len = enc.lastBodyLength;
    const fragmented = n !== NONE && n.peerPartialMessages > 0 && len > this.fragmentAbove;
    let why: string | undefined;
    if (len > limits.maxMessageBytes) why = `request of ${len} bytes exceeds the server's maxMessageBytes (${limits.maxMessageBytes})`;
    else if (!fragmented && len > limits.maxFrameBytes)
      why = `request of ${len} bytes in one frame exceeds the server's maxFrameBytes (${limits.maxFrameBytes})`;
    if (why === undefined) return;
    enc.detachLast();
    throw new RpcError(Code.RESOURCE_EXHAUSTED, why, { mayHaveRun: false });
  }

  /**
   * Appends a REQUEST or RESPONSE whose body is already encoded (a worker's reply). The body is not
   * copied: fragments and a small frame's body are views of it, so it must not change until written.
   */
  sendEncoded(type: number, flags: number, id: number, body: Buffer): void {
    const n = this.negotiated;
    if (n !== NONE && n.compression && body.length >= this.options.compressAboveBytes) this.compressThenSend(type, flags, id, body);
    else if (n !== NONE && n.peerPartialMessages > 0 && body.length > this.fragmentAbove) {
      this.outbox.add(type, flags, id, [body]);
      this.host.fragmentsQueued();
    } else {
      this.smallMessages++;
      this.encoder.view(type, flags, id, -1, body);
    }
  }

  /**
   * Chooses how deep fragments may fill the pipe (see `Outbox.shallow`): shallow while small messages
   * went either way within the last {@link SHALLOW_HOLD_MS}, so they wait behind at most
   * `interleaveWindowBytes` of fragments; the peer's whole window for a bulk transfer alone, which
   * then streams without waiting on our event loop for every acknowledgement. Called per writing turn.
   */
  pace(): void {
    const outbox = this.outbox;
    if (this.smallMessages !== this.smallSeen) {
      this.smallSeen = this.smallMessages;
      this.shallowUntil = this.clock.now() + SHALLOW_HOLD_MS;
      outbox.shallow = true;
    } else if (outbox.shallow && this.clock.now() >= this.shallowUntil) {
      outbox.shallow = false;
    }
  }

  /**
   * Forgets the outgoing message of `id`: unsent fragments, a compression under way. Says what became
   * of it (a compression under way had written nothing yet).
   */
  discard(id: number): DiscardResult {
    let result: DiscardResult = 'none';
    if (this.outbox.size > 0) result = this.outbox.cancel(id);
    if (this.deflating.size > 0 && this.deflating.delete(id)) result = 'unwritten';
    return result;
  }

  /** Drops everything (the connection is gone or failed). */
  clear(): void {
    this.outbox.clear();
    this.deflating.clear();
  }

  private compressThenSend(type: number, flags: number, id: number, body: Buffer): void {
    const token = {};
    this.deflating.set(id, token);
    const send = (data: Buffer, f: number): void => {
      if (this.deflating.get(id) !== token || this.host.gone) return;
      this.deflating.delete(id);
      if (this.negotiated.peerPartialMessages > 0 && data.length > this.fragmentAbove) {
        this.outbox.add(type, f, id, [data]);
        this.host.fragmentsQueued();
      } else this.encoder.view(type, f, id, -1, data);
      this.host.flushSoon();
    };
    compress(body).then(
      (z) => (z.length < body.length ? send(z, flags | Flag.COMPRESSED) : send(body, flags)),
      () => send(body, flags),
    );
  }
}

/** One buffer of a message's parts: the part itself, or a copy of them joined (for deflate). */
function joined(parts: readonly Buffer[]): Buffer {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
