import type { Socket } from 'node:net';
import { Code } from '../errors/code.js';
import { RpcError, fromNodeError } from '../errors/rpc-error.js';
import { writeGoaway } from '../framing/bodies.js';
import { FrameType, PREFACE, type FrameSink } from '../framing/frame.js';
import { FrameDecoder, type FrameDecoderOptions } from '../framing/frame-decoder.js';
import { FrameEncoder, type BodyWriter } from '../framing/frame-encoder.js';
import type { ExtensionSupport, Negotiated } from '../framing/extensions.js';
import { realClock } from '../util/clock.js';
import { Keepalive } from './keepalive.js';
import type { FramedSocketHandler, FramedSocketOptions } from './framed-socket-options.js';
import { LargeMessages } from './large-messages.js';
import type { DiscardResult } from './outbox.js';

export type { DiscardResult } from './outbox.js';

/** Frames with no body that a connection sends on its own: keepalive, barriers, cancellation. */
export type SignalFrame = typeof FrameType.PING | typeof FrameType.PONG | typeof FrameType.CANCEL;

/** How long an ended socket may wait for its peer to close before it is destroyed. */
const LINGER_MS = 1000;
/** Fragment bytes written per event-loop turn at most, so reads and small calls get their turn. */
const ROUND_BUDGET_BYTES = 1024 * 1024;

/**
 * A socket with framing: decodes incoming frames, batches outgoing frames into one write per tick,
 * honours backpressure, answers PINGs and detects a silent peer with keepalive PINGs. Knows nothing of
 * calls; client and server sessions build on it. It owns its writes: every method that appends a
 * frame schedules the flush itself, so an owner cannot forget one.
 */
export class FramedSocket {
  /** Frames of this tick, written in one batch by {@link flush}. */
  private readonly encoder = new FrameEncoder();
  private readonly decoder: FrameDecoder;
  /** The decoder's options, which it reads per frame: {@link limitFrames} changes them. */
  private readonly decoderOptions: FrameDecoderOptions;
  private flushScheduled = false;
  private blocked = false;
  private closed = false;
  private closeError: RpcError | undefined;
  private readonly keepalive: Keepalive;
  private lingerTimer: NodeJS.Timeout | undefined;
  /** Compression, fragments and their window (SPEC.md section 12). */
  private readonly large: LargeMessages;
  private roundTimer: NodeJS.Immediate | undefined;
  private endPending = false;
  private failed = false;
  /** Write batches handed to the socket, and written by it (its write callbacks, in order). */
  private batchesHanded = 0;
  private batchesWritten = 0;
  /** Callbacks waiting for a batch to be written (see {@link afterWrites}). */
  private fences: { batch: number; cb: () => void }[] = [];
  /** Drain events so far, and what the stall check last saw (see {@link watchStall}). */
  private drains = 0;
  private stallDrains = 0;
  private stallMark = 0;
  /** Socket bytes unwritten that the memory account was last told of (see {@link countSocketBytes}). */
  private socketBytes = 0;

  constructor(
    readonly socket: Socket,
    private readonly options: FramedSocketOptions,
    private readonly handler: FramedSocketHandler,
  ) {
    const clock = options.clock ?? realClock;
    this.large = new LargeMessages(
      options,
      this.encoder,
      {
        flushSoon: () => this.flushSoon(),
        fail: (error) => this.fail(error),
        get gone() {
          return socket.destroyed;
        },
        get readsPaused() {
          return socket.isPaused();
        },
      },
      handler,
      clock,
    );
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
    this.decoderOptions = { ...options, budget: options.account, target: (type, _flags, id, len) => this.large.target(type, id, len) };
    this.decoder = new FrameDecoder(this.decoderOptions, this.onFrame);
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('drain', this.onDrain);
    socket.on('error', this.onError);
    socket.on('close', this.onSocketClose);
  }

  /**
   * The owner's handshake is done: from now on frames up to `maxFrameBytes` are accepted, large
   * messages use what was `negotiated`, and keepalive PINGs start (a PING, or the PONG it asks for,
   * written before the client's preface would make the server drop the connection).
   */
  established(negotiated: Negotiated, maxFrameBytes: number): void {
    this.large.use(negotiated);
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
    return this.large.support;
  }

