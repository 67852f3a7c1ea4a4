import type { MessagePort } from 'node:worker_threads';
import type { MessageDef } from '../../codec/protocol.js';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import type { Metadata } from '../../framing/bodies.js';
import type { Logger } from '../../observability/observer.js';
import type { CallContext } from '../call-context.js';
import { OffloadReply, type FailedReply } from './offload-task.js';
import { STREAM_READ_AHEAD, type ToMain, type ToWorker } from './stream-task.js';
import type { TaskSlot } from './task-slot.js';

type Waiter = { resolve: (r: IteratorResult<Buffer>) => void; reject: (e: unknown) => void };

const DONE: IteratorResult<never> = Object.freeze({ done: true, value: undefined });

/** What a link tells the pool. */
export interface LinkOwner {
  /** The stream is over on both threads (or its worker is gone): its slot may be reused. */
  released(link: StreamLink): void;
  /** The stream's grace period ended and its handler still runs: terminate the thread it runs on. */
  terminate(threadId: number): void;
  /** The thread the stream ran on is gone (its end of the channel closed): start nothing more there. */
  lost(threadId: number): void;
}

/**
 * The main thread's end of a stream whose handler runs in a worker (stream-worker.ts is the other).
 * For server and bidi streams it is the AsyncIterator of response bytes the session's pump pulls
 * under the client's credit: each `next()` keeps at most {@link STREAM_READ_AHEAD} responses asked
 * of the worker and not yet taken, so a slow client holds the worker's generator in its `yield`.
 * For client and bidi streams it hands the worker one request element (bytes) per `want`, taken
 * from the session's queue only then (the client's credit comes back as the worker consumes). The
 * stream's end arrives as `done` (END's trailers, a client stream's RESPONSE, or an ERROR).
 */
export class StreamLink implements AsyncIterableIterator<Buffer> {
  private buffered: Buffer[] = [];
  /** Responses asked of the worker and not arrived yet. */
  private requested = 0;
  private waiter: Waiter | undefined;
  /** How the stream ended: undefined while it runs, `null` for an END, else the ERROR (an OffloadReply or RpcError). */
  private ending: null | { error: unknown } | undefined;
  /** `return()` was called: the pump stopped. */
  private stopped = false;
  private cancelSent = false;
  private readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  /** A client stream's answer. */
  readonly response: Promise<OffloadReply>;
  private resolveResponse!: (r: OffloadReply) => void;
  private rejectResponse!: (e: unknown) => void;
  private readonly requestSource: AsyncIterator<Buffer> | undefined;
  /** The request hand-overs, chained (a handler may ask for several at once). */
  private passing: Promise<void> = Promise.resolve();
  /** The worker thread running the stream, once its start task returned. */
  threadId: number | undefined;
  /** Set when both the worker finished and the start task settled: the slot is free then. */
  private pendingParts = 2;

