import type { IncomingRequest, PeerCodec } from '../codec/peer-codec.js';
import type { MessageDef, Protocol } from '../codec/protocol.js';
import type { FramedSocket } from '../connection/framed-socket.js';
import { IdMap } from '../connection/id-map.js';
import { DEFAULT_STREAM_WINDOW } from '../connection/large-messages.js';
import type { MemoryAccount } from '../connection/memory-account.js';
import { decodeExact } from '../connection/payload.js';
import { Code } from '../errors/code.js';
import { unexpectedFrame } from '../errors/protocol-error.js';
import { RpcError } from '../errors/rpc-error.js';
import { readRequestHead, writeMetadata, type ErrorDraft, type Metadata } from '../framing/bodies.js';
import { Flag, FrameType, idAfter } from '../framing/frame.js';
import { callHook } from '../util/call-hook.js';
import { callScope, scopeWanted } from '../util/call-scope.js';
import { CallContext, type HeaderSink, type PeerInfo } from './call-context.js';
import { sendReply, sendStreamEnd, withTrailers, type ReplyWriter } from './call-reply.js';
import { sendError } from './error-reply.js';
import { HeadAuthorization, denial, type HeadSink } from './head-authorization.js';
import { OffloadedRequest } from './offload/offload-pool.js';
import { OffloadReply } from './offload/offload-task.js';
import { callKind, endCallInfo, newCallInfo } from '../observability/call-info.js';
import type { RpcObserver } from '../observability/observer.js';
import {
  EXPIRED,
  OPEN,
  Refusal,
  admitHead,
  admitRequest,
  admitStream,
  draining,
  type Gate,
  type RunningCalls,
} from './request-admission.js';
import type { HandshakeResult } from './server-handshake.js';
import type { ServerShared } from './server-shared.js';
import { ServerStream, type StreamOwner } from './server-stream.js';
import { StreamTable, routeStreamFrame } from './stream-table.js';

/** What a session writes with: a `FramedSocket` in production, a fake in unit tests. */
export type SessionWriter = ReplyWriter &
  Pick<FramedSocket, 'frame' | 'discard' | 'fail' | 'isClosed' | 'queuedBytes' | 'afterWrites' | 'lastBodyLength' | 'clock'>;

/** `host:port` of a peer, as observers see it. */
function peerName(peer: PeerInfo): string {
  return `${peer.address}:${peer.port}`;
}

/** How close to its deadline a call's CANCEL reads as the client's timeout, for the rapid-reset guard, in ms. */
const DEADLINE_CANCEL_SLACK_MS = 1000;

/**
 * The calls of one connection whose handshake completed: admits requests, runs their handlers (or
 * the offload pool), answers them, and cancels them. Built from a {@link HandshakeResult}, so its
 * codec and peer are fixed. Tells its connection (`settled`) whenever a call or an answered request
 * may have been the last thing a draining connection waited for.
 */
export class ServerSession implements RunningCalls, HeadSink, HeaderSink, StreamOwner {
  readonly codec: PeerCodec;
  private gate: Gate;
  private readonly running = new IdMap<CallContext>();
  /** One-way calls running, apart from `running`: their ids are free once read (no answer tells the client when they end). */
  private readonly oneWays = new Set<CallContext>();
  /**
   * Calls the client cancelled whose handlers still run: their ids are the client's again (SPEC.md
   * section 6), but each holds its slot of `maxConcurrentCalls` until its handler settles, or a client
   * could run any number of handlers at once by cancelling each call as soon as it is sent.
   */
  private readonly orphans = new Set<CallContext>();
  /** Calls a handler completed (answered, a one-way call done, or run to its deadline), for the rapid-reset guard. */
  private completed = 0;
  private lastId = 0;
  private requestsSinceIdleCheck = 0;
  /** See {@link HandshakeResult.unadmitted}: shared once a call completed. */
  private unadmitted: Protocol | undefined;
  /** Verdicts on requests judged from their start; only with `authorize`. */
  private readonly heads: HeadAuthorization | undefined;
  /** Open streams by id, for their DATA, END and CREDIT (SPEC.md section 13). */
  private readonly streams = new StreamTable();
  /** The client's `S`; 0 when it did not negotiate streams (nor response headers and trailers). */
  private readonly peerStreamWindow: number;
  /** See {@link StreamOwner.pauseAboveBytes}: a quarter of `maxQueuedBytes`. */
  readonly pauseAboveBytes: number;

