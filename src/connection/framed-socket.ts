import type { Socket } from 'node:net';
import { Code } from '../errors/code.js';
import { RpcError, fromNodeError } from '../errors/rpc-error.js';
import { writeGoaway } from '../framing/bodies.js';
import { FrameType, type FrameSink } from '../framing/frame.js';
import { FrameDecoder } from '../framing/frame-decoder.js';
import { FrameEncoder, type BodyWriter } from '../framing/frame-encoder.js';
import type { ExtensionSupport, Negotiated } from '../framing/extensions.js';
import type { RpcObserver } from '../observability/observer.js';
import { LargeMessages, type LargeMessageOptions } from './large-messages.js';

/** How long an ended socket may wait for its peer to close before it is destroyed. */
const LINGER_MS = 1000;
/** Fragment bytes written per event-loop turn at most, so reads and small calls get their turn. */
const ROUND_BUDGET_BYTES = 1024 * 1024;

/** Filled options of a {@link FramedSocket}. */
export interface FramedSocketOptions extends LargeMessageOptions {
  maxFrameBytes: number;
  expectPreface: boolean;
  /** Send a PING after this long without receiving anything; 0 disables keepalive. */
  keepaliveMs: number;
  /** Declare the peer dead when nothing arrives this long after a PING. */
  keepaliveTimeoutMs: number;
  /** Stop reading from the socket while it cannot be written (a peer that does not read us). */
  pauseReadsWhenBlocked: boolean;
  /** Bytes allowed to wait for a peer that does not read before the connection is dropped. */
  maxQueuedBytes: number;
  /** Told of bytes in and out, when metrics are wanted. */
  observer?: RpcObserver | undefined;
}

/** What a {@link FramedSocket} reports to its owner. */
export interface FramedSocketHandler {
  onFrame: FrameSink;
  /** Called exactly once, when the socket is gone; `error` says why (code UNAVAILABLE for a plain close). */
  onClose(error: RpcError): void;
  /** A REQUEST or RESPONSE was refused before delivery (too large, does not inflate): fail that call. */
  onRefused(type: number, flags: number, id: number, error: RpcError): void;
}

/**
 * A socket with framing: decodes incoming frames, batches outgoing frames into one write per tick,
 * honours backpressure, answers PINGs and detects a silent peer with keepalive PINGs. Knows nothing of
 * calls; client and server connections build on it.
 */
export class FramedSocket {
  /** Frames are appended here; call {@link flushSoon} after appending. */
  readonly encoder = new FrameEncoder();
  private readonly decoder: FrameDecoder;
  private flushScheduled = false;
  private blocked = false;
  private closed = false;
  private closeError: RpcError | undefined;
  private gotData = false;
  private pingOutstanding = false;
  private pingId = 0;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private keepaliveDueAt = 0;
  private lingerTimer: NodeJS.Timeout | undefined;
  /** Compression, fragments and their window (SPEC.md section 12). */
  private readonly large: LargeMessages;
  private roundTimer: NodeJS.Immediate | undefined;
  private endPending = false;

  constructor(
    readonly socket: Socket,
    private readonly options: FramedSocketOptions,
    private readonly handler: FramedSocketHandler,
  ) {
    this.large = new LargeMessages(options, this, handler);
    this.decoder = new FrameDecoder({ ...options, target: (type, _flags, id, len) => this.large.target(type, id, len) }, this.onFrame);
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('drain', this.onDrain);
    socket.on('error', this.onError);
    socket.on('close', this.onSocketClose);
  }

  /**
   * Starts keepalive PINGs, once the owner's handshake is done: a PING (or the PONG it asks for)
   * written before the client's preface would make the server drop the connection.
   */
  startKeepalive(): void {
    if (this.options.keepaliveMs > 0 && !this.closed && this.keepaliveTimer === undefined) this.armKeepalive(this.options.keepaliveMs);
  }

