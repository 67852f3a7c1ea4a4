/**
 * A stream whose handler runs in this worker thread, driven over its MessagePort by the main thread
 * (stream-link.ts): request elements arrive as bytes when the handler asks for them, responses go
 * back as bytes only as far as the main thread has asked (its read-ahead, under the client's credit).
 * Used only in worker threads.
 */
import type avro from 'avsc';
import type { MessagePort } from 'node:worker_threads';
import type { MessageDef } from '../../codec/protocol.js';
import { describeInvalid } from '../../codec/invalid-value.js';
import { isElementSource } from '../../connection/element-pump.js';
import { decodeExact } from '../../connection/payload.js';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import type { Metadata } from '../../framing/bodies.js';
import { callScope } from '../../util/call-scope.js';
import type { Handler } from '../server-options.js';
import type { FailedReply } from './offload-task.js';
import type { ToMain, ToWorker } from './stream-task.js';
import type { WorkerCallContext } from './worker-call-context.js';
import { WorkerRequests } from './worker-requests.js';
import { elementBytes, errorReply, responseReply } from './worker-replies.js';

/** Posts a message to the main thread, transferring the bytes it carries. */
export function postToMain(port: MessagePort, m: ToMain): void {
  if (m.t === 'data') return port.postMessage(m, [m.bytes.buffer as ArrayBuffer]);
  if (m.t === 'done' && m.reply instanceof Uint8Array) return port.postMessage(m, [m.reply.buffer as ArrayBuffer]);
  port.postMessage(m);
}

/** One stream in this worker: its handler, the requests it reads, the responses it produces. */
export class WorkerStream {
  /** Responses the main thread takes now. */
  private allowed = 0;
  /** The producer, waiting for `pull` or the end. */
  private wake: (() => void) | undefined;
  /** Why the main thread ended the stream (its call is over): nothing more is answered. */
  private cancelled: RpcError | undefined;
  /** A request element did not decode: the stream ends with this ERROR. */
  private failure: RpcError | undefined;
  private done = false;
  private readonly requests: WorkerRequests | undefined;

  constructor(
    private readonly msg: MessageDef,
    private readonly ctx: WorkerCallContext,
    private readonly port: MessagePort,
    resolver: avro.Resolver | undefined,
    /** Run the handler and each pull in the call's scope (deadline propagation). */
    private readonly scoped: boolean,
  ) {
    this.requests =
      msg.stream === 'server'
        ? undefined
        : new WorkerRequests(
            () => this.post({ t: 'want' }),
            () => this.post({ t: 'reqStop' }),
            (bytes) => this.decode(bytes, resolver),
          );
    port.on('message', (m: ToWorker) => this.onMessage(m));
    ctx.headerSink = { writeHeader: (_id, headers) => this.post({ t: 'headers', headers }) };
  }

  /** Runs the handler with `request` (a server stream's) or the requests; never throws. */
  async run(handler: Handler, request: unknown): Promise<void> {
    const ctx = this.ctx;
    ctx.watch();
    let result: unknown;
    try {
      const arg = this.requests ?? request;
      result = this.scoped ? callScope.run(ctx, handler, arg, ctx) : handler(arg, ctx);
      if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') result = await result;
    } catch (err) {
      return this.finish(this.failed(err));
    }
    if (this.msg.stream === 'client') {
      if (this.failure !== undefined || this.cancelled !== undefined) return this.finish(this.failed(undefined));
      return this.finish(responseReply(this.msg, result, ctx.takeTrailer()));
    }
    if (!isElementSource(result)) {
      const e = new RpcError(Code.INTERNAL, `handler of ${this.msg.name} must return an AsyncIterable of responses (an async generator)`);
      return this.finish(this.failed(e));
    }
    const s = result as Partial<AsyncIterable<unknown> & Iterable<unknown>>;
    const async = s[Symbol.asyncIterator];
    const it = typeof async === 'function' ? async.call(s) : (s as Iterable<unknown>)[Symbol.iterator]();
    await this.produce(it);
  }