  constructor(
    private readonly shared: ServerShared,
    readonly writer: SessionWriter,
    result: HandshakeResult,
    /** The peer, its principal included. */
    readonly peer: PeerInfo,
    /** Called when the session may have nothing left to do (see {@link inFlight}). */
    private readonly settled: () => void,
    gate: Gate = OPEN,
    /** Where request elements buffered for stream handlers are counted (the connection's memory account). */
    private readonly account?: MemoryAccount,
  ) {
    this.codec = result.codec;
    this.peerStreamWindow = result.negotiated.peerStreamWindow;
    this.pauseAboveBytes = shared.options.maxQueuedBytes / 4;
    this.unadmitted = result.unadmitted;
    this.gate = gate;
    const o = shared.options;
    this.heads = o.authorize === undefined ? undefined : new HeadAuthorization(o.authorize, this.codec, o.maxMetadataBytes, peer, this);
  }

  /** Calls running: each holds a slot of `maxConcurrentCalls`. */
  get inFlight(): number {
    return this.running.size + this.oneWays.size + this.orphans.size;
  }

  /** Calls a handler completed so far, for the rapid-reset guard. */
  get completedCalls(): number {
    return this.completed;
  }

  /** True while the session takes new requests (not draining). */
  get accepting(): boolean {
    return this.gate.open;
  }

  /** Whether a two-way call with this id runs (see {@link RunningCalls}). */
  isRunning(id: number): boolean {
    return this.running.has(id);
  }

  /** Requests received since the last call, counted afresh from now (the idle check). */
  takeRequestCount(): number {
    const n = this.requestsSinceIdleCheck;
    this.requestsSinceIdleCheck = 0;
    return n;
  }

  /**
   * GOAWAY goes out: no new request runs from now on, but those partly received (`receiving`) do once
   * whole. Returns the GOAWAY's last id, which covers them.
   */
  stopAccepting(receiving: readonly number[] | undefined): number {
    let lastId = this.lastId;
    let admitted: Set<number> | undefined;
    if (receiving !== undefined) {
      admitted = new Set(receiving);
      for (const id of admitted) if (idAfter(id, lastId)) lastId = id;
    }
    this.gate = draining(admitted);
    return lastId;
  }

  /** The principal expired: every request from now on is refused UNAUTHENTICATED. Returns the last id run. */
  expire(): number {
    this.gate = EXPIRED;
    return this.lastId;
  }

  /** A REQUEST arrived whole. */
  onRequest(flags: number, id: number, body: Buffer): void {
    const oneWay = (flags & Flag.ONE_WAY) !== 0;
    const o = this.shared.options;
    this.requestsSinceIdleCheck++;
    const verdict = admitRequest(id, this.gate, this, o);
    if (verdict !== undefined) return verdict instanceof Refusal ? this.refuse(id, oneWay, verdict) : this.writer.fail(verdict);
    let msg: MessageDef;
    let request: unknown;
    let ctx: CallContext;
    let stream: ServerStream | undefined;
    try {
      // Bounded: an oversized map is refused having read no more than the limit of it.
      const head = readRequestHead(flags, body, o.maxMetadataBytes);
      const offload = this.shared.offload;
      const incoming = admitHead(head, body.length, o, this.codec, o.handlers, offload);
      if (incoming instanceof Refusal) return this.refuse(id, oneWay, incoming);
      msg = incoming.local!;
      const refusal =
        msg.stream === undefined
          ? undefined
          : admitStream(msg, oneWay, body.length - head.offset, this.peerStreamWindow, this.streams.count, o.maxConcurrentStreams);
      if (refusal !== undefined) return this.refuse(id, oneWay, refusal);
      // Offloaded calls keep their payload as bytes: a worker decodes it. A client or bidi stream's
      // REQUEST has none: its requests come as DATA.
      request =
        msg.stream === 'client' || msg.stream === 'bidi'
          ? undefined
          : msg.stream === undefined && offload?.takes(msg.index, body.length - head.offset) === true
            ? new OffloadedRequest(this.codec.remote, head.index, body, head.offset)
            : decodeExact(msg.request, body, head.offset, incoming.resolver);
      ctx = new CallContext(
        msg.name,
        head.metadata,
        head.timeoutMs < 0 ? Infinity : this.writer.clock.epochNow() + head.timeoutMs,
        this.peer,
      );
      if (this.peerStreamWindow > 0) {
        ctx.id = id;
        ctx.headerSink = this;
      }
      if (msg.stream !== undefined) {
        const offloaded = this.shared.streamOffload?.takesStream(msg.index) === true;
        stream = this.openStream(id, msg, ctx, incoming, offloaded);
        // A worker decodes the request record itself.
        if (offloaded)
          request = {
            remote: this.codec.remote,
            remoteIndex: head.index,
            request: msg.stream === 'server' ? body.subarray(head.offset) : undefined,
          };
      }
    } catch (err) {
      return this.refuse(id, oneWay, new Refusal(Code.INVALID_ARGUMENT, `cannot decode request: ${(err as Error).message}`));
    }
    this.lastId = id;
    if (oneWay) this.oneWays.add(ctx);
    else this.running.set(id, ctx);
    if (o.observer !== undefined) this.observeStart(o.observer, msg, ctx, oneWay, body.length);
    const authorize = o.authorize;
    const heads = this.heads;
    if (authorize === undefined || heads === undefined) return this.invoke(id, msg, request, ctx, oneWay, stream);
    // Judged already from its start (HeadAuthorization): not asked twice.
    const judged = heads.take(id);
    if (judged === true) return this.invoke(id, msg, request, ctx, oneWay, stream);
    (judged ?? callHook(() => authorize(this.peer.principal, msg.name, ctx.metadata))).then(
      (allowed) => (allowed === true ? this.invoke(id, msg, request, ctx, oneWay, stream) : this.deny(id, ctx, oneWay, msg.name, stream)),
      () => this.deny(id, ctx, oneWay, msg.name, stream),
    );
  }

