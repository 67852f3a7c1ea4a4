import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { protocolError } from '../errors/protocol-error.js';
import { NONE, type ExtensionSupport, type Negotiated } from '../framing/extensions.js';
import { Flag, FrameType, type FrameSink } from '../framing/frame.js';
import type { BodyWriter, FrameEncoder } from '../framing/frame-encoder.js';
import { Reassembler } from '../framing/reassembler.js';
import { realClock, type Clock, type Timer } from '../util/clock.js';
import { compress } from './compression.js';
import { Inflations } from './inflations.js';
import type { MemoryAccount } from './memory-account.js';
import { Outbox, type DiscardResult } from './outbox.js';
import type { ServerLimits } from '../framing/limits.js';

/** How long fragments stay shallow after the last small message (see {@link LargeMessages.pace}). */
const SHALLOW_HOLD_MS = 100;

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

/** The socket side a {@link LargeMessages} works with (the encoder it appends to is passed beside it). */
export interface LargeMessagesHost {
  /** Schedules a write of what was appended to the encoder. */
  flushSoon(): void;
  fail(error: RpcError): void;
  /** True once the socket is gone: late (de)compression results are dropped. */
  readonly gone: boolean;
  /** True while we do not read the peer (its socket paused): its uploads cannot progress, no stall. */
  readonly readsPaused?: boolean;
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

/**
 * Sending and receiving REQUEST/RESPONSE messages with the negotiated extensions: compression,
 * fragments (queued in an {@link Outbox} that the socket writer drains), reassembly, the fragment
 * window, and `abandon` for calls that end early. Plain version 1 frames never come here.
 */
export class LargeMessages {
  readonly outbox: Outbox;
  private readonly reassembler: Reassembler;
  /** Limits the peer advertised (SPEC.md section 11.4): a client's requests are held to them before they go out. */
  private peerLimits: ServerLimits | undefined;
  /** Messages longer than this go in fragments (when negotiated): `fragmentBytes`, or less for a peer's small frames. */
  private fragmentAbove: number;
  private negotiated: Negotiated = NONE;
  /** Ids whose message is being compressed; `abandon` removes them so the result is dropped. */
  private readonly deflating = new Map<number, object>();
  /** Compressed messages received, inflating or waiting to. */
  private readonly inflations: Inflations;
  /** Fragment body bytes read and not yet acknowledged with WINDOW. */
  private unacked = 0;
  private ackTimer: NodeJS.Immediate | undefined;
  /** Fragment body bytes read in all (a slow upload's progress, for idle checks). */
  fragmentBytesReceived = 0;
  /** Unfragmented REQUESTs and RESPONSEs sent or received so far, and when {@link pace} last saw one. */
  smallMessages = 0;
  private smallSeen = 0;
  private shallowUntil = 0;
  /** WINDOW frames received so far, what the stall check last saw of them, and whether it saw fragments unacknowledged. */
  private windows = 0;
  private windowsMark = 0;
  private waitedForWindow = false;
  /** The stall check's interval, while it runs. */
  private stallTimer: Timer | undefined;
  private lastStallCheck = 0;

  constructor(
    private readonly options: LargeMessageOptions,
    /** The socket's encoder: whole frames and fragments are appended here. */
    private readonly encoder: FrameEncoder,
    private readonly host: LargeMessagesHost,
    private readonly sink: LargeMessagesSink,
    /** Time source of the stall check and of {@link pace}; tests pass a fake one. */
    private readonly clock: Clock = realClock,
  ) {
    this.fragmentAbove = options.fragmentBytes;
    this.outbox = new Outbox(options.fragmentBytes, options.interleaveWindowBytes, options.account);
    const checkHead =
      sink.checkHead === undefined
        ? undefined
        : (_type: number, flags: number, id: number, start: Buffer) => sink.checkHead!(flags, id, start);
    this.inflations = new Inflations(
      options.maxMessageBytes,
      options.maxInflations ?? Infinity,
      {
        head: checkHead,
        inflated: (type, flags, id, out) => {
          try {
            this.sink.onFrame(type, flags & ~Flag.COMPRESSED, id, out);
          } catch (err) {
            this.host.fail(RpcError.from(err));
          }
        },
        failed: (type, flags, id, err) => {
          const error =
            err instanceof RpcError
              ? err
              : new RpcError(
                  type === FrameType.REQUEST ? Code.INVALID_ARGUMENT : Code.INTERNAL,
                  `compressed message does not inflate: ${(err as Error).message}`,
                  { cause: err },
                );
          this.sink.onRefused(type, flags, id, error);
        },
      },
      () => this.host.gone,
      { budget: options.account, headBytes: options.headBytes },
    );
    this.reassembler = new Reassembler(
      { ...options, budget: options.account },
      {
        message: (type, flags, id, body) => this.deliver(type, flags, id, body),
        refused: (type, flags, id, error) => this.sink.onRefused(type, flags, id, error),
        head: checkHead,
      },
    );
  }

