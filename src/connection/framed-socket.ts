import type { Socket } from 'node:net';
import { Code } from '../errors/code.js';
import { RpcError, fromNodeError } from '../errors/rpc-error.js';
import { writeGoaway } from '../framing/bodies.js';
import { Flag, FrameType, type FrameSink } from '../framing/frame.js';
import { FrameDecoder } from '../framing/frame-decoder.js';
import { FrameEncoder, type BodyWriter } from '../framing/frame-encoder.js';
import { NONE, type ExtensionSupport, type Negotiated } from '../framing/extensions.js';
import { Reassembler, isFragment } from '../framing/reassembler.js';
import type { RpcObserver } from '../observability/observer.js';
import { compress, decompress } from './compression.js';
import { Outbox } from './outbox.js';

/** How long an ended socket may wait for its peer to close before it is destroyed. */
const LINGER_MS = 1000;
/** Writes a WINDOW body: u32 bytes acknowledged. */
function writeWindow(n: number, buf: Buffer, pos: number): number {
  if (pos + 4 > buf.length) return -4;
  buf.writeUInt32BE(n, pos);
  return pos + 4;
}

/** Fragment bytes written per event-loop turn at most, so reads and small calls get their turn. */
const ROUND_BUDGET_BYTES = 1024 * 1024;

/** Filled options of a {@link FramedSocket}. */
export interface FramedSocketOptions {
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
  /** Largest fragment frame body sent; larger messages are fragmented. 0: no fragments (none offered). */
  fragmentBytes: number;
  /** Largest message received, after reassembly and after decompression; larger ones are refused. */
  maxMessageBytes: number;
  /** Fragmented messages received at once (advertised to the peer). */
  maxPartialMessages: number;
  /** Compress outgoing messages of at least this many bytes. 0: no compression (none offered). */
  compressAboveBytes: number;
  /** Fragment bytes the peer may send ahead of our acknowledgements (advertised `W`). */
  fragmentWindowBytes: number;
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
  private negotiated: Negotiated = NONE;
  private readonly reassembler: Reassembler;
  private readonly outbox: Outbox;
  /** Ids whose message is being compressed / inflated; `abandon` removes them so the result is dropped. */
  private readonly deflating = new Map<number, object>();
  private readonly inflating = new Map<number, object>();
  private roundTimer: NodeJS.Immediate | undefined;
  private endPending = false;
  /** Fragment body bytes read and not yet acknowledged with WINDOW. */
  private unacked = 0;

  constructor(
    readonly socket: Socket,
    private readonly options: FramedSocketOptions,
    private readonly handler: FramedSocketHandler,
  ) {
    this.decoder = new FrameDecoder({ ...options, target: (type, _flags, id, len) => this.reassembler.target(type, id, len) }, this.onFrame);
    this.reassembler = new Reassembler(options, {
      message: (type, flags, id, body) => this.deliver(type, flags, id, body),
      refused: (type, flags, id, error) => this.handler.onRefused(type, flags, id, error),
    });
    this.outbox = new Outbox(options.fragmentBytes);
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('drain', this.onDrain);
    socket.on('error', this.onError);
    socket.on('close', this.onSocketClose);
    if (options.keepaliveMs > 0) this.armKeepalive(options.keepaliveMs);
  }

  /** True once the socket is closed or closing. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** The extensions this side offers (SPEC.md section 11.1), from its options. */
  get support(): ExtensionSupport {
    const o = this.options;
    return { maxPartialMessages: o.fragmentBytes > 0 ? o.maxPartialMessages : 0, windowBytes: o.fragmentWindowBytes, compression: o.compressAboveBytes > 0 };
  }

  /** Starts using what the handshake negotiated. */
  use(negotiated: Negotiated): void {
    this.negotiated = negotiated;
    this.outbox.configure(negotiated.peerPartialMessages, negotiated.peerWindowBytes);
  }

  /** Bytes held for large messages: partial messages received, and fragments not yet sent. */
  get largeMessageBytes(): number {
    return this.reassembler.bufferedBytes + this.outbox.pendingBytes;
  }