  /** True once the socket is closed or closing. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** The extensions this side offers (SPEC.md section 12.1), from its options. */
  get support(): ExtensionSupport {
    return this.large.support;
  }

  /** Starts using what the handshake negotiated. */
  use(negotiated: Negotiated): void {
    this.large.use(negotiated);
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

  /** Ids of queued outgoing messages not one byte of which was written yet (see `LargeMessages.unstartedIds`). */
  unstartedIds(): number[] {
    return this.large.unstartedIds();
  }

  /** True once the socket is destroyed. */
  get gone(): boolean {
    return this.socket.destroyed;
  }

  /**
   * Appends a REQUEST or RESPONSE and schedules the write. A large message is compressed and/or
   * fragmented when the handshake negotiated it; a small one is one frame, as in plain version 1.
   * Throws (appending nothing) when `write` throws.
   */
  message<T>(type: number, flags: number, id: number, value: T, write: BodyWriter<T>): void {
    this.large.send(type, flags, id, value, write);
    this.flushSoon();
  }

  /** Like {@link message} for a body already encoded, which is sent without a copy (see `LargeMessages.sendEncoded`). */
  messageBytes(type: number, flags: number, id: number, body: Buffer): void {
    this.large.sendEncoded(type, flags, id, body);
    this.flushSoon();
  }

  /**
   * Forgets everything about `id` in flight: unsent fragments of its message, its partial incoming
   * message, a compression or decompression under way. For a cancelled or settled call.
   */
  abandon(id: number): void {
    this.large.abandon(id);
    // An end waiting for this message's fragments may go ahead now.
    if (this.endPending) this.flushSoon();
  }

  /** Schedules one write of everything appended to the encoder during this tick. */
  flushSoon(): void {
    if (this.closed) return;
    // Checked per appended frame, not per flush: one chunk of requests can produce many responses in a tick.
    if (this.socket.writableLength + this.encoder.pendingBytes > this.options.maxQueuedBytes) return this.flush();
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(this.flush);
  }

  /** Sends GOAWAY with a code (protocol errors, shutdown), flushes, and ends the socket. */
  fail(error: RpcError): void {
    if (this.closed) return;
    this.dropLarge();
    this.encoder.frame(FrameType.GOAWAY, 0, 0, { lastId: 0, code: error.code, message: error.message }, writeGoaway);
    this.end(error);
  }

  /** Flushes what is queued, then ends the socket; pending work is reported with `error`. */
  end(error?: RpcError): void {
    if (this.closed) return;
    this.closeError ??= error;
    if (this.large.sending) {
      // Large responses still going out: end once they are written.
      this.endPending = true;
      return this.flushSoon();
    }
    this.flush();
    this.closed = true;
    this.stopKeepalive();
    this.socket.end();
    // A peer that never reads would keep a half-closed socket forever: bound it.
    this.lingerTimer = setTimeout(() => this.socket.destroy(), LINGER_MS);
    this.lingerTimer.unref();
  }

  /** Closes at once, dropping anything unsent. */
  destroy(error: RpcError): void {
    this.closeError ??= error;
    this.closed = true;
    this.dropLarge();
    this.stopKeepalive();
    this.socket.destroy();
  }

  private dropLarge(): void {
    this.large.clear();
    if (this.roundTimer !== undefined) clearImmediate(this.roundTimer);
    this.roundTimer = undefined;
  }

  private write(bufs: Buffer[]): void {
    const many = bufs.length > 1;
    if (many) this.socket.cork();
    for (let i = 0; i < bufs.length; i++) {
      this.options.observer?.bytesSent?.(bufs[i]!.length);
      if (!this.socket.write(bufs[i]!)) this.blocked = true;
    }
    if (many) this.socket.uncork();
  }

  /** Writes rounds of fragments up to the per-turn budget; the next turn continues. */
  private sendRounds(): void {
    let budget = ROUND_BUDGET_BYTES;
    let sent = 1;
    const outbox = this.large.outbox;
    while (!this.blocked && outbox.size > 0 && budget > 0 && sent > 0) {
      sent = outbox.round(this.encoder);
      budget -= sent;
      this.write(this.encoder.take());
    }
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
      if (this.endPending && !this.large.sending && !this.closed) {
        this.endPending = false;
        this.end();
        return;
      }
      if (!this.blocked) return;
      // A peer that does not read is paused; but while a few large messages stream out, being blocked
      // is normal and reads go on, so CANCELs and small calls still get through.
      const outbox = this.large.outbox;
      const streaming = outbox.size > 0 && outbox.size <= outbox.maxOpen;
      if (this.options.pauseReadsWhenBlocked && !streaming) this.socket.pause();
    }
    const queued = this.socket.writableLength + this.encoder.pendingBytes;
    if (queued > this.options.maxQueuedBytes) {
      this.destroy(new RpcError(Code.RESOURCE_EXHAUSTED, `peer does not read: ${queued} bytes queued (max ${this.options.maxQueuedBytes})`));
    }
  };