  /** The extensions this side offers (SPEC.md section 12.1), from its options. */
  get support(): ExtensionSupport {
    const o = this.options;
    return {
      maxPartialMessages: o.fragmentBytes > 0 ? o.maxPartialMessages : 0,
      windowBytes: o.fragmentWindowBytes,
      compression: o.compressAboveBytes > 0,
    };
  }

  /** Starts using what the handshake negotiated. */
  use(negotiated: Negotiated, peerLimits?: ServerLimits): void {
    this.negotiated = negotiated;
    this.peerLimits = peerLimits;
    // A message longer than the largest frame the peer reads goes in fragments too (when it takes them).
    this.fragmentAbove = Math.min(this.options.fragmentBytes, peerLimits?.maxFrameBytes ?? Infinity);
    this.outbox.configure(negotiated.peerPartialMessages, negotiated.peerWindowBytes, peerLimits?.maxFrameBytes);
  }

  /** Bytes held: partial messages received, and fragments not yet sent. */
  get heldBytes(): number {
    return this.reassembler.bufferedBytes + this.outbox.pendingBytes;
  }

  /** Incoming messages not yet whole: being reassembled, or inflated. */
  get receiving(): number {
    return this.reassembler.size + this.inflations.size;
  }

  /** Ids of the incoming messages not yet whole. */
  receivingIds(): number[] {
    return [...this.reassembler.ids(), ...this.inflations.ids()];
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
      this.watchStalls();
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
      this.watchStalls();
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
   * Forgets `id`: unsent fragments, a partial incoming message, (de)compression under way. Says what
   * became of its outgoing message (a compression under way had written nothing yet).
   */
  discard(id: number): DiscardResult {
    let result: DiscardResult = 'none';
    if (this.outbox.size > 0) result = this.outbox.cancel(id);
    if (this.reassembler.size > 0) this.reassembler.discard(id);
    if (this.deflating.size > 0 && this.deflating.delete(id)) result = 'unwritten';
    this.inflations.abandon(id);
    return result;
  }

  /** Drops everything (the connection is gone or failed). */
  clear(): void {
    if (this.ackTimer !== undefined) clearImmediate(this.ackTimer);
    this.ackTimer = undefined;
    this.clock.clear(this.stallTimer);
    this.stallTimer = undefined;
    this.reassembler.clear();
    this.outbox.clear();
    this.deflating.clear();
    this.inflations.clear();
    this.reassembler.clear();
  }

  /** For the frame decoder: where a spanning CONTINUATION body goes, so it is copied once. */
  target(type: number, id: number, len: number): Buffer | undefined {
    return this.reassembler.target(type, id, len);
  }

  /** True for a frame that must come here rather than straight to the connection. */
  wants(type: number, flags: number, bodyLen: number): boolean {
    if (type === FrameType.REQUEST || type === FrameType.RESPONSE) {
      return (flags & (Flag.MORE | Flag.COMPRESSED)) !== 0 || bodyLen > this.options.maxMessageBytes;
    }
    return type === FrameType.CONTINUATION || type === FrameType.WINDOW;
  }

  /** Takes a frame {@link wants} accepted. Throws an RpcError for a protocol error. */
  receive(type: number, flags: number, id: number, body: Buffer): void {
    const n = this.negotiated;
    if (type === FrameType.WINDOW) {
      if (n.peerPartialMessages === 0 || body.length !== 4) {
        throw protocolError('WINDOW frame malformed or without fragments negotiated');
      }
      this.outbox.credit += body.readUInt32BE(0);
      this.windows++;
      if (this.outbox.size > 0) this.host.flushSoon();
      return;
    }
    const fragment = type === FrameType.CONTINUATION || (flags & Flag.MORE) !== 0;
    if (fragment) {
      this.unacked += body.length;
      this.fragmentBytesReceived += body.length;
    }
    if (
      (fragment && n.peerPartialMessages === 0) ||
      (type !== FrameType.CONTINUATION && (flags & Flag.COMPRESSED) !== 0 && !n.compression)
    ) {
      throw protocolError(`${fragment ? 'fragment' : 'compressed frame'} on a connection that did not negotiate it`);
    }
    if (type === FrameType.CONTINUATION) this.reassembler.next(flags, id, body);
    else if (fragment) {
      this.reassembler.first(type, flags, id, body);
      this.watchStalls();
    } else this.deliver(type, flags, id, body);
  }

  /** Starts the stall check (see `stallTimeoutMs`) if it is wanted and not running. Cheap when running. */
  private watchStalls(): void {
    const ms = this.options.stallTimeoutMs ?? 0;
    if (this.stallTimer !== undefined || ms === 0 || this.host.gone) return;
    this.lastStallCheck = this.clock.now();
    this.reassembler.stalled(true);
    this.waitedForWindow = false;
    this.stallTimer = this.clock.interval(this.onStallCheck, ms);
  }

  private readonly onStallCheck = (): void => {
    const ms = this.options.stallTimeoutMs!;
    const now = this.clock.now();
    // Late by half a period or more: our own event loop stalled, the peer may have sent meanwhile.
    const late = now - this.lastStallCheck >= 1.5 * ms;
    this.lastStallCheck = now;
    if (this.reassembler.size === 0 && this.outbox.size === 0) {
      this.clock.clear(this.stallTimer);
      this.stallTimer = undefined;
      return;
    }
    for (const s of this.reassembler.stalled(late || this.host.readsPaused === true)) {
      this.reassembler.discard(s.id);
      this.sink.onRefused(
        s.type,
        s.flags,
        s.id,
        new RpcError(Code.RESOURCE_EXHAUSTED, `request stalled: no fragment of it for ${ms} ms (stallTimeoutMs)`),
      );
    }
    const waiting = this.outbox.size > 0 && this.outbox.unacknowledged > 0;
    if (waiting && this.waitedForWindow && !late && this.windows === this.windowsMark) {
      return this.host.fail(
        new RpcError(
          Code.RESOURCE_EXHAUSTED,
          `peer acknowledged none of ${this.outbox.unacknowledged} fragment bytes for ${ms} ms (stallTimeoutMs); ${this.outbox.pendingBytes} bytes unsent`,
        ),
      );
    }
    this.waitedForWindow = waiting;
    this.windowsMark = this.windows;
  };

  /**
   * Acknowledges the fragment bytes read, with one WINDOW once this event-loop turn's reads are done
   * (`setImmediate`): a busy loop reads many chunks in a turn, and one WINDOW per read cost a write,
   * a trip through the kernel on both sides, per 64 KiB.
   */
  acknowledge(): void {
    if (this.unacked === 0 || this.ackTimer !== undefined) return;
    this.ackTimer = setImmediate(this.sendAck);
  }

  private readonly sendAck = (): void => {
    this.ackTimer = undefined;
    if (this.unacked === 0 || this.host.gone) return;
    this.encoder.frame(FrameType.WINDOW, 0, 0, this.unacked, writeWindow);
    this.unacked = 0;
    this.host.flushSoon();
  };

  private compressThenSend(type: number, flags: number, id: number, body: Buffer): void {
    const token = {};
    this.deflating.set(id, token);
    const send = (data: Buffer, f: number): void => {
      if (this.deflating.get(id) !== token || this.host.gone) return;
      this.deflating.delete(id);
      if (this.negotiated.peerPartialMessages > 0 && data.length > this.fragmentAbove) {
        this.outbox.add(type, f, id, [data]);
        this.watchStalls();
      } else this.encoder.view(type, f, id, -1, data);
      this.host.flushSoon();
    };
    compress(body).then(
      (z) => (z.length < body.length ? send(z, flags | Flag.COMPRESSED) : send(body, flags)),
      () => send(body, flags),
    );
  }

  /** A whole message: checked against the limit, inflated if compressed, then handed on. */
  private deliver(type: number, flags: number, id: number, body: Buffer): void {
    const max = this.options.maxMessageBytes;
    if (body.length > max) {
      return this.sink.onRefused(
        type,
        flags,
        id,
        new RpcError(Code.RESOURCE_EXHAUSTED, `message of ${body.length} bytes exceeds maxMessageBytes (${max})`),
      );
    }
    if ((flags & Flag.COMPRESSED) === 0) return this.sink.onFrame(type, flags, id, body);
    if (!this.inflations.add(type, flags, id, body)) {
      this.sink.onRefused(
        type,
        flags,
        id,
        new RpcError(Code.RESOURCE_EXHAUSTED, `too many compressed messages inflating at once (max ${this.options.maxInflations})`),
      );
    }
  }
}

/** Writes a WINDOW body: u32 bytes acknowledged. */
function writeWindow(n: number, buf: Buffer, pos: number): number {
  if (pos + 4 > buf.length) return -4;
  buf.writeUInt32BE(n, pos);
  return pos + 4;
}

/** One buffer of a message's parts: the part itself, or a copy of them joined (for deflate). */
function joined(parts: readonly Buffer[]): Buffer {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
