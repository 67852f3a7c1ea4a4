import type avro from 'avsc';
import { describeInvalid } from '../codec/invalid-value.js';
import type { MessageDef } from '../codec/protocol.js';
import { ElementPump, isElementSource, type ElementSource } from '../connection/element-pump.js';
import { ElementQueue } from '../connection/element-queue.js';
import type { MemoryAccount } from '../connection/memory-account.js';
import { decodeExact } from '../connection/payload.js';
import { Code } from '../errors/code.js';
import { protocolError } from '../errors/protocol-error.js';
import { RpcError } from '../errors/rpc-error.js';
import { writeCredit } from '../framing/bodies.js';
import type { BodyWriter } from '../framing/frame-encoder.js';
import { FrameType } from '../framing/frame.js';
import { observeElement, type RpcObserver } from '../observability/observer.js';
import type { CallContext } from './call-context.js';
import { sendHeaders, type ReplyWriter } from './call-reply.js';
import type { Handler } from './server-options.js';
import type { OffloadedStream, StreamOffload } from './stream-offload.js';
import { callScope } from '../util/call-scope.js';
import type { FramedSocket } from '../connection/framed-socket.js';

/** What a stream writes with and reports to: its session. */
export interface StreamOwner {
  readonly writer: ReplyWriter & Pick<FramedSocket, 'fail' | 'queuedBytes' | 'afterWrites'>;
  /** Bytes queued for the client beyond which producers wait for the socket to drain. */
  readonly pauseAboveBytes: number;
  /** The handler's responses ended (`failed`: with `outcome` thrown), or its producer closed after a cancel. */
  streamEnded(stream: ServerStream, outcome: unknown, failed: boolean): void;
  /** A request element did not decode: the call fails INVALID_ARGUMENT. */
  streamFailed(stream: ServerStream, error: RpcError): void;
}

/** The largest credit a client may give one stream, in all (u32, as HTTP/2 bounds its windows). */
const MAX_CREDIT = 0xffffffff;

/**
 * One stream call on the server (SPEC.md section 13): the request elements that arrive (DATA, END),
 * handed to the handler as an AsyncIterable under our credit, and the handler's responses pulled
 * under the client's credit and written as DATA. Its call (running, cancel, slot, reply) stays the
 * session's; this object holds only what a stream adds.
 */