  /** True while the message of `id` is not yet handed to the socket in full (fragments, compression). */
  isWriting(id: number): boolean {
    return this.large.pending(id);
  }

  /** Bytes held for large messages: partial messages received, and fragments not yet sent. */
  get largeMessageBytes(): number {
    return this.large.heldBytes;
  }

  /** Incoming REQUEST/RESPONSE messages begun and not yet whole (fragments still to come, or inflating). */
  get receiving(): number {
    return this.large.receiving;
  }

  /** Fragment body bytes received so far on this connection (grows while uploads progress). */
  get fragmentBytesReceived(): number {
    return this.large.fragmentBytesReceived;
  }

  /** Ids of the incoming messages counted by {@link receiving}. */
  receivingIds(): number[] {
    return this.large.receivingIds();
  }

  /**
   * Discards every queued outgoing message not one byte of which was written yet (large ones waiting
   * for a fragment slot or credit, or being compressed), and returns their ids: after a graceful
   * GOAWAY they can go elsewhere, as the peer never saw them.
   */
  discardUnstarted(): number[] {
    const ids = this.large.unstartedIds();
    for (const id of ids) this.discard(id);
    return ids;
  }

  /**
   * Brings the memory account up to date with the bytes the socket holds unwritten: they are the
   * peer's to read, and a peer that does not read must not hold them uncounted. Per write batch.
   */
  private countSocketBytes(): void {
    const account = this.options.account;
    if (account === undefined) return;
    const n = this.socket.writableLength;
    if (n === this.socketBytes) return;
    if (n > this.socketBytes) account.charge(n - this.socketBytes);
    else account.credit(this.socketBytes - n);
    this.socketBytes = n;
  }

  /**
   * Appends a REQUEST or RESPONSE and schedules the write. A large message is compressed and/or
   * fragmented when the handshake negotiated it; a small one is one frame, as in plain version 1.
   * Throws (appending nothing) when `write` throws. Returns true when the frame holds the caller's own
   * Buffers (framing/splices.ts): they must not change until {@link afterWrites} says so.
   */
  message<T>(type: number, flags: number, id: number, value: T, write: BodyWriter<T>): boolean {
    this.large.send(type, flags, id, value, write);
    this.flushSoon();
    return this.encoder.lastSpliced;
  }

  /** Like {@link message} for a body already encoded, which is sent without a copy (see `LargeMessages.sendEncoded`). */
  messageBytes(type: number, flags: number, id: number, body: Buffer): void {
    this.large.sendEncoded(type, flags, id, body);
    this.flushSoon();
  }

