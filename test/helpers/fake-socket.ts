/**
 * The part of `net.Socket` a `FramedSocket` uses, in memory: the test sees every write and batch,
 * decides when the peer has read them (`consume`, then 'drain' if a write was refused), delivers the
 * peer's bytes (`receive`) and closes. Nothing is asynchronous but `destroy()`'s 'close', which a real
 * socket also emits a tick later.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { FrameDecoder } from '../../src/framing/frame-decoder.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';

/** A decoded frame, as the tests compare them. */
export interface SeenFrame {
  type: number;
  flags: number;
  id: number;
  body: Buffer;
}

/** Decodes frames (no preface) from `bytes`; a frame cut short at the end is left out. */
export function decodeFrames(bytes: Buffer): SeenFrame[] {
  const out: SeenFrame[] = [];
  new FrameDecoder({ maxFrameBytes: 1 << 30, expectPreface: false }, (type, flags, id, body) => out.push({ type, flags, id, body })).push(
    bytes,
  );
  return out;
}

/** The bytes of one frame, as a peer would send it. */
export function frameBytes(type: number, flags: number, id: number, body: Buffer | null = null): Buffer {
  const e = new FrameEncoder();
  e.raw(type, flags, id, body);
  return Buffer.concat(e.take());
}

/** A socket with no network under it. */
export class FakeSocket extends EventEmitter {
  /** Every chunk passed to `write`, in order. */
  readonly writes: Buffer[] = [];
  /** Write batches: the chunks of one cork/uncork, or one uncorked write, joined. */
  readonly batches: Buffer[] = [];
  /** Bytes written and not yet read by the peer (see {@link consume}). */
  writableLength = 0;
  /** `write` returns false once `writableLength` reaches this (backpressure). Default: never. */
  highWaterMark = Infinity;
  destroyed = false;
  /** True once `end()` was called (our side half-closed). */
  ended = false;
  noDelay = false;
  private corked = 0;
  private batch: Buffer[] = [];
  private callbacks: ((err?: Error) => void)[] = [];
  private needDrain = false;
  private paused = false;
  private unread: Buffer[] = [];
  private closeEmitted = false;

  /** This, typed as what `FramedSocket` takes. */
  get socket(): Socket {
    return this as unknown as Socket;
  }

  /** Everything written so far, decoded. */
  get frames(): SeenFrame[] {
    return decodeFrames(Buffer.concat(this.writes));
  }

  write(chunk: Buffer, cb?: (err?: Error) => void): boolean {
    if (this.destroyed || this.ended) throw new Error(`FakeSocket: write after ${this.destroyed ? 'destroy' : 'end'}`);
    this.writes.push(chunk);
    if (this.corked > 0) this.batch.push(chunk);
    else this.batches.push(chunk);
    this.writableLength += chunk.length;
    if (cb !== undefined) this.callbacks.push(cb);
    if (this.writableLength < this.highWaterMark) return true;
    this.needDrain = true;
    return false;
  }

  cork(): void {
    this.corked++;
  }

  uncork(): void {
    if (this.corked === 0 || --this.corked > 0) return;
    if (this.batch.length > 0) this.batches.push(Buffer.concat(this.batch));
    this.batch = [];
  }

  setNoDelay(noDelay = true): this {
    this.noDelay = noDelay;
    return this;
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    this.paused = false;
    const unread = this.unread;
    this.unread = [];
    for (const chunk of unread) this.emit('data', chunk);
    return this;
  }

  isPaused(): boolean {
    return this.paused;
  }

  end(): this {
    this.ended = true;
    return this;
  }

  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    const callbacks = this.callbacks;
    this.callbacks = [];
    process.nextTick(() => {
      for (const cb of callbacks) cb(new Error('socket destroyed'));
      this.emitClose();
    });
    return this;
  }

  /** The peer read everything written: write callbacks run, then 'drain' if a write returned false. */
  consume(): void {
    this.writableLength = 0;
    const callbacks = this.callbacks;
    this.callbacks = [];
    for (const cb of callbacks) cb();
    if (this.needDrain && !this.destroyed) {
      this.needDrain = false;
      this.emit('drain');
    }
  }

  /** The peer sent `chunk`: a 'data' event now, or once reads resume. */
  receive(chunk: Buffer): void {
    if (this.destroyed) return;
    if (this.paused) this.unread.push(chunk);
    else this.emit('data', chunk);
  }

  /** The peer closed the connection (after an 'error' when `err` is given). */
  close(err?: Error): void {
    if (err !== undefined) this.emit('error', err);
    this.destroyed = true;
    this.emitClose();
  }

  private emitClose(): void {
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    this.emit('close', false);
  }
}