  private readonly onDrain = (): void => {
    this.blocked = false;
    if (this.options.pauseReadsWhenBlocked && !this.closed) this.socket.resume();
    if (this.encoder.pendingBytes > 0 || this.large.outbox.size > 0) this.flush();
  };

  private readonly onData = (chunk: Buffer): void => {
    this.gotData = true;
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
    if (this.closed) return;
    if (type === FrameType.PING) {
      this.encoder.raw(FrameType.PONG, 0, id, null);
      this.flushSoon();
    } else if (type === FrameType.PONG) {
      // Any frame counts as life; nothing else to do.
    } else if (this.large.wants(type, flags, body.length)) {
      this.large.receive(type, flags, id, body);
    } else {
      this.handler.onFrame(type, flags, id, body);
    }
  };

  private readonly onError = (err: Error): void => {
    this.closeError ??= fromNodeError(err);
  };

  private readonly onSocketClose = (): void => {
    this.closed = true;
    this.dropLarge();
    this.stopKeepalive();
    clearTimeout(this.lingerTimer);
    this.handler.onClose(this.closeError ?? new RpcError(Code.UNAVAILABLE, 'connection closed by peer'));
  };

  private armKeepalive(ms: number): void {
    this.keepaliveDueAt = performance.now() + ms;
    // A new timer each time: `refresh()` would keep the first delay, turning keepaliveTimeoutMs into keepaliveMs.
    clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = setTimeout(this.onKeepalive, ms);
    this.keepaliveTimer.unref();
  }

  private stopKeepalive(): void {
    if (this.keepaliveTimer !== undefined) clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = undefined;
  }

  private readonly onKeepalive = (): void => {
    const { keepaliveMs, keepaliveTimeoutMs } = this.options;
    const lateMs = performance.now() - this.keepaliveDueAt;
    if (this.gotData) {
      this.gotData = false;
      this.pingOutstanding = false;
      this.armKeepalive(keepaliveMs);
    } else if (!this.pingOutstanding) {
      this.pingOutstanding = true;
      this.pingId = (this.pingId + 1) >>> 0;
      this.encoder.raw(FrameType.PING, 0, this.pingId, null);
      this.flushSoon();
      this.armKeepalive(keepaliveTimeoutMs);
    } else if (lateMs > keepaliveTimeoutMs / 2) {
      // Our own event loop stalled: the answer may be unread in the socket. Not the peer's fault.
      this.armKeepalive(keepaliveTimeoutMs);
    } else {
      // Timers run before I/O in a loop turn: if our loop was blocked up to about now, the answer may
      // be unread in the socket. Judge after this turn's I/O has been read.
      setImmediate(this.judgeKeepalive);
    }
  };

  private readonly judgeKeepalive = (): void => {
    if (this.closed) return;
    if (this.gotData) return this.onKeepalive();
    this.destroy(new RpcError(Code.UNAVAILABLE, `keepalive timeout: no answer to PING within ${this.options.keepaliveTimeoutMs} ms`));
  };
}
