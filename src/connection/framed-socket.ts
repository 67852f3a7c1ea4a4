import type { Socket } from 'node:net';
import { Code } from '../errors/code.js';
import { RpcError, fromNodeError } from '../errors/rpc-error.js';
import { protocolError } from '../errors/protocol-error.js';
import { writeGoaway } from '../framing/bodies.js';
import { FrameType, PREFACE, type FrameSink } from '../framing/frame.js';
import { FrameDecoder, type FrameDecoderOptions } from '../framing/frame-decoder.js';
import { FrameEncoder, type BodyWriter } from '../framing/frame-encoder.js';
import type { ExtensionSupport, Negotiated } from '../framing/extensions.js';
import { realClock } from '../util/clock.js';
import { Keepalive } from './keepalive.js';
import { ReadClock } from './read-clock.js';
import type { FramedSocketHandler, FramedSocketOptions } from './framed-socket-options.js';
import { IncomingMessages } from './incoming-messages.js';
import { DEFAULT_STREAM_WINDOW, largeMessageSupport } from './large-messages.js';
import { OutgoingMessages } from './outgoing-messages.js';
import { SocketWriter } from './socket-writer.js';
import type { ServerLimits } from '../framing/limits.js';
import type { DiscardResult } from './outbox.js';

export type { DiscardResult } from './outbox.js';

/** Frames with no body that a connection sends on its own: keepalive, barriers, cancellation. */
export type SignalFrame = typeof FrameType.PING | typeof FrameType.PONG | typeof FrameType.CANCEL;

/** How long an ended socket may wait for its peer to close before it is destroyed. */
const LINGER_MS = 1000;

/**
 * A socket with framing: decodes incoming frames, hands outgoing ones to its {@link SocketWriter}
 * (one write per tick, backpressure), answers PINGs, detects a silent peer with keepalive PINGs, and
 * closes in order (GOAWAY, the last bytes, a bounded linger). Knows nothing of calls; client and
 * server sessions build on it. Every method that appends a frame schedules the write itself, so an
 * owner cannot forget one.
 */
export class FramedSocket {
  /** Frames of this tick; the writer takes them in one batch. */
  private readonly encoder = new FrameEncoder();
  /** The clocks as of the read being parsed: one reading serves all the frames of a chunk. */
  readonly clock = new ReadClock();
  private readonly writer: SocketWriter;
  private readonly decoder: FrameDecoder;
  /** The decoder's options, which it reads per frame: {@link limitFrames} changes them. */
  private readonly decoderOptions: FrameDecoderOptions;
  private closed = false;
  private closeError: RpcError | undefined;
  private readonly keepalive: Keepalive;
  private lingerTimer: NodeJS.Timeout | undefined;
  /** Large messages (SPEC.md section 12) sent and received; the incoming half runs the stall check of both. */
  private readonly outgoing: OutgoingMessages;
  private readonly incoming: IncomingMessages;
  private endPending = false;
  private failed = false;
  /** What the stall check last saw of the writer's drains and unsent bytes (see {@link watchStall}). */
  private stallDrains = 0;
  private stallMark = 0;