  /** Appends a frame (HELLO, WELCOME, ERROR, GOAWAY) and schedules the write. Throws, appending nothing, when `write` throws. */
  frame<T>(type: number, flags: number, id: number, value: T, write: BodyWriter<T>): void {
    this.encoder.frame(type, flags, id, value, write);
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
   * Forgets everything about `id` in flight: unsent fragments of its message, its partial incoming
   * message, a compression or decompression under way. For a cancelled or settled call. Says what
   * became of its outgoing message: never queued or all written, dropped unwritten, or cut short.
   */
  discard(id: number): DiscardResult {
    const result = this.large.discard(id);
    // An end waiting for this message's fragments may go ahead now.
    if (this.endPending) this.flushSoon();
    return result;
  }

  /**
   * Bytes waiting for the peer: in the socket and the encoder, and (with `countUnsentFragments`) in
   * fragments waiting for its WINDOW (a peer that never acknowledges holds them there, never in the
   * socket), except one message's: a single answer may be larger than the cap and still stream.
   */
  get queuedBytes(): number {
    const n = this.socket.writableLength + this.encoder.pendingBytes;
    if (this.options.countUnsentFragments !== true) return n;
    const outbox = this.large.outbox;
    // Far from the cap, counting every outbox byte changes no decision (they compare to half the cap
    // and the cap) and spares walking the outbox for its largest message, per appended frame.
    const all = n + outbox.pendingBytes;
    return all <= this.options.maxQueuedBytes / 2 ? all : n + outbox.pendingBeyondLargest;
  }

  /** Schedules one write of everything appended to the encoder during this tick. */
  private flushSoon(): void {
    if (this.closed) return;
    // Checked per appended frame, not per flush: one chunk of requests can produce many responses in a tick.
    if (this.queuedBytes > this.options.maxQueuedBytes) return this.flush();
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(this.flush);
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
    if (this.large.sending || (this.blocked && this.encoder.pendingBytes > 0)) {
      // Bytes not yet handed to the socket (fragments, or frames queued while it is blocked, which a
      // flush does not write): end once they are written, or the last answers and GOAWAY are lost.
      this.endPending = true;
      this.watchStall();
      return this.flushSoon();
    }
    this.flush();
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
    this.stallMark = this.unsentBytes();
    this.stallDrains = this.drains;
    this.lingerTimer = setTimeout(this.onStallCheck, LINGER_MS);
    this.lingerTimer.unref();
  }

  private readonly onStallCheck = (): void => {
    if (!this.endPending || this.closed) return;
    const unsent = this.unsentBytes();
    // A compression under way (sending, nothing queued yet) is progress too.
    const compressing = this.large.sending && this.large.outbox.size === 0;
    if (unsent !== this.stallMark || this.drains !== this.stallDrains || compressing) {
      this.stallMark = unsent;
      this.stallDrains = this.drains;
      this.lingerTimer!.refresh();
      return;
    }
    this.destroy(
      new RpcError(Code.UNAVAILABLE, `peer read nothing for ${LINGER_MS} ms while the connection closed (${unsent} bytes unsent)`),
    );
  };

  /** Bytes queued to go out: in the socket, in the encoder, and in fragments not yet sent. */
  private unsentBytes(): number {
    return this.socket.writableLength + this.encoder.pendingBytes + this.large.outbox.pendingBytes;
  }

  /** Closes at once, dropping anything unsent. */
  destroy(error: RpcError): void {
    this.closeError ??= error;
    this.closed = true;
    this.dropLarge();
    this.keepalive.stop();
    this.socket.destroy();
  }

  private dropLarge(): void {
    this.large.clear();
    if (this.roundTimer !== undefined) clearImmediate(this.roundTimer);
    this.roundTimer = undefined;
  }

  private write(bufs: Buffer[]): void {
    const n = bufs.length;
    if (n === 0) return;
    this.batchesHanded++;
    if (n > 1) this.socket.cork();
    for (let i = 0; i < n; i++) {
      this.options.observer?.bytesSent?.(bufs[i]!.length);
      if (!this.socket.write(bufs[i]!, i === n - 1 ? this.onBatchWritten : undefined)) this.blocked = true;
    }
    if (n > 1) this.socket.uncork();
  }

  /**
   * Calls `cb` once every byte appended so far has been written by the socket (or the socket is
   * gone): after that it no longer reads any Buffer it was given. At once when nothing is pending.
   */
  afterWrites(cb: () => void): void {
    const batch = this.batchesHanded + (this.encoder.pendingBytes > 0 ? 1 : 0);
    if (batch <= this.batchesWritten || this.socket.destroyed) return cb();
    this.fences.push({ batch, cb });
  }

  private readonly onBatchWritten = (): void => {
    this.batchesWritten++;
    if (this.socketBytes > 0) this.countSocketBytes();
    if (this.fences.length > 0) this.runFences(false);
  };

  private runFences(all: boolean): void {
    const ready = all ? this.fences : this.fences.filter((f) => f.batch <= this.batchesWritten);
    if (ready.length === 0) return;
    this.fences = all ? [] : this.fences.filter((f) => f.batch > this.batchesWritten);
    for (const f of ready) f.cb();
  }

  /**
   * Writes rounds of fragments up to the per-turn budget, in one write: on loopback every write is a
   * trip through the kernel's TCP stack, and one per fragment cost more CPU than the bytes. Batching a
   * turn's rounds reorders nothing (no small frame can be appended meanwhile); the credit already bounds
   * what waits ahead of the next small frame. The next turn continues.
   */
  private sendRounds(): void {
    let budget = ROUND_BUDGET_BYTES;
    let sent = 1;
    const outbox = this.large.outbox;
    this.large.pace();
    while (!this.blocked && outbox.size > 0 && budget > 0 && sent > 0) {
      sent = outbox.round(this.encoder);
      budget -= sent;
    }
    this.write(this.encoder.take());
    // Out of credit (sent 0): the peer's WINDOW resumes us, not a timer.
    if (!this.blocked && outbox.size > 0 && sent > 0 && this.roundTimer === undefined) {
      this.roundTimer = setImmediate(this.onRoundTimer);
    }
  }

  private readonly onRoundTimer = (): void => {
    this.roundTimer = undefined;
    this.flush();
  };

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.socket.destroyed) return;
    if (!this.blocked) {
      this.write(this.encoder.take());
      if (!this.blocked && this.large.outbox.size > 0) this.sendRounds();
      if (this.blocked) this.countSocketBytes();
      // The owner may settle calls on it (one-way), and end us.
      this.handler.onWritten?.();
      if (this.closed) return;
      if (this.endPending && !this.large.sending && !this.closed) {
        this.endPending = false;
        this.end();
        return;
      }
      if (this.blocked) {
        // A peer that does not read is paused; but while a few large messages stream out, being blocked
        // is normal and reads go on, so CANCELs and small calls still get through; up to half the cap,
        // since a peer advertising a huge P would otherwise never be paused. Pausing while blocked is
        // safe: 'drain' resumes. (Not blocked, waiting for a WINDOW, we must read: the cap alone bounds it.)
        const outbox = this.large.outbox;
        const streaming = outbox.size > 0 && outbox.size <= outbox.maxOpen && this.queuedBytes <= this.options.maxQueuedBytes / 2;
        if (this.options.pauseReadsWhenBlocked && !streaming) this.socket.pause();
      }
    }
    // Also when not blocked: fragments waiting for a WINDOW that never comes never block the socket.
    const queued = this.queuedBytes;
    if (queued > this.options.maxQueuedBytes) {
      this.destroy(
        new RpcError(Code.RESOURCE_EXHAUSTED, `peer does not read: ${queued} bytes queued (max ${this.options.maxQueuedBytes})`),
      );
    }
  };

  private readonly onDrain = (): void => {
    this.blocked = false;
    this.drains++;
    this.countSocketBytes();
    if (this.options.pauseReadsWhenBlocked && !this.closed) this.socket.resume();
    if (this.encoder.pendingBytes > 0 || this.large.outbox.size > 0) this.flush();
  };

  private readonly onData = (chunk: Buffer): void => {
    this.keepalive.gotData = true;
    this.options.observer?.bytesReceived?.(chunk.length);
    try {
      this.decoder.push(chunk);
    } catch (err) {
      return this.fail(RpcError.from(err));
    }
    // One acknowledgement per read: the peer's fragment credit comes back as fast as we consume.
    if (!this.closed) this.large.acknowledge();
  };

  private readonly onFrame: FrameSink = (type, flags, id, body) => {
    // The rest of a chunk after we gave up on the peer (protocol error, queue cap) is not worth any work.
    if (this.closed || this.failed) return;
    if (type === FrameType.PING) {
      this.signal(FrameType.PONG, id);
    } else if (type === FrameType.PONG) {
      this.keepalive.pong(id);
      this.handler.onPong?.(id);
    } else if (this.large.wants(type, flags, body.length)) {
      // Before any reassembly or inflation: the owner may refuse answers for ids it has no call for.
      if (type !== FrameType.WINDOW && this.handler.admits?.(type, flags, id) === false) return;
      this.large.receive(type, flags, id, body);
    } else {
      if (type === FrameType.REQUEST || type === FrameType.RESPONSE) this.large.smallMessages++;
      this.handler.onFrame(type, flags, id, body);
    }
  };

  private readonly onError = (err: Error): void => {
    this.closeError ??= fromNodeError(err);
  };

  private readonly onSocketClose = (): void => {
    // The socket reads none of our Buffers any more.
    this.runFences(true);
    this.closed = true;
    this.dropLarge();
    this.keepalive.stop();
    clearTimeout(this.lingerTimer);
    this.handler.onClose(this.closeError ?? new RpcError(Code.UNAVAILABLE, 'connection closed by peer'));
  };
}
