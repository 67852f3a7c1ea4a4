import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { protocolError } from '../errors/protocol-error.js';
import { NONE, type Negotiated } from '../framing/extensions.js';
import { Flag, FrameType } from '../framing/frame.js';
import type { FrameEncoder } from '../framing/frame-encoder.js';
import { Reassembler } from '../framing/reassembler.js';
import { realClock, type Clock } from '../util/clock.js';
import { Inflations } from './inflations.js';
import { DEFAULT_STREAM_WINDOW, type LargeMessageOptions, type LargeMessagesSink } from './large-messages.js';
import type { Outbox } from './outbox.js';
import { StallCheck, type StallCheckHost } from './stall-check.js';

/** The socket side an {@link IncomingMessages} works with (the encoder it appends WINDOWs to is passed beside it). */
export interface IncomingHost extends StallCheckHost {
  /** Schedules a write of what was appended to the encoder. */
  flushSoon(): void;
}

/**
 * Receiving REQUEST/RESPONSE/DATA messages with the negotiated extensions (SPEC.md section 12): reassembly
 * of fragments, inflation, the limit on a message's size, and our WINDOW acknowledgements. It also
 * takes the peer's WINDOW, crediting the {@link Outbox} of our own fragments, and runs the stall
 * check (`stallTimeoutMs`) of both: partial messages that stopped coming, and our fragments the peer
 * stopped acknowledging. Plain version 1 frames never come here (see {@link wants}).
 */
export class IncomingMessages {
  private readonly reassembler: Reassembler;
  private negotiated: Negotiated = NONE;
  /** Compressed messages received, inflating or waiting to. */
  private readonly inflations: Inflations;
  /** Fragment body bytes read and not yet acknowledged with WINDOW. */
  private unacked = 0;
  private ackTimer: NodeJS.Immediate | undefined;
  /** Fragment body bytes read in all (a slow upload's progress, for idle checks). */
  fragmentBytesReceived = 0;
  /** Partial messages received that stopped coming, and our fragments the peer stopped acknowledging. */
  private readonly stalls: StallCheck;

  constructor(
    private readonly options: LargeMessageOptions & { maxBufferedElements?: number | undefined },
    /** The socket's encoder: WINDOW frames are appended here. */
    private readonly encoder: FrameEncoder,
    /** Our fragments waiting to go out (`OutgoingMessages.outbox`): the peer's WINDOW credits it. */
    private readonly outbox: Outbox,
    private readonly host: IncomingHost,
    private readonly sink: LargeMessagesSink,
    /** Time source of the stall check; tests pass a fake one. */
    clock: Clock = realClock,
  ) {
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
        plain: (type, flags, id, body) => {
          try {
            this.sink.onFrame(type, flags, id, body);
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
      // A stream's sender keeps to our window: S elements, and its END or ERROR, may wait behind one.
      { budget: options.account, headBytes: options.headBytes, maxPerId: (options.maxBufferedElements ?? DEFAULT_STREAM_WINDOW) + 4 },
    );
    this.reassembler = new Reassembler(
      { ...options, budget: options.account },
      {
        message: (type, flags, id, body) => this.deliver(type, flags, id, body),
        refused: (type, flags, id, error) => this.sink.onRefused(type, flags, id, error),
        head: checkHead,
      },
    );
    this.stalls = new StallCheck(options.stallTimeoutMs ?? 0, this.reassembler, outbox, host, sink, clock);
  }

  /** Starts using what the handshake negotiated. */
  use(negotiated: Negotiated): void {
    this.negotiated = negotiated;
  }

  /** Bytes held in partial messages received. */
  get bufferedBytes(): number {
    return this.reassembler.bufferedBytes;
  }

  /** Incoming messages not yet whole: being reassembled, or inflated. */
  get receiving(): number {
    return this.reassembler.size + this.inflations.size;
  }

  /** Ids of the incoming messages not yet whole. */
  receivingIds(): number[] {
    return [...this.reassembler.ids(), ...this.inflations.ids()];
  }

  /** True while compressed messages are inflating or waiting to: frames may have to wait {@link behind} them. Cheap. */
  get inflating(): boolean {
    return this.inflations.size > 0;
  }

  /**
   * Holds a plain frame of `id` behind its compressed messages still inflating, so the owner gets
   * them in the order they came (a stream's END after its last DATA). False when `id` has none.
   */
  behind(type: number, flags: number, id: number, body: Buffer): boolean {
    return this.inflations.behind(type, flags, id, body);
  }

  /** Forgets every incoming message of `id`: a partial message, decompressions under way, frames held behind them. */
  discard(id: number): void {
    if (this.reassembler.size > 0) this.reassembler.discard(id);
    this.inflations.abandon(id);
  }

  /** Drops everything (the connection is gone or failed), and stops the timers. */
  clear(): void {
    if (this.ackTimer !== undefined) clearImmediate(this.ackTimer);
    this.ackTimer = undefined;
    this.stalls.stop();
    this.reassembler.clear();
    this.inflations.clear();
  }

  /** For the frame decoder: where a spanning CONTINUATION body goes, so it is copied once. */
  target(type: number, id: number, len: number): Buffer | undefined {
    return this.reassembler.target(type, id, len);
  }

  /** True for a frame that must come here rather than straight to the connection. */
  wants(type: number, flags: number, bodyLen: number): boolean {
    if (type === FrameType.REQUEST || type === FrameType.RESPONSE || type === FrameType.DATA) {
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
      this.stalls.windows++;
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

  /**
   * Starts the stall check (see `stallTimeoutMs`) if it is wanted and not running. Cheap when running.
   * Called for a partial message received, and (through the host) for fragments of ours queued.
   */
  watchStalls(): void {
    this.stalls.watch();
  }

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
    if ((flags & Flag.COMPRESSED) === 0) {
      // Behind an earlier compressed message of its id still inflating (a stream's DATA): in order.
      if (this.inflations.size > 0 && this.inflations.behind(type, flags, id, body)) return;
      return this.sink.onFrame(type, flags, id, body);
    }
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