  /**
   * Appends a REQUEST or RESPONSE and schedules the write. A large message is compressed and/or
   * fragmented when the handshake negotiated it; a small one is one frame, as in plain version 1.
   * Throws (appending nothing) when `write` throws.
   */
  message<T>(type: number, flags: number, id: number, value: T, write: BodyWriter<T>): void {
    const enc = this.encoder;
    enc.frame(type, flags, id, value, write);
    const n = this.negotiated;
    if (n !== NONE) {
      const len = enc.lastBodyLength;
      if (n.compression && len >= this.options.compressAboveBytes) this.compressThenSend(type, flags, id, enc.detachLast());
      else if (n.peerPartialMessages > 0 && len > this.options.fragmentBytes) this.outbox.add(type, flags, id, enc.detachLast());
    }
    this.flushSoon();
  }

  /**
   * Forgets everything about `id` in flight: unsent fragments of its message, its partial incoming
   * message, a compression or decompression under way. For a cancelled or settled call.
   */
  abandon(id: number): void {
    if (this.outbox.size > 0) this.outbox.cancel(id);
    if (this.reassembler.size > 0) this.reassembler.discard(id);
    if (this.deflating.size > 0) this.deflating.delete(id);
    if (this.inflating.size > 0) this.inflating.delete(id);
  }

  private compressThenSend(type: number, flags: number, id: number, body: Buffer): void {
    const token = {};
    this.deflating.set(id, token);
    const send = (data: Buffer, f: number): void => {
      if (this.deflating.get(id) !== token || this.socket.destroyed) return;
      this.deflating.delete(id);
      if (this.negotiated.peerPartialMessages > 0 && data.length > this.options.fragmentBytes) this.outbox.add(type, f, id, data);
      else this.encoder.view(type, f, id, -1, data);
      this.flushSoon();
    };
    compress(body).then(
      (z) => (z.length < body.length ? send(z, flags | Flag.COMPRESSED) : send(body, flags)),
      () => send(body, flags),
    );
  }

  /** A whole REQUEST/RESPONSE from the extensions path: checked against the limit, inflated if needed. */
  private deliver(type: number, flags: number, id: number, body: Buffer): void {
    const max = this.options.maxMessageBytes;
    if (body.length > max) {
      return this.handler.onRefused(type, flags, id, new RpcError(Code.RESOURCE_EXHAUSTED, `message of ${body.length} bytes exceeds maxMessageBytes (${max})`));
    }
    if ((flags & Flag.COMPRESSED) === 0) return this.handler.onFrame(type, flags, id, body);
    const token = {};
    this.inflating.set(id, token);
    const mine = (): boolean => {
      if (this.inflating.get(id) !== token || this.socket.destroyed) return false;
      this.inflating.delete(id);
      return true;
    };
    decompress(body, max).then(
      (out) => {
        if (!mine()) return;
        try {
          this.handler.onFrame(type, flags & ~Flag.COMPRESSED, id, out);
        } catch (err) {
          this.fail(RpcError.from(err));
        }
      },
      (err: unknown) => {
        if (!mine()) return;
        const error = err instanceof RpcError ? err : new RpcError(type === FrameType.REQUEST ? Code.INVALID_ARGUMENT : Code.INTERNAL,
          `compressed message does not inflate: ${(err as Error).message}`, { cause: err });
        this.handler.onRefused(type, flags, id, error);
      },
    );
  }

  /** The peer acknowledged fragment bytes: more credit. */
  private onWindow(body: Buffer): void {
    if (this.negotiated.peerPartialMessages === 0 || body.length !== 4) {
      throw new RpcError(Code.INTERNAL, 'protocol error: WINDOW frame malformed or without fragments negotiated');
    }
    this.outbox.credit += body.readUInt32BE(0);
    if (this.outbox.size > 0) this.flushSoon();
  }