  /** Pulls responses only while the main thread asked for them; closes the producer when the stream is over. */
  private async produce(it: AsyncIterator<unknown> | Iterator<unknown>): Promise<void> {
    const ctx = this.ctx;
    while (this.cancelled === undefined && this.failure === undefined) {
      if (this.allowed === 0) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      let r: IteratorResult<unknown>;
      try {
        const next = this.scoped ? callScope.run(ctx, () => it.next()) : it.next();
        r = isPromise(next) ? await next : next;
      } catch (err) {
        return this.finish(this.failed(err));
      }
      if (this.cancelled !== undefined || this.failure !== undefined) break;
      if (r.done === true) return this.finish(undefined, ctx.takeTrailer());
      let bytes: Uint8Array;
      try {
        bytes = elementBytes(this.msg.response, r.value);
      } catch (err) {
        const why = describeInvalid(this.msg.response, r.value, 'response') ?? (err as Error).message;
        await close(it);
        return this.finish(this.failed(new RpcError(Code.INTERNAL, `handler of ${this.msg.name} yielded an invalid response: ${why}`)));
      }
      this.allowed--;
      this.post({ t: 'data', bytes, headers: ctx.takeHeader() });
    }
    // The call is over: the generator's `finally` runs before the main thread hears we are done.
    await close(it);
    this.finish(this.failed(undefined));
  }

  /** The reply for a stream that failed: its request failure first, nothing once cancelled, else what the handler threw. */
  private failed(thrown: unknown): Uint8Array | FailedReply | undefined {
    if (this.failure !== undefined) return errorReply(this.msg, this.failure, this.ctx);
    if (this.cancelled !== undefined) return undefined;
    return errorReply(this.msg, thrown, this.ctx);
  }

  private finish(reply: Uint8Array | FailedReply | undefined, trailers?: Metadata): void {
    if (this.done) return;
    this.done = true;
    this.wake?.();
    this.ctx.release();
    this.post({ t: 'done', reply, headers: this.ctx.takeHeader(), trailers });
  }

  private onMessage(m: ToWorker): void {
    switch (m.t) {
      case 'pull':
        this.allowed += m.n;
        return this.wake?.();
      case 'cancel':
        return this.stop(new RpcError(m.code as Code, m.message), false);
      default:
        return this.requests?.deliver(m);
    }
  }

  /** Ends the stream from here: the handler's signal aborts, its requests fail, its producer closes. */
  private stop(reason: RpcError, asFailure: boolean): void {
    if (this.done || this.cancelled !== undefined || this.failure !== undefined) return;
    if (asFailure) this.failure = reason;
    else this.cancelled = reason;
    this.ctx.cancel(reason);
    this.requests?.fail(reason);
    this.wake?.();
  }

  private decode(bytes: ArrayBuffer, resolver: avro.Resolver | undefined): unknown {
    try {
      return decodeExact(this.msg.request, Buffer.from(bytes), 0, resolver);
    } catch (err) {
      const e = new RpcError(Code.INVALID_ARGUMENT, `cannot decode request element of ${this.msg.name}: ${(err as Error).message}`);
      this.stop(e, true);
      throw e;
    }
  }

  private post(m: ToMain): void {
    if (!this.done || m.t === 'done') postToMain(this.port, m);
  }
}

/** Closes a producer (`return()`, so a generator's `finally` runs); never rejects. */
async function close(it: AsyncIterator<unknown> | Iterator<unknown>): Promise<void> {
  try {
    await it.return?.();
  } catch {
    // A producer that throws while closing has nothing more to say to a stream that is over.
  }
}

function isPromise<V>(v: V | Promise<V>): v is Promise<V> {
  return v !== null && typeof v === 'object' && typeof (v as Promise<V>).then === 'function';
}