  constructor(
    private readonly msg: MessageDef,
    private readonly ctx: CallContext,
    private readonly port: MessagePort,
    readonly slot: TaskSlot,
    requests: AsyncIterable<Buffer> | undefined,
    private readonly owner: LinkOwner,
    private readonly logger: Logger,
  ) {
    this.requestSource = requests?.[Symbol.asyncIterator]();
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.response = new Promise((resolve, reject) => {
      this.resolveResponse = resolve;
      this.rejectResponse = reject;
    });
    // Unobserved until the session takes it (client streams only).
    this.response.catch(noop);
    port.on('message', (m: ToMain) => this.onMessage(m));
    // The worker thread died (or the pool was destroyed): its end of the channel closed.
    port.on('close', () => {
      if (this.ending === undefined && this.threadId !== undefined) owner.lost(this.threadId);
      this.finish(undefined, new RpcError(Code.INTERNAL, `worker exited while running stream ${msg.name}`));
    });
    ctx.signal.addEventListener('abort', this.onAbort, { once: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Buffer>> {
    if (this.buffered.length > 0) {
      const value = this.buffered.shift()!;
      this.askAhead();
      return Promise.resolve({ done: false, value });
    }
    if (this.ending !== undefined) return this.ending === null ? Promise.resolve(DONE) : Promise.reject(this.ending.error);
    if (this.stopped) return Promise.resolve(DONE);
    this.askAhead();
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** The pump stopped (cancel, the call ended): the worker closes its generator; resolves once it has (or was abandoned). */
  async return(): Promise<IteratorResult<Buffer>> {
    this.stopped = true;
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve(DONE);
    if (this.ending === undefined) {
      this.cancel(Code.CANCELLED, 'stream closed');
      await this.closed;
    }
    return DONE;
  }

  /** The start task returned: the stream runs on `threadId`. */
  started(threadId: number): void {
    this.threadId = threadId;
    this.partDone();
  }

  /** The start task failed (aborted while queued, its worker died): the stream fails unless it has ended. */
  startFailed(err: unknown): void {
    const e = this.slot.aborted ? this.slot.reason : err;
    this.finish(
      undefined,
      new RpcError(Code.INTERNAL, `worker failed while starting stream ${this.msg.name}: ${(e as Error)?.message ?? String(e)}`),
    );
    this.partDone();
  }

  /** The grace period after the call ended is over and the handler still runs: its thread goes. */
  readonly abandon = (): void => {
    if (this.threadId !== undefined) this.owner.terminate(this.threadId);
    this.finish(undefined, new RpcError(Code.CANCELLED, `worker stream abandoned after its call ended`));
  };

  private askAhead(): void {
    if (this.ending !== undefined || this.stopped) return;
    const n = STREAM_READ_AHEAD - this.buffered.length - this.requested;
    if (n <= 0) return;
    this.requested += n;
    this.post({ t: 'pull', n });
  }

  private onMessage(m: ToMain): void {
    if (this.ending !== undefined) return;
    switch (m.t) {
      case 'data': {
        this.requested--;
        this.copyHeaders(m.headers);
        const value = Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.length);
        const w = this.waiter;
        this.waiter = undefined;
        if (w !== undefined) w.resolve({ done: false, value });
        else this.buffered.push(value);
        return;
      }
      case 'headers':
        this.copyHeaders(m.headers);
        return this.ctx.sendHeader();
      case 'want':
        // One at a time, in order: the session's queue takes one `next()` at a time.
        this.passing = this.passing.then(() => this.passRequest());
        return;
      case 'reqStop':
        return void this.requestSource?.return?.();
      case 'done':
        this.copyHeaders(m.headers);
        if (m.trailers !== undefined) Object.assign(this.ctx.responseTrailer, m.trailers);
        return this.finish(m.reply, undefined);
    }
  }

  /** One request element to the worker, taken from the session's queue now (which returns the client's credit). */
  private async passRequest(): Promise<void> {
    const source = this.requestSource;
    if (source === undefined) return;
    let m: ToWorker;
    try {
      const r = await source.next();
      if (r.done === true) m = { t: 'reqEnd' };
      else {
        // Its own ArrayBuffer, of exactly its size: a DATA body may be a view into a socket chunk.
        const bytes = new Uint8Array(r.value.length);
        bytes.set(r.value);
        m = { t: 'req', bytes: bytes.buffer };
      }
    } catch (err) {
      const code = err instanceof RpcError ? err.code : Code.CANCELLED;
      m = { t: 'reqFail', code, message: err instanceof Error ? err.message : String(err) };
    }
    this.post(m);
  }

  private copyHeaders(headers: Metadata | undefined): void {
    if (headers !== undefined) Object.assign(this.ctx.responseHeader, headers);
  }

  /** The stream is over: from the worker (`reply`, or none: an END or a closed producer), or locally (`error`). */
  private finish(reply: Uint8Array | FailedReply | undefined, error: RpcError | undefined): void {
    if (this.ending !== undefined) return;
    let failure: unknown = error;
    if (reply !== undefined) {
      try {
        const r = OffloadReply.read(reply);
        if (this.msg.stream === 'client') {
          // Before the RESPONSE: a worker reply carries no headers of its own.
          this.ctx.sendHeader();
          this.resolveResponse(r);
        } else {
          failure = r;
          if (r.code === Code.INTERNAL) this.logger.error({ err: r.cause, message: this.msg.name }, 'stream handler failed in a worker');
        }
      } catch (err) {
        failure = new RpcError(Code.INTERNAL, `worker stream ${this.msg.name}: ${(err as Error).message}`);
      }
    } else if (failure === undefined && this.msg.stream === 'client') {
      failure = new RpcError(this.ctx.cancelCode === Code.OK ? Code.CANCELLED : this.ctx.cancelCode, 'stream cancelled');
    }
    this.ending = failure === undefined ? null : { error: failure };
    if (failure !== undefined) this.rejectResponse(failure);
    this.ctx.signal.removeEventListener('abort', this.onAbort);
    this.port.close();
    const w = this.waiter;
    this.waiter = undefined;
    if (w !== undefined && this.buffered.length === 0) {
      if (failure === undefined || this.stopped) w.resolve(DONE);
      else w.reject(failure);
    }
    this.resolveClosed();
    this.partDone();
  }

  private readonly onAbort = (): void => {
    const reason: unknown = this.ctx.signal.reason;
    if (reason instanceof RpcError) this.cancel(reason.code, reason.message);
    else this.cancel(Code.CANCELLED, 'call cancelled');
  };

  /** Tells the worker the call is over (its flag too, which starts the grace period). */
  private cancel(code: Code, message: string): void {
    if (this.cancelSent || this.ending !== undefined) return;
    this.cancelSent = true;
    this.slot.cancel(code);
    this.post({ t: 'cancel', code, message });
  }

  private post(m: ToWorker): void {
    if (this.ending !== undefined) return;
    if (m.t === 'req') this.port.postMessage(m, [m.bytes]);
    else this.port.postMessage(m);
  }

  private partDone(): void {
    if (--this.pendingParts === 0) this.owner.released(this);
  }
}

function noop(): void {}