export class ServerStream {
  /** The requests, for client and bidi streams. */
  readonly requests: ElementQueue<unknown> | undefined;
  private pump: ElementPump<unknown> | undefined;
  /**
   * DATA received minus the credit given back since: never `S` or more before a DATA arrives (the
   * client's credit is `S` minus this), whatever CREDIT added beyond the elements taken.
   */
  private outstanding = 0;
  /** Sizes of the request elements buffered, oldest first, charged to the memory account until taken. */
  private sizes: number[] = [];
  private requestsEnded = false;
  private closed = false;
  /** Set once the session gave back the stream's slot (internal to the session). */
  released = false;
  /** Frames either way so far, for the idle check (a count: no clock read per element). */
  private activity = 0;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: number,
    readonly msg: MessageDef,
    readonly ctx: CallContext,
    private readonly owner: StreamOwner,
    /** Our `S`: request elements the client may send ahead of our CREDIT (which may give more back than was taken). */
    private readonly window: number,
    /** The client's `S`: responses it takes before its first CREDIT. */
    private readonly peerWindow: number,
    /** Resolver from the client's request type, or undefined (same protocol). */
    private readonly resolver: avro.Resolver | undefined,
    private readonly write: BodyWriter<unknown>,
    private readonly account: MemoryAccount | undefined,
    private readonly observer: RpcObserver | undefined,
    /** The handler runs in a worker: request elements stay bytes, and responses come as bytes. */
    readonly encoded = false,
  ) {
    this.requests =
      msg.stream === 'server'
        ? undefined
        : new ElementQueue<unknown>({ credit: (n) => this.credit(n), took: () => this.took(), abandoned: noop }, window);
  }

  /**
   * Runs the stream's handler (its `ctx` in the call scope when `scoped`), or hands it to a worker
   * (`encoded`): a client stream's result is its response, a server or bidi stream's its responses.
   * Reports the end to the owner exactly once.
   */
  run(handler: Handler | undefined, request: unknown, scoped: boolean, offload: StreamOffload | undefined): void {
    const ctx = this.ctx;
    let result: unknown;
    try {
      if (this.encoded) {
        // A worker runs the handler; only bytes cross.
        const requests = this.requests as AsyncIterable<Buffer> | undefined;
        result = offload!.runStream(this.msg.index, { ...(request as Omit<OffloadedStream, 'requests'>), requests }, ctx);
      } else {
        // A client or bidi stream's handler takes the requests as they come.
        const arg = this.requests ?? request;
        result = scoped ? callScope.run(ctx, handler!, arg, ctx) : handler!(arg, ctx);
      }
    } catch (err) {
      return this.owner.streamEnded(this, err, true);
    }
    const runPull = scoped ? <R>(pull: () => R): R => callScope.run(ctx, pull) : undefined;
    const produces = this.producesResponses;
    if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') {
      (result as Promise<unknown>).then(
        (value) => (produces ? this.produce(value, runPull) : this.owner.streamEnded(this, value, false)),
        (err: unknown) => this.owner.streamEnded(this, err, true),
      );
    } else if (produces) {
      this.produce(result, runPull);
    } else {
      this.owner.streamEnded(this, result, false);
    }
  }

  /** True for server and bidi streams: the handler's result is a stream of responses. */
  get producesResponses(): boolean {
    return this.msg.stream !== 'client';
  }

  /**
   * The handler returned `result` (server and bidi streams): its elements are pulled under the
   * client's credit. A result that is not iterable fails the call INTERNAL.
   */
  produce(result: unknown, runPull?: <R>(pull: () => R) => R): void {
    if (!isElementSource(result)) {
      const e = new RpcError(Code.INTERNAL, `handler of ${this.msg.name} must return an AsyncIterable of responses (an async generator)`);
      return this.owner.streamEnded(this, e, true);
    }
    const pump = new ElementPump(result as ElementSource<unknown>, this.peerWindow, this.pumpSink(), runPull);
    // Cancelled while the handler was still making its iterable: close it unread; the call then ends.
    if (this.closed) return void pump.stop().then(() => this.owner.streamEnded(this, undefined, false));
    this.pump = pump;
    pump.start();
  }

  /** A DATA frame from the client: one request element. */
  onData(body: Buffer): void {
    this.activity++;
    const requests = this.requests;
    if (requests === undefined) return this.owner.writer.fail(protocolError(`DATA for ${this.msg.name}, a server stream, from the client`));
    if (this.requestsEnded) return this.owner.writer.fail(protocolError(`DATA after END for request id ${this.id}`));
    if (this.outstanding >= this.window) {
      return this.owner.writer.fail(
        new RpcError(Code.RESOURCE_EXHAUSTED, `protocol error: DATA beyond the stream's credit (${this.window}) for request id ${this.id}`),
      );
    }
    this.outstanding++;
    if (requests.closed) return; // the handler stopped reading: dropped, and its credit not returned
    let value: unknown = body;
    try {
      if (!this.encoded) value = decodeExact(this.msg.request, body, 0, this.resolver);
    } catch (err) {
      const e = new RpcError(Code.INVALID_ARGUMENT, `cannot decode request element of ${this.msg.name}: ${(err as Error).message}`);
      return this.owner.streamFailed(this, e);
    }
    this.sizes.push(body.length);
    this.account?.charge(body.length);
    if (this.observer !== undefined) observeElement(this.observer, this.msg.name, 'received', this.ctx.info);
    requests.push(value, body.length);
  }

  /** An END frame from the client: no more requests. */
  onEnd(): void {
    this.activity++;
    // A server stream's request is whole in its REQUEST: an END changes nothing.
    if (this.requests === undefined || this.requestsEnded) return;
    this.requestsEnded = true;
    this.requests.end();
  }

  /** A CREDIT frame from the client: it takes `n` more responses. */
  onCredit(n: number): void {
    this.activity++;
    const pump = this.pump;
    if (pump === undefined || pump.finished) return;
    if (pump.available + n > MAX_CREDIT) return this.owner.writer.fail(protocolError(`CREDIT beyond 2^32-1 for request id ${this.id}`));
    pump.grant(n);
  }

  /**
   * Calls `idle` once a whole period of `ms` went by without a frame either way: between `ms` and
   * twice `ms` after the last one (one timer per period, no clock read per element).
   */
  watchIdle(ms: number, idle: (stream: ServerStream) => void): void {
    if (ms <= 0) return;
    let seen = this.activity;
    const check = (): void => {
      if (this.activity === seen) return idle(this);
      seen = this.activity;
      this.idleTimer = setTimeout(check, ms);
    };
    this.idleTimer = setTimeout(check, ms);
  }

  /**
   * The call is over (answered, cancelled, connection closed): the handler's requests end with
   * `reason` (its `for await` throws), its producer is closed, and what was buffered is given back.
   * Resolves once the producer has closed (a generator's `finally` ran), so its slot is held till then.
   */
  close(reason: RpcError | undefined): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    if (reason !== undefined) this.requests?.fail(reason);
    else this.requests?.end();
    void this.requests?.return();
    let held = 0;
    for (const n of this.sizes) held += n;
    this.sizes = [];
    if (held > 0) this.account?.credit(held);
    const pump = this.pump;
    // A producer stopped before its end: the call ends once it has closed (its slot is held till then).
    if (pump !== undefined && !pump.finished) return pump.stop().then(() => this.owner.streamEnded(this, undefined, false));
    return Promise.resolve();
  }

  /** True once {@link close} ran. */
  get isClosed(): boolean {
    return this.closed;
  }

  private pumpSink(): { send(value: unknown): void; end(): void; fail(err: unknown): void } {
    return {
      send: (value) => this.send(value),
      end: () => this.owner.streamEnded(this, undefined, false),
      fail: (err) => this.owner.streamEnded(this, err, true),
    };
  }

  /**
   * One response element out, after the headers if they are still unsent. Returns false when the
   * socket is backed up (a client whose window outgrows what the socket drains): the producer then
   * waits for the writes, so credit never makes the server queue more than `maxQueuedBytes`.
   */
  private send(value: unknown): boolean {
    const w = this.owner.writer;
    sendHeaders(w, this.id, this.ctx);
    try {
      if (this.encoded) w.messageBytes(FrameType.DATA, 0, this.id, value as Buffer);
      else w.message(FrameType.DATA, 0, this.id, value, this.write);
    } catch (err) {
      const why = describeInvalid(this.msg.response, value, 'response') ?? (err as Error).message;
      throw new RpcError(Code.INTERNAL, `handler of ${this.msg.name} yielded an invalid response: ${why}`, { cause: err });
    }
    this.activity++;
    if (this.observer !== undefined) observeElement(this.observer, this.msg.name, 'sent', this.ctx.info);
    if (w.queuedBytes <= this.owner.pauseAboveBytes) return true;
    w.afterWrites(() => this.pump?.resume());
    return false;
  }

  /** The handler took a request: it no longer counts as buffered. */
  private took(): void {
    const size = this.sizes.shift();
    if (size !== undefined && size > 0) this.account?.credit(size);
  }

  /** The handler took `n` requests since the last CREDIT: the client may send `n` more. */
  private credit(n: number): void {
    this.outstanding -= n;
    if (!this.closed) this.owner.writer.frame(FrameType.CREDIT, 0, this.id, n, writeCredit);
  }
}

function noop(): void {}