  constructor(
    readonly socket: Socket,
    private readonly options: FramedSocketOptions,
    private readonly handler: FramedSocketHandler,
  ) {
    const clock = options.clock ?? realClock;
    // One host for both halves: our fragments queued start the stall check, run by the incoming half.
    const host = {
      flushSoon: () => this.flushSoon(),
      fail: (error: RpcError) => this.fail(error),
      fragmentsQueued: () => this.incoming.watchStalls(),
      get gone() {
        return socket.destroyed;
      },
      get readsPaused() {
        return socket.isPaused();
      },
    };
    this.outgoing = new OutgoingMessages(options, this.encoder, host, clock);
    this.incoming = new IncomingMessages(options, this.encoder, this.outgoing.outbox, host, handler, clock);
    this.keepalive = new Keepalive(
      options.keepaliveMs,
      options.keepaliveTimeoutMs,
      {
        ping: (id) => this.signal(FrameType.PING, id),
        dead: (error) => this.destroy(error),
        awaitingReplies: () => handler.awaitingReplies?.() === true,
      },
      clock,
    );
    const closed = (): boolean => this.closed;
    this.writer = new SocketWriter(socket, this.encoder, this.outgoing, options, {
      get isClosed() {
        return closed();
      },
      flushed: (wrote) => this.afterFlush(wrote),
    });
    this.decoderOptions = { ...options, budget: options.account, target: (type, _flags, id, len) => this.incoming.target(type, id, len) };
    this.decoder = new FrameDecoder(this.decoderOptions, this.onFrame);
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onSocketClose);
  }

  /**
   * The owner's handshake is done: from now on frames up to `maxFrameBytes` are accepted, large
   * messages use what was `negotiated`, and keepalive PINGs start (a PING, or the PONG it asks for,
   * written before the client's preface would make the server drop the connection).
   */
  established(negotiated: Negotiated, maxFrameBytes: number, peerLimits?: ServerLimits): void {
    this.outgoing.use(negotiated, peerLimits);
    this.incoming.use(negotiated);
    this.limitFrames(maxFrameBytes, 'maxFrameBytes');
    if (!this.closed) this.keepalive.start();
  }

  /**
   * Sets the largest frame body accepted from the next frame on, and the option a refusal names: a
   * server accepts far less than `maxFrameBytes` before its handshake completes.
   */
  limitFrames(maxFrameBytes: number, limitName: string): void {
    this.decoderOptions.maxFrameBytes = maxFrameBytes;
    this.decoderOptions.limitName = limitName;
  }

  /** The owner now awaits a reply (a call was sent): see `Keepalive.expectReply`. Cheap per call. */
  expectReply(): void {
    this.keepalive.expectReply();
  }

  /** True when our PING has gone unanswered for a while: see `Keepalive.unanswered`. */
  get unanswered(): boolean {
    return this.keepalive.unanswered;
  }

  /** True once the socket is closed or closing. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** The extensions this side offers (SPEC.md section 12.1), from its options. */
  get support(): ExtensionSupport {
    return { ...largeMessageSupport(this.options), streamWindow: this.options.maxBufferedElements ?? DEFAULT_STREAM_WINDOW };
  }

  /** True while a message of `id` (any of a stream's) is not yet handed to the socket in full (fragments, compression). */
  isWriting(id: number): boolean {
    return this.outgoing.pending(id);
  }

  /** Bytes held for large messages: partial messages received, and fragments not yet sent. */
  get largeMessageBytes(): number {
    return this.incoming.bufferedBytes + this.outgoing.outbox.pendingBytes;
  }

  /** Incoming REQUEST/RESPONSE/DATA messages begun and not yet whole (fragments still to come, or inflating). */
  get receiving(): number {
    return this.incoming.receiving;
  }

  /** Fragment body bytes received so far on this connection (grows while uploads progress). */
  get fragmentBytesReceived(): number {
    return this.incoming.fragmentBytesReceived;
  }

  /** Ids of the incoming messages counted by {@link receiving}. */
  receivingIds(): number[] {
    return this.incoming.receivingIds();
  }

  /**
   * Discards every queued outgoing message not one byte of which was written yet (large ones waiting
   * for a fragment slot or credit, or being compressed), and returns their ids: after a graceful
   * GOAWAY they can go elsewhere, as the peer never saw them.
   */
  discardUnstarted(): number[] {
    const ids = this.outgoing.unstartedIds();
    for (const id of ids) this.discard(id);
    return ids;
  }

  /**
   * Appends a REQUEST, RESPONSE or DATA and schedules the write. A large message is compressed and/or
   * fragmented when the handshake negotiated it; a small one is one frame, as in plain version 1. One
   * id may send several (a stream's DATA): they go out in order, a small one after a large one.
   * Throws (appending nothing) when `write` throws. Returns true when the frame holds the caller's own
   * Buffers (framing/splices.ts): they must not change until {@link afterWrites} says so.
   */
  message<T>(type: number, flags: number, id: number, value: T, write: BodyWriter<T>): boolean {
    this.outgoing.send(type, flags, id, value, write);
    this.flushSoon();
    return this.encoder.lastSpliced;
  }

  /** Like {@link message} for a body already encoded, which is sent without a copy (see `OutgoingMessages.sendEncoded`). */
  messageBytes(type: number, flags: number, id: number, body: Buffer): void {
    this.outgoing.sendEncoded(type, flags, id, body);
    this.flushSoon();
  }

  /**
   * Appends a frame (HELLO, WELCOME, ERROR, GOAWAY, HEADERS, END, CREDIT) and schedules the write.
   * Throws, appending nothing, when `write` throws. A frame of an id whose earlier message is still
   * going out (fragments, compression) follows it, so a stream's END or ERROR never overtakes its
   * DATA; CREDIT, about the other direction, need not wait.
   */
  frame<T>(type: number, flags: number, id: number, value: T, write: BodyWriter<T>): void {
    this.encoder.frame(type, flags, id, value, write);
    if (this.outgoing.sending && type !== FrameType.CREDIT && id !== 0 && this.outgoing.pending(id)) this.outgoing.behind(type, flags, id);
    this.flushSoon();
  }

  /** Appends a body-less PING, PONG or CANCEL and schedules the write; nothing once closed. */
  signal(type: SignalFrame, id: number): void {
    if (this.closed) return;
    this.encoder.raw(type, 0, id, null);
    this.flushSoon();
  }

  /** Appends the client's connection preface (SPEC.md section 2); the HELLO that follows schedules the write. */
  preface(): void {
    this.encoder.bytes(PREFACE);
  }

  /**
   * Forgets everything about `id` in flight: unsent fragments of its messages (every DATA of a stream
   * queued, and the frames behind them), its partial incoming message, compressions or decompressions
   * under way. For a cancelled or settled call. Says what became of its outgoing messages: never
   * queued or all written, dropped unwritten, or cut short.
   */
  discard(id: number): DiscardResult {
    const result = this.outgoing.discard(id);
    this.incoming.discard(id);
    // An end waiting for this message's fragments may go ahead now.
    if (this.endPending) this.flushSoon();
    return result;
  }

  /** Body length of the frame appended last (uncompressed): what observers report as a message's size. */
  get lastBodyLength(): number {
    return this.encoder.lastBodyLength;
  }

  /** Bytes waiting for the peer (see `SocketWriter.queuedBytes`): what `maxQueuedBytes` caps. */
  get queuedBytes(): number {
    return this.writer.queuedBytes;
  }

  /** Schedules one write of everything appended during this tick (the writer's). */
  private flushSoon(): void {
    this.writer.schedule();
  }

  /**
   * Calls `cb` once every byte appended so far has been written by the socket (or the socket is
   * gone): after that it no longer reads any Buffer it was given. At once when nothing is pending.
   */
  afterWrites(cb: () => void): void {
    this.writer.afterWrites(cb);
  }

  /** Sends GOAWAY with a code (protocol errors, shutdown), flushes, and ends the socket. */
  fail(error: RpcError): void {
    if (this.closed || this.failed) return;
    // Its end may wait for a blocked socket: read nothing more from a peer we gave up on meanwhile.
    this.failed = true;
    this.dropLarge();
    this.encoder.frame(FrameType.GOAWAY, 0, 0, { lastId: 0, code: error.code, message: error.message }, writeGoaway);
    this.end(error);
  }

  /** Flushes what is queued, then ends the socket; pending work is reported with `error`. */
  end(error?: RpcError): void {
    if (this.closed) return;
    this.closeError ??= error;
    if (this.outgoing.sending || (this.writer.blocked && this.writer.holdsFrames)) {
      // Bytes not yet handed to the socket (fragments, or frames queued while it is blocked, which a
      // flush does not write): end once they are written, or the last answers and GOAWAY are lost.
      this.endPending = true;
      this.watchStall();
      return this.flushSoon();
    }
    this.writer.flushNow();
    this.closed = true;
    this.keepalive.stop();
    this.socket.end();
    // A peer that never reads would keep a half-closed socket forever: bound it.
    clearTimeout(this.lingerTimer);
    this.lingerTimer = setTimeout(() => this.socket.destroy(), LINGER_MS);
    this.lingerTimer.unref();
  }

  /**
   * Bounds an end waiting for its bytes to go out: the socket is destroyed once LINGER_MS pass with
   * nothing leaving, so a peer that stopped reading cannot hold it; a slow reader still gets it all.
   */
  private watchStall(): void {
    if (this.lingerTimer !== undefined) return;
    this.stallMark = this.writer.unsentBytes;
    this.stallDrains = this.writer.drains;
    this.lingerTimer = setTimeout(this.onStallCheck, LINGER_MS);
    this.lingerTimer.unref();
  }

  private readonly onStallCheck = (): void => {
    if (!this.endPending || this.closed) return;
    const unsent = this.writer.unsentBytes;
    // A compression under way (sending, nothing queued yet) is progress too.
    const compressing = this.outgoing.sending && this.outgoing.outbox.size === 0;
    if (unsent !== this.stallMark || this.writer.drains !== this.stallDrains || compressing) {
      this.stallMark = unsent;
      this.stallDrains = this.writer.drains;
      this.lingerTimer!.refresh();
      return;
    }
    this.destroy(
      new RpcError(Code.UNAVAILABLE, `peer read nothing for ${LINGER_MS} ms while the connection closed (${unsent} bytes unsent)`),
    );
  };

  /** Closes at once, dropping anything unsent. */
  destroy(error: RpcError): void {
    this.closeError ??= error;
    this.closed = true;
    this.dropLarge();
    this.keepalive.stop();
    this.socket.destroy();
  }

  private dropLarge(): void {
    this.outgoing.clear();
    this.incoming.clear();
    this.writer.stopRounds();
  }

  /**
   * After each flush of the writer (`wrote`: it handed bytes to the socket): one-way calls may settle,
   * a close waiting for its bytes may go ahead, a peer that does not read is paused, and one that lets
   * more than `maxQueuedBytes` pile up is dropped.
   */
  private afterFlush(wrote: boolean): void {
    if (wrote) {
      // The owner may settle calls on it (one-way), and end us.
      this.handler.onWritten?.();
      if (this.closed) return;
      if (this.endPending && !this.outgoing.sending && !this.closed) {
        this.endPending = false;
        this.end();
        return;
      }
      if (this.writer.blocked) {
        // A peer that does not read is paused; but while a few large messages stream out, being blocked
        // is normal and reads go on, so CANCELs and small calls still get through; up to half the cap,
        // since a peer advertising a huge P would otherwise never be paused. Pausing while blocked is
        // safe: 'drain' resumes. (Not blocked, waiting for a WINDOW, we must read: the cap alone bounds it.)
        const outbox = this.outgoing.outbox;
        // A stream's DATA queued one behind another count once: it streams one message at a time.
        const streaming = outbox.size > 0 && outbox.ids <= outbox.maxOpen && this.writer.queuedBytes <= this.options.maxQueuedBytes / 2;
        if (this.options.pauseReadsWhenBlocked && !streaming) this.socket.pause();
      }
    }
    // Also when not blocked: fragments waiting for a WINDOW that never comes never block the socket.
    const queued = this.writer.queuedBytes;
    if (queued > this.options.maxQueuedBytes) {
      this.destroy(
        new RpcError(Code.RESOURCE_EXHAUSTED, `peer does not read: ${queued} bytes queued (max ${this.options.maxQueuedBytes})`),
      );
    }
  }

  private readonly onData = (chunk: Buffer): void => {
    this.keepalive.gotData = true;
    this.options.observer?.bytesReceived?.(chunk.length);
    this.clock.begin();
    try {
      this.decoder.push(chunk);
    } catch (err) {
      this.clock.end();
      return this.fail(RpcError.from(err));
    }
    this.clock.end();
    // One acknowledgement per read: the peer's fragment credit comes back as fast as we consume.
    if (!this.closed) this.incoming.acknowledge();
  };

  private readonly onFrame: FrameSink = (type, flags, id, body) => {
    // The rest of a chunk after we gave up on the peer (protocol error, queue cap) is not worth any work.
    if (this.closed || this.failed) return;
    if (type === FrameType.PING || type === FrameType.PONG || type === FrameType.CANCEL) {
      // Body-less by SPEC.md section 2's frame table: bytes there mean a peer not speaking our protocol.
      if (body.length !== 0) return this.fail(protocolError(`frame type ${type} with a ${body.length}-byte body (it has none)`));
      if (type === FrameType.CANCEL) return this.handler.onFrame(type, flags, id, body);
    }
    if (type === FrameType.PING) {
      this.signal(FrameType.PONG, id);
    } else if (type === FrameType.PONG) {
      this.keepalive.pong(id);
      this.handler.onPong?.(id);
    } else if (this.incoming.wants(type, flags, body.length)) {
      // Before any reassembly or inflation: the owner may refuse answers for ids it has no call for.
      if (type !== FrameType.WINDOW && this.handler.admits?.(type, flags, id) === false) return;
      this.incoming.receive(type, flags, id, body);
    } else {
      if (type === FrameType.REQUEST || type === FrameType.RESPONSE || type === FrameType.DATA) this.outgoing.smallMessages++;
      // After a compressed message of its id still inflating (a stream's DATA, then its END): in order.
      if (this.incoming.inflating && type !== FrameType.CREDIT && this.incoming.behind(type, flags, id, body)) return;
      this.handler.onFrame(type, flags, id, body);
    }
  };

  private readonly onError = (err: Error): void => {
    this.closeError ??= fromNodeError(err);
  };

  private readonly onSocketClose = (): void => {
    // The socket reads none of our Buffers any more.
    this.writer.closed();
    this.closed = true;
    this.dropLarge();
    this.keepalive.stop();
    clearTimeout(this.lingerTimer);
    this.handler.onClose(this.closeError ?? new RpcError(Code.UNAVAILABLE, 'connection closed by peer'));
  };
}
