import type { Socket } from 'node:net';
import type { FrameEncoder } from '../framing/frame-encoder.js';
import type { FramedSocketOptions } from './framed-socket-options.js';
import type { OutgoingMessages } from './outgoing-messages.js';

/** Fragment bytes written per event-loop turn at most, so reads and small calls get their turn. */
const ROUND_BUDGET_BYTES = 1024 * 1024;

/** What a {@link SocketWriter} needs from the framed socket it writes for. */
export interface SocketWriterHost {
  /** True once the socket is closed or closing: nothing more is scheduled. */
  readonly isClosed: boolean;
  /** A flush ran; `wrote`: it handed bytes to the socket (false when blocked, waiting for 'drain'). */
  flushed(wrote: boolean): void;
}

/**
 * The write side of a framed socket: everything appended to the encoder during an event-loop turn
 * goes out in one `socket.write` batch (corked), fragments of large messages in rounds up to a
 * per-turn budget, and backpressure is honoured (a blocked socket waits for 'drain'). It owns its
 * flush: `schedule()` is the only way a write is asked for. It also tells when what was appended has
 * been written ({@link afterWrites}) and keeps the memory account told of the socket's unwritten bytes.
 */
export class SocketWriter {
  private flushScheduled = false;
  /** Frames scheduled since the last flush: the `earlyWriteFrames`-th writes the turn's first ones at once. */
  private framesThisTurn = 0;
  private isBlocked = false;
  private roundTimer: NodeJS.Immediate | undefined;
  /** Write batches handed to the socket, and written by it (its write callbacks, in order). */
  private batchesHanded = 0;
  private batchesWritten = 0;
  /** Callbacks waiting for a batch to be written (see {@link afterWrites}). */
  private fences: { batch: number; cb: () => void }[] = [];
  /** 'drain' events so far: progress for a close waiting on a slow reader. */
  drains = 0;
  /** Socket bytes unwritten that the memory account was last told of (see {@link countSocketBytes}). */
  private socketBytes = 0;

  constructor(
    private readonly socket: Socket,
    private readonly encoder: FrameEncoder,
    private readonly outgoing: OutgoingMessages,
    private readonly options: FramedSocketOptions,
    private readonly host: SocketWriterHost,
  ) {
    socket.on('drain', this.onDrain);
  }

  /** True while the socket refuses more bytes (its last write returned false) until 'drain'. */
  get blocked(): boolean {
    return this.isBlocked;
  }

  /** True while frames wait in the encoder for a blocked socket. */
  get holdsFrames(): boolean {
    return this.encoder.pendingBytes > 0;
  }

  /**
   * Bytes waiting for the peer: in the socket and the encoder, and (with `countUnsentFragments`) in
   * fragments waiting for its WINDOW (a peer that never acknowledges holds them there, never in the
   * socket), except one message's: a single answer may be larger than the cap and still stream.
   */
  get queuedBytes(): number {
    const n = this.socket.writableLength + this.encoder.pendingBytes;
    if (this.options.countUnsentFragments !== true) return n;
    const outbox = this.outgoing.outbox;
    // Far from the cap, counting every outbox byte changes no decision (they compare to half the cap
    // and the cap) and spares walking the outbox for its largest message, per appended frame.
    const all = n + outbox.pendingBytes;
    return all <= this.options.maxQueuedBytes / 2 ? all : n + outbox.pendingBeyondLargest;
  }

  /** Bytes queued to go out: in the socket, in the encoder, and in fragments not yet sent. */
  get unsentBytes(): number {
    return this.socket.writableLength + this.encoder.pendingBytes + this.outgoing.outbox.pendingBytes;
  }

  /** Schedules one write of everything appended during this tick; at once when over `maxQueuedBytes`. */
  schedule(): void {
    if (this.host.isClosed) return;
    // Checked per appended frame, not per flush: one chunk of requests can produce many responses in a tick.
    if (this.queuedBytes > this.options.maxQueuedBytes) return this.flush();
    if (++this.framesThisTurn === this.options.earlyWriteFrames) this.writeEarly();
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(this.flush);
  }

  /** Writes what is appended now (closing: the last frames must go before the socket ends). */
  flushNow(): void {
    this.flush();
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

  /** The socket is gone: it reads none of our Buffers any more, so every fence passes. */
  closed(): void {
    this.runFences(true);
    this.stopRounds();
  }

  /** Stops writing fragment rounds (the connection dropped its large messages). */
  stopRounds(): void {
    if (this.roundTimer !== undefined) clearImmediate(this.roundTimer);
    this.roundTimer = undefined;
  }

  /**
   * Writes the frames of this turn so far, before its end: the peer starts on them while this side
   * produces the rest (a chunk of requests read at once). Without it both sides of a busy connection
   * take turns, each idle while the other works; with it both cores work. One more write per turn,
   * at most (the count restarts at the turn's flush). Not while blocked: then 'drain' writes. The
   * host hears of it as of any flush: one-way calls written settle, and a write that blocked pauses
   * reads from a peer that does not read (the turn's own flush then finds the socket blocked).
   */
  private writeEarly(): void {
    if (this.isBlocked || this.socket.destroyed) return;
    this.write(this.encoder.take());
    if (this.isBlocked) this.countSocketBytes();
    this.host.flushed(true);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    this.framesThisTurn = 0;
    if (this.socket.destroyed) return;
    const wrote = !this.isBlocked;
    if (wrote) {
      this.write(this.encoder.take());
      if (!this.isBlocked && this.outgoing.outbox.size > 0) this.sendRounds();
      if (this.isBlocked) this.countSocketBytes();
    }
    this.host.flushed(wrote);
  };

  private write(bufs: Buffer[]): void {
    const n = bufs.length;
    if (n === 0) return;
    this.batchesHanded++;
    if (n > 1) this.socket.cork();
    for (let i = 0; i < n; i++) {
      this.options.observer?.bytesSent?.(bufs[i]!.length);
      if (!this.socket.write(bufs[i]!, i === n - 1 ? this.onBatchWritten : undefined)) this.isBlocked = true;
    }
    if (n > 1) this.socket.uncork();
    // Written through (the usual case on loopback): the socket keeps none of the arena's bytes.
    if (this.socket.writableLength === 0) this.encoder.recycle();
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
    const outbox = this.outgoing.outbox;
    this.outgoing.pace();
    while (!this.isBlocked && outbox.size > 0 && budget > 0 && sent > 0) {
      sent = outbox.round(this.encoder);
      budget -= sent;
    }
    this.write(this.encoder.take());
    // Out of credit (sent 0): the peer's WINDOW resumes us, not a timer.
    if (!this.isBlocked && outbox.size > 0 && sent > 0 && this.roundTimer === undefined) {
      this.roundTimer = setImmediate(this.onRoundTimer);
    }
  }

  private readonly onRoundTimer = (): void => {
    this.roundTimer = undefined;
    this.flush();
  };

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

  private readonly onDrain = (): void => {
    this.isBlocked = false;
    this.drains++;
    this.countSocketBytes();
    if (this.options.pauseReadsWhenBlocked && !this.host.isClosed) this.socket.resume();
    if (this.encoder.pendingBytes > 0 || this.outgoing.outbox.size > 0) this.flush();
  };
}