  /** Fragments, compressed frames and oversized messages: only on connections that negotiated them. */
  private onExtended(type: number, flags: number, id: number, body: Buffer): void {
    const n = this.negotiated;
    const fragment = type === FrameType.CONTINUATION || (flags & Flag.MORE) !== 0;
    if (fragment) this.unacked += body.length;
    if ((fragment && n.peerPartialMessages === 0) || (type !== FrameType.CONTINUATION && (flags & Flag.COMPRESSED) !== 0 && !n.compression)) {
      throw new RpcError(Code.INTERNAL, `protocol error: ${fragment ? 'fragment' : 'compressed frame'} on a connection that did not negotiate it`);
    }
    if (type === FrameType.CONTINUATION) this.reassembler.next(flags, id, body);
    else if (fragment) this.reassembler.first(type, flags, id, body);
    else this.deliver(type, flags, id, body);
  }

  /** Schedules one write of everything appended to the encoder during this tick. */
  flushSoon(): void {
    if (this.flushScheduled || this.closed) return;
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
    if (this.outbox.size > 0 || this.deflating.size > 0) {
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
    this.outbox.clear();
    this.deflating.clear();
    this.inflating.clear();
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
    while (!this.blocked && this.outbox.size > 0 && budget > 0 && sent > 0) {
      sent = this.outbox.round(this.encoder);
      budget -= sent;
      this.write(this.encoder.take());
    }
    // Out of credit (sent 0): the peer's WINDOW resumes us, not a timer.
    if (!this.blocked && this.outbox.size > 0 && sent > 0 && this.roundTimer === undefined) {
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
      if (!this.blocked && this.outbox.size > 0) this.sendRounds();
      if (this.endPending && this.outbox.size === 0 && this.deflating.size === 0 && !this.closed) {
        this.endPending = false;
        this.end();
        return;
      }
      if (!this.blocked) return;
      // A peer that does not read is paused; but while a few large messages stream out, being blocked
      // is normal and reads go on, so CANCELs and small calls still get through.
      const streaming = this.outbox.size > 0 && this.outbox.size <= this.outbox.maxOpen;
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
    if (this.encoder.pendingBytes > 0 || this.outbox.size > 0) this.flush();
  };

  private readonly onData = (chunk: Buffer): void => {
    this.gotData = true;
    this.options.observer?.bytesReceived?.(chunk.length);
    try {
      this.decoder.push(chunk);
    } catch (err) {
      return this.fail(RpcError.from(err));
    }
    if (this.unacked > 0 && !this.closed) {
      // One acknowledgement per read: the peer's credit comes back as fast as we consume.
      this.encoder.frame(FrameType.WINDOW, 0, 0, this.unacked, writeWindow);
      this.unacked = 0;
      this.flushSoon();
    }
  };

  private readonly onFrame: FrameSink = (type, flags, id, body) => {
    if (type === FrameType.PING) {
      this.encoder.raw(FrameType.PONG, 0, id, null);
      this.flushSoon();
    } else if (type === FrameType.PONG) {
      // Any frame counts as life; nothing else to do.
    } else if (type === FrameType.WINDOW) {
      this.onWindow(body);
    } else if ((flags & (Flag.MORE | Flag.COMPRESSED)) !== 0 || type === FrameType.CONTINUATION
      || (body.length > this.options.maxMessageBytes && (type === FrameType.REQUEST || type === FrameType.RESPONSE))) {
      if (isFragment(type, flags) || type === FrameType.REQUEST || type === FrameType.RESPONSE) this.onExtended(type, flags, id, body);
      else this.handler.onFrame(type, flags, id, body);
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
    if (this.keepaliveTimer === undefined) {
      this.keepaliveTimer = setTimeout(this.onKeepalive, ms);
      this.keepaliveTimer.unref();
    } else {
      this.keepaliveTimer.refresh();
    }
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
      this.destroy(new RpcError(Code.UNAVAILABLE, `keepalive timeout: no answer to PING within ${keepaliveTimeoutMs} ms`));
    }
  };
}