  private invoke(id: number, msg: MessageDef, request: unknown, ctx: CallContext, oneWay: boolean, stream?: ServerStream): void {
    if (!this.tracks(id, ctx, oneWay)) return this.release(ctx, stream);
    const o = this.shared.options;
    const scoped = o.propagateDeadlines && scopeWanted.value;
    if (stream !== undefined) return stream.run(o.handlers[msg.index], request, scoped, this.shared.streamOffload);
    let result: unknown;
    try {
      const handler = o.handlers[msg.index]!;
      if (request instanceof OffloadedRequest) result = this.shared.offload!.run(msg.index, request, ctx);
      else result = scoped ? callScope.run(ctx, handler, request, ctx) : handler(request, ctx);
    } catch (err) {
      return this.complete(id, msg, ctx, oneWay, err, true);
    }
    if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') {
      (result as Promise<unknown>).then(
        (value) => this.complete(id, msg, ctx, oneWay, value, false),
        (err: unknown) => this.complete(id, msg, ctx, oneWay, err, true),
      );
    } else {
      this.complete(id, msg, ctx, oneWay, result, false);
    }
  }

  private deny(id: number, ctx: CallContext, oneWay: boolean, name: string, stream?: ServerStream): void {
    if (!this.tracks(id, ctx, oneWay)) return this.release(ctx, stream);
    this.untrack(id, ctx, oneWay);
    if (stream !== undefined) this.streams.end(stream);
    // Counted under its message: callStarted was reported for it.
    if (this.shared.options.observer !== undefined)
      this.observeEnd(ctx, name, Code.PERMISSION_DENIED, new RpcError(Code.PERMISSION_DENIED, denial(name).message), 0);
    if (!oneWay) {
      const refusal = denial(name);
      sendError(this.writer, id, { code: refusal.code, message: refusal.message, metadata: undefined, declared: undefined }, Flag.REFUSED);
    }
    this.settled();
  }

  private complete(
    id: number,
    msg: MessageDef,
    ctx: CallContext,
    oneWay: boolean,
    outcome: unknown,
    failed: boolean,
    stream?: ServerStream,
  ): void {
    ctx.finish();
    const o = this.shared.options;
    if (ctx.cancelled || !this.tracks(id, ctx, oneWay)) {
      // A call past its deadline stays in `running` until its handler returns; free its id now. A
      // cancelled one frees its slot.
      this.untrack(id, ctx, oneWay);
      this.orphans.delete(ctx);
      if (stream !== undefined) this.streams.end(stream);
      // A call that ran to its deadline completed as far as the rapid-reset guard is concerned: the
      // client's CANCEL for it may arrive just after, for an id no longer running.
      if (ctx.cancelCode === Code.DEADLINE_EXCEEDED) this.completed++;
      if (o.observer !== undefined) this.observeEnd(ctx, msg.name, ctx.cancelled ? ctx.cancelCode : Code.CANCELLED, ctx.cancelReason, 0);
      return this.settled();
    }
    this.untrack(id, ctx, oneWay);
    this.completed++;
    let code: Code = Code.OK;
    if (!oneWay && !this.writer.isClosed) {
      code =
        stream?.producesResponses === true
          ? sendStreamEnd(this.writer, id, msg, ctx, outcome, failed, o.logger, this.peer)
          : sendReply(
              this.writer,
              id,
              msg,
              outcome,
              failed,
              this.shared.writers[msg.index]!,
              o.logger,
              this.peer,
              ctx,
              this.peerStreamWindow > 0,
            );
    }
    if (stream !== undefined) this.streams.end(stream);
    // A call completed: the peer is a client, its protocol (and resolvers) may join the shared cache.
    if (this.unadmitted !== undefined && code === Code.OK && !failed) {
      this.shared.cache.admit(this.unadmitted, this.codec);
      this.unadmitted = undefined;
    }
    if (o.observer !== undefined) {
      const answered =
        oneWay || this.writer.isClosed ? 0 : outcome instanceof OffloadReply ? outcome.body.length : this.writer.lastBodyLength;
      this.observeEnd(ctx, msg.name, code, failed ? outcome : undefined, answered);
    }
    this.settled();
  }

  /** Tells the observer a call started, with its {@link CallInfo} (kept on `ctx` for its end). */
  private observeStart(observer: RpcObserver, msg: MessageDef, ctx: CallContext, oneWay: boolean, requestBytes: number): void {
    ctx.startedAt = performance.now();
    const peer = this.peer;
    const kind = callKind(oneWay, msg.stream);
    const service = this.shared.options.protocol.name;
    ctx.info = newCallInfo(
      'server',
      service,
      msg.name,
      kind,
      peerName(peer),
      ctx.metadata,
      ctx.deadline,
      peer.principal,
      requestBytes,
      ctx.startedAt,
    );
    observer.callStarted?.(msg.name, ctx.info);
  }

  /** Tells the observer a call ended (only called with an observer, so `ctx.info` is set). */
  private observeEnd(ctx: CallContext, name: string, code: Code, error: unknown, responseBytes: number): void {
    const info = ctx.info!;
    info.responseBytes = responseBytes;
    const ms = performance.now() - ctx.startedAt;
    this.shared.options.observer?.callEnded?.(name, code, ms, endCallInfo(info, code, ms, error));
  }

  /** A stream call was admitted: its state, by id for its DATA, END and CREDIT. */
  private openStream(id: number, msg: MessageDef, ctx: CallContext, incoming: IncomingRequest, offloaded: boolean): ServerStream {
    const o = this.shared.options;
    const stream = new ServerStream(
      id,
      msg,
      ctx,
      this,
      o.maxBufferedElements ?? DEFAULT_STREAM_WINDOW,
      this.peerStreamWindow,
      incoming.resolver,
      this.shared.writers[msg.index]!,
      this.account,
      o.observer,
      offloaded,
    );
    this.streams.add(stream);
    stream.watchIdle(o.streamIdleTimeoutMs, (s) => this.idle(s));
    // The deadline stops the stream's producer too, as it aborts the handler's signal.
    if (ctx.deadline !== Infinity) ctx.signal.addEventListener('abort', () => this.streams.abort(stream, ctx.cancelCode), { once: true });
    return stream;
  }

  /** A DATA, END or CREDIT frame from the client (see {@link routeStreamFrame}). */
  onStreamFrame(type: number, id: number, body: Buffer): void {
    if (this.peerStreamWindow === 0) return this.writer.fail(unexpectedFrame(type, 'without streams negotiated'));
    const error = routeStreamFrame(this.streams.get(id), type, body);
    if (error !== undefined) this.writer.fail(error);
  }

  /** {@link HeaderSink}: a handler sent its headers early. */
  writeHeader(id: number, headers: Metadata): void {
    if (!this.writer.isClosed) this.writer.frame(FrameType.HEADERS, 0, id, headers, writeMetadata);
  }

  /** {@link StreamOwner}: a stream's producer ended, failed, or closed after a cancel. */
  streamEnded(stream: ServerStream, outcome: unknown, failed: boolean): void {
    this.complete(stream.id, stream.msg, stream.ctx, false, outcome, failed, stream);
  }

  /** {@link StreamOwner}: a request element did not decode: the call fails with `error` and its handler is cancelled. */
  streamFailed(stream: ServerStream, error: RpcError): void {
    this.stopStream(stream, { code: error.code, message: error.message, metadata: undefined, declared: undefined }, error);
  }

  /** A request element refused before delivery (over `maxMessageBytes`, does not inflate): the stream fails with `error`. */
  refuseElement(id: number, error: RpcError): void {
    const stream = this.streams.get(id);
    if (stream !== undefined) this.streamFailed(stream, error);
  }

  /** No frame either way for `streamIdleTimeoutMs`: the stream ends CANCELLED. */
  private idle(stream: ServerStream): void {
    const ms = this.shared.options.streamIdleTimeoutMs;
    const error = new RpcError(Code.CANCELLED, `stream idle for ${ms} ms`);
    this.stopStream(stream, { code: error.code, message: error.message, metadata: undefined, declared: undefined }, error);
  }

  /** Ends a running stream from our side with an ERROR, as a cancel: the handler's signal aborts, and its slot is held until it ends. */
  private stopStream(stream: ServerStream, draft: ErrorDraft, reason: RpcError): void {
    const { id, ctx } = stream;
    if (this.running.get(id) !== ctx) return;
    sendError(this.writer, id, withTrailers(draft, ctx));
    this.running.delete(id);
    this.orphans.add(ctx);
    ctx.cancel(reason);
    this.streams.abort(stream, ctx.cancelCode);
  }

  /** Whether `ctx` is still a running call (not cancelled away, not replaced). */
  private tracks(id: number, ctx: CallContext, oneWay: boolean): boolean {
    return oneWay ? this.oneWays.has(ctx) : this.running.get(id) === ctx;
  }

  private untrack(id: number, ctx: CallContext, oneWay: boolean): void {
    if (oneWay) this.oneWays.delete(ctx);
    else if (this.running.get(id) === ctx) this.running.delete(id);
  }

  /** A call cancelled before its handler ran (authorization still pending): its slot is free. */
  private release(ctx: CallContext, stream?: ServerStream): void {
    if (stream !== undefined) this.streams.end(stream);
    if (this.orphans.delete(ctx)) this.settled();
  }

  /** Answers a request that no handler will see: flagged REFUSED, so a client may send it elsewhere. */
  refuse(id: number, oneWay: boolean, refusal: Refusal): void {
    const observer = this.shared.options.observer;
    if (observer !== undefined) {
      const info = newCallInfo(
        'server',
        this.shared.options.protocol.name,
        '(refused)',
        oneWay ? 'oneWay' : 'unary',
        peerName(this.peer),
        undefined,
        Infinity,
        this.peer.principal,
        0,
      );
      observer.callEnded?.('(refused)', refusal.code, 0, endCallInfo(info, refusal.code, 0, new RpcError(refusal.code, refusal.message)));
    }
    this.forget(id);
    if (!oneWay)
      sendError(this.writer, id, { code: refusal.code, message: refusal.message, metadata: undefined, declared: undefined }, Flag.REFUSED);
    // The last request still arriving may have been this one.
    this.settled();
  }

  /** Drops what arrived of a request (see {@link HeadSink}). */
  discard(id: number): void {
    this.writer.discard(id);
  }

  /** Judges a REQUEST from its start, while the rest still arrives (see {@link HeadAuthorization.check}). */
  checkHead(flags: number, id: number, start: Buffer): boolean {
    return this.heads === undefined || this.heads.check(flags, id, start);
  }

  /**
   * The client cancelled `id`: a running call is cancelled (its slot held until its handler settles).
   * Returns true when that call was at, or within DEADLINE_CANCEL_SLACK_MS of, its deadline: the
   * client's timeout, not a reset, for the rapid-reset guard.
   */
  cancel(id: number): boolean {
    this.forget(id);
    const ctx = this.running.get(id);
    if (ctx === undefined) return false;
    this.running.delete(id);
    this.orphans.add(ctx);
    ctx.cancel(new RpcError(Code.CANCELLED, 'call cancelled by the client'));
    const stream = this.streams.get(id);
    if (stream !== undefined) this.streams.abort(stream, ctx.cancelCode);
    return ctx.deadline - Date.now() < DEADLINE_CANCEL_SLACK_MS;
  }

  /** The connection closed: every running call is cancelled with `error` as the cause. */
  close(error: RpcError): void {
    this.heads?.clear();
    const reason = new RpcError(Code.CANCELLED, `connection closed: ${error.message}`, { cause: error });
    for (const ctx of this.running.values()) ctx.cancel(reason);
    for (const ctx of this.oneWays) ctx.cancel(reason);
    this.streams.closeAll(reason);
    this.running.clear();
    this.oneWays.clear();
    this.orphans.clear();
  }

  /** A request was answered or cancelled: GOAWAY's admission and a pending head verdict are spent. */
  private forget(id: number): void {
    if (!this.gate.open) this.gate.admitted?.delete(id);
    this.heads?.forget(id);
  }
}
