import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { NONE, type Negotiated } from '../framing/extensions.js';
import { Flag, FrameType } from '../framing/frame.js';
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
 * Sending REQUEST/RESPONSE/DATA messages with the negotiated extensions (SPEC.md section 12): held to the
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
  /**
   * Per id, its messages being compressed and those that came after them, in order: each goes on (to
   * the encoder or the outbox) once it and those before it are ready. `discard` drops the list, so
   * late results are dropped.
   */
  private readonly held = new Map<number, Held[]>();
  /** Unfragmented REQUESTs, RESPONSEs and DATA sent or received so far, and when {@link pace} last saw one. */
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
    const ids = this.outbox.unstartedIds();
    for (const [id, list] of this.held) {
      const first = list[0]!;
      if (!first.whole && first.type !== FrameType.DATA && !this.outbox.has(id)) ids.push(id);
    }
    return ids;
  }

  /** True while messages are still to be written (queued fragments, compression under way). */
  get sending(): boolean {
    return this.outbox.size > 0 || this.held.size > 0;
  }

  /** True while a message of `id` is not yet all in the encoder (fragments left, compression under way). */
  pending(id: number): boolean {
    return (this.outbox.size > 0 && this.outbox.has(id)) || (this.held.size > 0 && this.held.has(id));
  }

  /**
   * Appends a REQUEST, RESPONSE or DATA: one frame, or taken back to be compressed and/or fragmented,
   * or to wait behind an earlier message of its id still being compressed or fragmented.
   */
  send<T>(type: number, flags: number, id: number, value: T, write: BodyWriter<T>): void {
    const enc = this.encoder;
    enc.frame(type, flags, id, value, write);
    const n = this.negotiated;
    if (this.peerLimits !== undefined) this.checkPeerLimits(this.peerLimits, n, enc);
    if (n === NONE) return;
    const len = enc.lastBodyLength;
    if (n.compression && len >= this.options.compressAboveBytes) this.compressThenSend(type, flags, id, joined(enc.detachLast()));
    else if (n.peerPartialMessages > 0 && len > this.fragmentAbove) this.enqueue(type, flags, id, enc.detachLast(), false);
    else if (this.sending && this.pending(id)) this.enqueue(type, flags, id, enc.detachLast(), true);
    else this.smallMessages++;
  }

  /**
   * Takes back the frame just appended to the encoder (END, ERROR... of `id`) when a message of `id`
   * is still pending ({@link pending}), to go out after it: a stream's END must not overtake its DATA.
   */
  behind(type: number, flags: number, id: number): void {
    this.enqueue(type, flags, id, this.encoder.detachLast(), true);
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
    else if (n !== NONE && n.peerPartialMessages > 0 && body.length > this.fragmentAbove) this.enqueue(type, flags, id, [body], false);
    else if (this.sending && this.pending(id)) this.enqueue(type, flags, id, [body], true);
    else {
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
   * Forgets every outgoing message of `id`: unsent fragments, compressions under way, frames waiting
   * behind them. Says what became of them (a compression under way had written nothing yet).
   */
  discard(id: number): DiscardResult {
    let result: DiscardResult = 'none';
    if (this.outbox.size > 0) result = this.outbox.cancel(id);
    if (this.held.size > 0 && this.held.delete(id) && result === 'none') result = 'unwritten';
    return result;
  }

  /** Drops everything (the connection is gone or failed). */
  clear(): void {
    this.outbox.clear();
    this.held.clear();
  }

  /**
   * Queues `parts` after what `id` already has held or queued: in fragments, or `whole` as one frame
   * (a small message, or a frame that may not be fragmented).
   */
  private enqueue(type: number, flags: number, id: number, parts: readonly Buffer[], whole: boolean): void {
    const list = this.held.size > 0 ? this.held.get(id) : undefined;
    if (list !== undefined) list.push({ type, flags, parts, whole, ready: true });
    else {
      this.outbox.add(type, flags, id, parts, whole);
      if (!whole) this.host.fragmentsQueued();
    }
  }

  private compressThenSend(type: number, flags: number, id: number, body: Buffer): void {
    const entry: Held = { type, flags, parts: [body], whole: false, ready: false };
    let list = this.held.get(id);
    if (list === undefined) this.held.set(id, (list = []));
    list.push(entry);
    const ready = (z: Buffer | undefined): void => {
      if (z !== undefined && z.length < body.length) {
        entry.parts = [z];
        entry.flags = flags | Flag.COMPRESSED;
      }
      entry.ready = true;
      this.release(id, list);
    };
    compress(body).then(ready, () => ready(undefined));
  }

  /** Sends on the messages of `id` that are ready, in order, up to the first still compressing. */
  private release(id: number, list: Held[]): void {
    // Discarded meanwhile (a new list may hold later messages of the id), or the socket is gone.
    if (this.held.get(id) !== list || this.host.gone) return;
    while (list.length > 0 && list[0]!.ready) {
      const e = list.shift()!;
      const len = e.parts.length === 1 ? e.parts[0]!.length : e.parts.reduce((a, p) => a + p.length, 0);
      const fragment = !e.whole && this.negotiated.peerPartialMessages > 0 && len > this.fragmentAbove;
      if (fragment || (this.outbox.size > 0 && this.outbox.has(id))) {
        this.outbox.add(e.type, e.flags, id, e.parts, !fragment);
        if (fragment) this.host.fragmentsQueued();
      } else this.encoder.view(e.type, e.flags, id, -1, e.parts);
    }
    if (list.length === 0) this.held.delete(id);
    this.host.flushSoon();
  }
}

/** A message of an id held while it, or one before it, is being compressed. */
interface Held {
  type: number;
  flags: number;
  parts: readonly Buffer[];
  /** One frame, never fragmented (a small message, or END/ERROR queued behind). */
  whole: boolean;
  /** False while it is being compressed. */
  ready: boolean;
}

/** One buffer of a message's parts: the part itself, or a copy of them joined (for deflate). */
function joined(parts: readonly Buffer[]): Buffer {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
