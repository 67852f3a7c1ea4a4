import type { MessageDef } from '../codec/protocol.js';
import { describeInvalid } from '../codec/invalid-value.js';
import { matchDeclared } from '../connection/payload.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { callKind, endCallInfo, newCallInfo } from '../observability/call-info.js';
import { callHook } from '../util/call-hook.js';
import { callScope, scopeWanted } from '../util/call-scope.js';
import type { CallContext } from './call-context.js';
import { errorDraftFor } from './error-reply.js';
import type { ServerShared } from './server-shared.js';

/** How a call run by {@link executeCall} ended. */
export type CallOutcome = { ok: true; value: unknown } | { ok: false; error: RpcError };

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
    this.count--;
    if (this.count === 0) for (const resolve of this.waiting.splice(0)) resolve();
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
 * Runs one unary or one-way call of `msg` for a non-avrpc transport, as an avrpc session runs it:
 * the observer's start and end, `authorize`, the handler chained with the interceptors, the deadline
 * scope for calls it makes, and declared errors. Never rejects. A failure is an RpcError whose
 * `details` and `errorType` hold a declared error when the handler threw one; a message without a
 * handler is UNIMPLEMENTED, `authorize` refusing PERMISSION_DENIED, a draining server UNAVAILABLE,
 * a call past `ctx.deadline` DEADLINE_EXCEEDED (its handler's signal aborted), a call whose `ctx`
 * the transport cancelled (the client went away) that cancel's code.
 */
export function executeCall(shared: ServerShared, msg: MessageDef, request: unknown, ctx: CallContext): Promise<CallOutcome> {
  if (msg.stream !== undefined)
    return Promise.resolve(failed(new RpcError(Code.UNIMPLEMENTED, `${msg.name} is a ${msg.stream} stream, not a unary call`)));
  return execute(shared, msg, request, ctx, undefined);
}

/**
 * Where a server stream's responses go: called once per element, in order; the next element is
 * pulled once what it returns settles (the transport's backpressure).
 */
export type ElementSink = (element: unknown) => void | Promise<void>;

/**
 * Runs one server-stream call of `msg` as {@link executeCall} runs a unary one, each response given
 * to `sink` (checked against the element type first). Resolves once the stream ended: ok (value null)
 * or with the error that ended it (after any elements already given). Never rejects.
 */
export function executeServerStream(
  shared: ServerShared,
  msg: MessageDef,
  request: unknown,
  ctx: CallContext,
  sink: ElementSink,
): Promise<CallOutcome> {
  if (msg.stream !== 'server') return Promise.resolve(failed(new RpcError(Code.UNIMPLEMENTED, `${msg.name} is not a server stream`)));
  return execute(shared, msg, request, ctx, sink);
}

async function execute(
  shared: ServerShared,
  msg: MessageDef,
  request: unknown,
  ctx: CallContext,
  sink: ElementSink | undefined,
): Promise<CallOutcome> {
  const o = shared.options;
  const calls = callsOf(shared);
  if (calls.draining) return failed(new RpcError(Code.UNAVAILABLE, 'server is shutting down'));
  if (calls.running >= o.maxConcurrentCalls)
    return failed(new RpcError(Code.RESOURCE_EXHAUSTED, `server is at maxConcurrentCalls (${o.maxConcurrentCalls})`));
  const handler = o.protocol.messages[msg.index] === msg ? o.handlers[msg.index] : undefined;
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
      0,
      ctx.startedAt,
    );
    observer.callStarted?.(msg.name, ctx.info);
  }
  let outcome: CallOutcome;
  try {
    outcome = await run(shared, msg, handler, request, ctx, sink);
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

async function run(
  shared: ServerShared,
  msg: MessageDef,
  handler: ((request: unknown, ctx: CallContext) => unknown) | undefined,
  request: unknown,
  ctx: CallContext,
  sink: ElementSink | undefined,
): Promise<CallOutcome> {
  const o = shared.options;
  if (handler === undefined) return failed(new RpcError(Code.UNIMPLEMENTED, `no handler for ${msg.name}`));
  if (o.authorize !== undefined) {
    const authorize = o.authorize;
    const allowed = await callHook(() => authorize(ctx.peer.principal, msg.name, ctx.metadata)).catch(() => false);
    if (allowed !== true) return failed(new RpcError(Code.PERMISSION_DENIED, `not allowed to call ${msg.name}`));
  }
  if (ctx.cancelled) return failed(ctx.cancelReason!);
  if (ctx.deadline <= Date.now()) return failed(new RpcError(Code.DEADLINE_EXCEEDED, 'deadline exceeded'));
  const scoped = o.propagateDeadlines && scopeWanted.value;
  const settled = new Promise<CallOutcome>((resolve) => {
    // Without a deadline only a cancel ends the call early: no AbortSignal for that, unless the
    // handler asks for one (ctx.signal).
    if (ctx.deadline === Infinity) ctx.onCancel((reason) => resolve(failed(reason)));
    let result: unknown;
    try {
      result = scoped ? callScope.run(ctx, handler, request, ctx) : handler(request, ctx);
    } catch (err) {
      return resolve(thrown(shared, msg, err, ctx));
    }
    Promise.resolve(result).then(
      (value) => (sink === undefined ? resolve(answered(shared, msg, value, ctx)) : produce(shared, msg, value, ctx, sink).then(resolve)),
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

/** Pulls a server stream's responses into `sink`, one at a time, until it ends, fails, or the call is cancelled. */
async function produce(shared: ServerShared, msg: MessageDef, source: unknown, ctx: CallContext, sink: ElementSink): Promise<CallOutcome> {
  const iterable = source as AsyncIterable<unknown> | Iterable<unknown> | null;
  const make =
    iterable === null || typeof iterable !== 'object'
      ? undefined
      : ((iterable as AsyncIterable<unknown>)[Symbol.asyncIterator] ?? (iterable as Iterable<unknown>)[Symbol.iterator]);
  if (typeof make !== 'function')
    return failed(new RpcError(Code.INTERNAL, `handler of ${msg.name} must return an AsyncIterable of responses (an async generator)`));
  const it = make.call(iterable) as AsyncIterator<unknown> | Iterator<unknown>;
  try {
    for (;;) {
      if (ctx.cancelled) return failed(ctx.cancelReason!);
      const next = await it.next();
      if (next.done === true) return { ok: true, value: null };
      if (!msg.response.isValid(next.value)) {
        const e = new RpcError(
          Code.INTERNAL,
          `handler of ${msg.name} produced an invalid response: ${describeInvalid(msg.response, next.value, 'response') ?? 'does not fit the type'}`,
        );
        shared.options.logger.error({ err: e, message: msg.name, peer: ctx.peer }, 'handler produced an invalid response');
        return failed(e);
      }
      await sink(next.value);
    }
  } catch (err) {
    return thrown(shared, msg, err, ctx);
  } finally {
    // Ended early (cancel, sink failure): the generator's finally blocks run.
    void Promise.resolve(it.return?.()).catch(() => undefined);
  }
}

/** A handler's value: checked against the response type (`undefined` is a `null` message's null). */
function answered(shared: ServerShared, msg: MessageDef, value: unknown, ctx: CallContext): CallOutcome {
  if (ctx.cancelled) return failed(ctx.cancelReason!);
  if (msg.oneWay) return { ok: true, value: null };
  const v = value === undefined && msg.response.typeName === 'null' ? null : value;
  if (msg.response.isValid(v)) return { ok: true, value: v };
  const invalid = new RpcError(
    Code.INTERNAL,
    `handler of ${msg.name} returned an invalid response: ${describeInvalid(msg.response, v, 'response') ?? 'does not fit the type'}`,
  );
  shared.options.logger.error({ err: invalid, message: msg.name, peer: ctx.peer }, 'handler returned an invalid response');
  return failed(invalid);
}

/** What a handler threw, as the avrpc session would send it (declared errors kept, INTERNAL logged). */
function thrown(shared: ServerShared, msg: MessageDef, err: unknown, ctx: CallContext): CallOutcome {
  if (ctx.cancelled) return failed(ctx.cancelReason!);
  const draft = errorDraftFor(msg, err);
  const code = draft.code as Code;
  if (code === Code.INTERNAL) shared.options.logger.error({ err, message: msg.name, peer: ctx.peer }, 'handler failed');
  const source = err instanceof RpcError ? err.details : err;
  const match =
    draft.declared === undefined ? undefined : matchDeclared(msg.errors, source, err instanceof RpcError ? err.errorType : undefined);
  const metadata = draft.metadata;
  return failed(
    new RpcError(code, draft.message, {
      cause: err,
      ...(metadata === undefined ? {} : { metadata }),
      ...(match === undefined ? {} : { details: source, errorType: match.branch.name ?? match.branch.typeName }),
    }),
  );
}

function failed(error: RpcError): CallOutcome {
  return { ok: false, error };
}
