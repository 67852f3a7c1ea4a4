import type { MessageDef } from '../codec/protocol.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { callKind, endCallInfo, newCallInfo } from '../observability/call-info.js';
import { callHook } from '../util/call-hook.js';
import { callScope, scopeWanted } from '../util/call-scope.js';
import type { CallContext } from './call-context.js';
import { answered, decodedElements, failed, produce, thrown } from './executor-results.js';
import { OffloadedRequest } from './offload/offload-pool.js';
import { EncodedRequest, decodeRequest, requestBytes, type CallOutcome } from './offload-outcome.js';
import type { Handler } from './server-options.js';
import type { ServerShared } from './server-shared.js';

export { EncodedRequest, type CallOutcome } from './offload-outcome.js';

/**
 * The calls other transports (HTTP, gRPC) run on one server: counted against `maxConcurrentCalls`,
 * refused UNAVAILABLE once the server drains, and waited for by `close`.
 */
export class GatewayCalls {
  private count = 0;
  private closing = false;
  private readonly waiting: Array<() => void> = [];

  /** Calls running now. */
  get running(): number {
    return this.count;
  }

  /** True once the server drains: new calls are refused UNAVAILABLE. */
  get draining(): boolean {
    return this.closing;
  }

  /** The server drains: no new call runs; resolves once those running ended. */
  drain(): Promise<void> {
    this.closing = true;
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** A call starts (internal). */
  enter(): void {
    this.count++;
  }

  /** A call ended (internal). */
  leave(): void {
    // Checked first: a pipelined batch's last call empties the count often, and splice allocates.
    if (--this.count === 0 && this.waiting.length > 0) for (const resolve of this.waiting.splice(0)) resolve();
  }
}

/** Calls of a server that has no {@link ServerShared.gateway} (a server built without one, in tests). */
const UNTRACKED = new WeakMap<ServerShared, GatewayCalls>();

function callsOf(shared: ServerShared): GatewayCalls {
  if (shared.gateway !== undefined) return shared.gateway;
  let calls = UNTRACKED.get(shared);
  if (calls === undefined) UNTRACKED.set(shared, (calls = new GatewayCalls()));
  return calls;
}

/**
 * Where a stream's responses go: called once per element, in order; the next element is pulled once
 * what it returns settles (the transport's backpressure). A value sink gets decoded values; a bytes
 * sink (see {@link executeStream}) gets each element's Avro bytes in the server's schema.
 */
export type ElementSink = (element: unknown) => void | Promise<void>;

/** What a stream call starts from (see {@link executeStream}). */
export interface StreamInput {
  /** A server stream's request record: a decoded value, or an {@link EncodedRequest}. */
  request?: unknown;
  /** Client and bidi streams: each request element's Avro bytes (server schema), as they arrive. */
  requests?: AsyncIterable<Buffer>;
}

/**
 * Runs one unary or one-way call of `msg` for a non-avrpc transport, as an avrpc session runs it:
 * the observer's start and end, `authorize`, the handler chained with the interceptors (or a worker,
 * for a message the `workers` option offloads, through the same pool and policy), the deadline scope
 * for calls it makes, and declared errors. `request` is the decoded record or an {@link EncodedRequest}.
 * Never rejects. A failure is an RpcError whose `details` and `errorType` hold a declared error when
 * the handler threw one; a message without a handler is UNIMPLEMENTED, bytes that do not decode
 * INVALID_ARGUMENT, `authorize` refusing PERMISSION_DENIED, a draining server UNAVAILABLE, a call
 * past `ctx.deadline` DEADLINE_EXCEEDED (its handler's signal aborted), a call whose `ctx` the
 * transport cancelled (the client went away) that cancel's code.
 */
export function executeCall(shared: ServerShared, msg: MessageDef, request: unknown, ctx: CallContext): Promise<CallOutcome> {
  return new Promise((resolve) => runCall(shared, msg, request, ctx, resolve));
}

/**
 * {@link executeCall} with its outcome given to `done` (once; perhaps before this returns, for a
 * handler that answers synchronously). A call that needs none of the asynchronous steps (no
 * observer, no `authorize`, no worker, no deadline) runs its handler straight away and hands its
 * outcome over in the handler's own turn: the gateway's calls then pay one promise, the handler's.
 */
export function runCall(
  shared: ServerShared,
  msg: MessageDef,
  request: unknown,
  ctx: CallContext,
  done: (outcome: CallOutcome) => void,
): void {
  if (msg.stream !== undefined)
    return done(failed(new RpcError(Code.UNIMPLEMENTED, `${msg.name} is a ${msg.stream} stream, not a unary call`)));
  const o = shared.options;
  const index = msg.index;
  const handler = o.handlers[index];
  const calls = callsOf(shared);
  if (
    o.observer !== undefined ||
    o.authorize !== undefined ||
    ctx.deadline !== Infinity ||
    handler === undefined ||
    o.protocol.messages[index] !== msg ||
    shared.offload?.serves(index) === true ||
    calls.draining ||
    calls.running >= o.maxConcurrentCalls
  ) {
    void execute(shared, msg, { request }, ctx, undefined, false).then(done);
    return;
  }
  calls.enter();
  let ended = false;
  const end = (outcome: CallOutcome): void => {
    if (ended) return;
    ended = true;
    ctx.finish();
    calls.leave();
    done(outcome);
  };
  // The transport's cancel (its client went away) ends the call without waiting for its handler.
  ctx.onCancel((reason) => end(failed(reason)));
  if (ctx.cancelled) return end(failed(ctx.cancelReason!));
  let result: unknown;
  try {
    const arg = decodeRequest(msg, request);
    try {
      result = invokeScoped(o.propagateDeadlines, handler, arg, ctx);
    } catch (err) {
      return end(thrown(shared, msg, err, ctx));
    }
  } catch (err) {
    return end(failed(RpcError.from(err)));
  }
  if (result instanceof Promise)
    result.then(
      (value: unknown) => end(answered(shared, msg, value, ctx)),
      (err: unknown) => end(thrown(shared, msg, err, ctx)),
    );
  else if (isThenable(result))
    Promise.resolve(result).then(
      (value: unknown) => end(answered(shared, msg, value, ctx)),
      (err: unknown) => end(thrown(shared, msg, err, ctx)),
    );
  else end(answered(shared, msg, result, ctx));
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (typeof v === 'object' || typeof v === 'function') && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * Runs one server-stream call of `msg` as {@link executeCall} runs a unary one, each response given
 * to `sink` as a decoded value (checked against the element type first). Resolves once the stream
 * ended: ok (value null) or with the error that ended it (after any elements already given). Never rejects.
 */
export function executeServerStream(
  shared: ServerShared,
  msg: MessageDef,
  request: unknown,
  ctx: CallContext,
  sink: ElementSink,
): Promise<CallOutcome> {
  if (msg.stream !== 'server') return Promise.resolve(failed(new RpcError(Code.UNIMPLEMENTED, `${msg.name} is not a server stream`)));
  return execute(shared, msg, { request }, ctx, sink, false);
}

/**
 * Runs one stream call of any kind as {@link executeServerStream} does: a server stream from
 * `input.request`, a client or bidi stream's handler fed `input.requests` (decoded one at a time as
 * it takes them; one that does not decode fails the call INVALID_ARGUMENT), or the worker the
 * `workers` option runs the message in (bytes only cross). Server and bidi streams give their
 * responses to `sink`, as Avro bytes when `bytesSink`; a client stream resolves with its response
 * (`encoded` when a worker made it). Never rejects.
 */
export function executeStream(
  shared: ServerShared,
  msg: MessageDef,
  input: StreamInput,
  ctx: CallContext,
  sink: ElementSink,
  bytesSink: boolean,
): Promise<CallOutcome> {
  if (msg.stream === undefined) return Promise.resolve(failed(new RpcError(Code.UNIMPLEMENTED, `${msg.name} is not a stream`)));
  return execute(shared, msg, input, ctx, msg.stream === 'client' ? undefined : sink, bytesSink);
}

async function execute(
  shared: ServerShared,
  msg: MessageDef,
  input: StreamInput,
  ctx: CallContext,
  sink: ElementSink | undefined,
  bytesSink: boolean,
): Promise<CallOutcome> {
  const o = shared.options;
  const calls = callsOf(shared);
  if (calls.draining) return failed(new RpcError(Code.UNAVAILABLE, 'server is shutting down'));
  if (calls.running >= o.maxConcurrentCalls)
    return failed(new RpcError(Code.RESOURCE_EXHAUSTED, `server is at maxConcurrentCalls (${o.maxConcurrentCalls})`));
  calls.enter();
  const observer = o.observer;
  if (observer !== undefined) {
    ctx.startedAt = performance.now();
    const peer = ctx.peer;
    ctx.info = newCallInfo(
      'server',
      o.protocol.name,
      msg.name,
      callKind(msg.oneWay, msg.stream),
      `${peer.address}:${peer.port}`,
      ctx.metadata,
      ctx.deadline,
      peer.principal,
      input.request instanceof EncodedRequest ? input.request.bytes.length : 0,
      ctx.startedAt,
    );
    observer.callStarted?.(msg.name, ctx.info);
  }
  let outcome: CallOutcome;
  try {
    outcome = await run(shared, msg, input, ctx, sink, bytesSink);
  } catch (err) {
    outcome = failed(RpcError.from(err));
  } finally {
    ctx.finish();
    calls.leave();
  }
  if (observer !== undefined) {
    const info = ctx.info!;
    const code = outcome.ok ? Code.OK : outcome.error.code;
    const ms = performance.now() - ctx.startedAt;
    observer.callEnded?.(msg.name, code, ms, endCallInfo(info, code, ms, outcome.ok ? undefined : outcome.error));
  }
  return outcome;
}

/** How a call's handler is started: what it is given, and who runs it. */
type Start = () => unknown;

async function run(
  shared: ServerShared,
  msg: MessageDef,
  input: StreamInput,
  ctx: CallContext,
  sink: ElementSink | undefined,
  bytesSink: boolean,
): Promise<CallOutcome> {
  const o = shared.options;
  const index = msg.index;
  // A message of another protocol has no handler here, nor a worker.
  if (o.protocol.messages[index] !== msg) return failed(new RpcError(Code.UNIMPLEMENTED, `no handler for ${msg.name}`));
  const handler = o.handlers[index];
  let start: Start | undefined;
  /** Responses come as bytes from a worker. */
  let encoded = false;
  if (msg.stream === undefined) {
    // As an avrpc session decides (offload-pool.ts): the message is offloaded and the payload big enough.
    const pool = shared.offload;
    const bytes = pool?.serves(index) === true ? requestBytes(msg, input.request) : undefined;
    if (bytes !== undefined && pool!.takes(index, bytes.length)) {
      const request = new OffloadedRequest(o.protocol, index, bytes, 0);
      start = () => pool!.run(index, request, ctx);
    } else {
      const request = decodeRequest(msg, input.request);
      if (handler !== undefined) start = () => invokeScoped(o.propagateDeadlines, handler, request, ctx);
    }
  } else if (shared.streamOffload?.takesStream(index) === true) {
    const worker = shared.streamOffload;
    const request = msg.stream === 'server' ? requestBytes(msg, input.request) : undefined;
    encoded = true;
    start = () => worker.runStream(index, { remote: o.protocol, remoteIndex: index, request, requests: input.requests }, ctx);
  } else {
    const arg = msg.stream === 'server' ? decodeRequest(msg, input.request) : decodedElements(msg, input.requests, ctx);
    if (handler !== undefined) start = () => invokeScoped(o.propagateDeadlines, handler, arg, ctx);
  }
  if (start === undefined) return failed(new RpcError(Code.UNIMPLEMENTED, `no handler for ${msg.name}`));
  if (o.authorize !== undefined) {
    const authorize = o.authorize;
    const allowed = await callHook(() => authorize(ctx.peer.principal, msg.name, ctx.metadata)).catch(() => false);
    if (allowed !== true) return failed(new RpcError(Code.PERMISSION_DENIED, `not allowed to call ${msg.name}`));
  }
  if (ctx.cancelled) return failed(ctx.cancelReason!);
  if (ctx.deadline <= Date.now()) return failed(new RpcError(Code.DEADLINE_EXCEEDED, 'deadline exceeded'));
  const settled = new Promise<CallOutcome>((resolve) => {
    // Without a deadline only a cancel ends the call early: no AbortSignal for that, unless the
    // handler asks for one (ctx.signal).
    if (ctx.deadline === Infinity) ctx.onCancel((reason) => resolve(failed(reason)));
    let result: unknown;
    try {
      result = start();
    } catch (err) {
      return resolve(thrown(shared, msg, err, ctx));
    }
    Promise.resolve(result).then(
      (value) =>
        resolve(
          sink === undefined
            ? answered(shared, msg, value, ctx)
            : produce(shared, msg, value, ctx, encoded ? bytesOut(msg, sink, bytesSink) : valuesOut(msg, sink, bytesSink), !encoded),
        ),
      (err: unknown) => resolve(thrown(shared, msg, err, ctx)),
    );
  });
  // The deadline, or the transport's cancel (its client went away), ends the call without waiting for
  // its handler, whose signal aborts.
  if (ctx.deadline === Infinity) return ctx.cancelled ? failed(ctx.cancelReason!) : settled;
  const signal = ctx.signal;
  if (signal.aborted) return failed(ctx.cancelReason ?? new RpcError(Code.DEADLINE_EXCEEDED, 'deadline exceeded'));
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<CallOutcome>((resolve) => {
    onAbort = () => resolve(failed(ctx.cancelReason ?? RpcError.from(signal.reason)));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([settled, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}

/** Runs `handler` in the call scope (deadline propagation) when the server wants it, as a session does. */
function invokeScoped(propagate: boolean, handler: Handler, arg: unknown, ctx: CallContext): unknown {
  return propagate && scopeWanted.value ? callScope.run(ctx, handler, arg, ctx) : handler(arg, ctx);
}

/** A sink of worker bytes: as they are for a bytes sink, else decoded. */
function bytesOut(msg: MessageDef, sink: ElementSink, bytesSink: boolean): ElementSink {
  return bytesSink ? sink : (b) => sink(msg.response.fromBuffer(b as Buffer));
}

/** A sink of handler values: as they are for a value sink, else encoded. */
function valuesOut(msg: MessageDef, sink: ElementSink, bytesSink: boolean): ElementSink {
  return bytesSink ? (v) => sink(msg.response.toBuffer(v)) : sink;
}
