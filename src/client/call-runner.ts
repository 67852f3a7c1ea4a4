import { invalidRequest } from '../codec/invalid-value.js';
import type { MessageDef } from '../codec/protocol.js';
import { ClientCall, type CallOwner } from './call-table.js';
import type { CallHooks } from './call-hooks.js';
import { ClientStream } from './client-stream.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { Metadata } from '../framing/bodies.js';
import type { Pool } from './pool.js';
import { RetryBudget } from './retry-budget.js';
import { callKind, endCallInfo, newCallInfo, type CallInfo } from '../observability/call-info.js';
import { HedgedCall, HedgePolicy, type HedgeDelay, type HedgeHost } from './hedging.js';
import type { RpcObserver } from '../observability/observer.js';
import { callScope, scopeWanted } from '../util/call-scope.js';
import { DeadlineQueue, type Deadlined } from './deadline-queue.js';

/** Filled retry and queueing settings of a {@link CallRunner}. */
export interface RunnerOptions {
  /** Messages that may be retried even when a failed attempt may have run. */
  idempotent: ReadonlySet<string>;
  /** Attempts per call at most, the first included. */
  maxAttempts: number;
  /** Extra load retries may add, as a fraction of calls. */
  retryBudgetRatio: number;
  /** Retry tokens saved up for a burst of failures (the budget starts full). */
  retryBudgetTokens: number;
  /** How long a call waits for a usable connection when none is ready, in ms. */
  waitForReadyMs: number;
  /** Calls wait for a connection even while every endpoint is known down (else they fail UNAVAILABLE at once). */
  waitForReady: boolean;
  /** Hedge idempotent unary calls after this delay (ms, or `'p95'`); undefined: no hedging. */
  hedgeDelayMs: HedgeDelay | undefined;
  /** Calls that may wait for a connection at once; beyond it RESOURCE_EXHAUSTED. */
  maxQueuedCalls: number;
  observer: RpcObserver | undefined;
  /** The protocol called, named in what the observer is told (its `CallInfo.service`). */
  protocol?: { readonly name: string };
}

/** The settle functions' value between calls. */
const noop = (): void => undefined;

/**
 * Runs calls over the pool: picks a connection, queues calls while no connection is ready (failing them
 * at once when every endpoint is known down, unless they wait for ready), enforces deadlines and
 * cancellation, retries failed attempts on another endpoint when that is safe (never a non-idempotent
 * call that may have reached a server) and within the retry budget, and hedges idempotent calls
 * (client/hedging.ts) under the same budget.
 */
export class CallRunner implements CallOwner {
  private readonly waiting = new Map<ClientCall, NodeJS.Timeout>();
  private readonly budget: RetryBudget;
  private readonly hedging: HedgePolicy | undefined;
  private readonly hedgeHost: HedgeHost;
  /** Every call's deadline, on one timer (a timer per call cost more than the rest of the client's side). */
  private readonly deadlines = new DeadlineQueue((call: Deadlined) => {
    const c = call as ClientCall;
    this.abandon(c, new RpcError(Code.DEADLINE_EXCEEDED, `deadline exceeded for ${c.msg.name}`));
  });
  private closed = false;
  /**
   * The settle functions of the promise `park` was just the executor of. One executor for every call:
   * a closure per call (with its context of the call's arguments) cost about 150 bytes of heap per call.
   */
  private parkedResolve: (value: unknown) => void = noop;
  private parkedReject: (error: RpcError) => void = noop;
  private readonly park = (resolve: (value: unknown) => void, reject: (error: RpcError) => void): void => {
    this.parkedResolve = resolve;
    this.parkedReject = reject;
  };

  constructor(
    private readonly pool: Pool,
    private readonly options: RunnerOptions,
  ) {
    this.budget = new RetryBudget(options.retryBudgetRatio, options.retryBudgetTokens);
    this.hedging = options.hedgeDelayMs === undefined ? undefined : new HedgePolicy(options.hedgeDelayMs, options.idempotent);
    this.hedgeHost = {
      dispatch: (attempt) => this.dispatch(attempt),
      abandon: (attempt, error) => this.abandon(attempt, error),
      withdraw: () => this.budget.withdraw(),
      // A closed client sends no hedge (its calls on connections finish).
      otherEndpointReady: (key) => !this.closed && this.pool.otherEndpointReady(key),
    };
    // From now on handlers in this thread run inside the call scope (their calls inherit from it).
    scopeWanted.value = true;
  }

  /**
   * Starts a call; settles with the response or an `RpcError`. `timeoutMs`: from now, or -1 for none.
   * `ext`: the caller's header/trailer hooks, or a stream's state (which the call's end ends).
   * `waitForReady`: wait for a connection even while every endpoint is known down (default: the client's).
   */
  run(
    msg: MessageDef,
    request: unknown,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    metadata: Metadata | undefined,
    ext?: CallHooks,
    waitForReady = this.options.waitForReady,
  ): Promise<unknown> {
    // One clock reading for the deadline, its check, the deadline queue and the send (-1: none needed).
    let now = -1;
    let deadline = -1;
    if (timeoutMs >= 0) {
      now = performance.now();
      deadline = now + timeoutMs;
    }
    // Inside a handler: inherit the incoming call's deadline (capped) and cancellation.
    const parent = callScope.getStore();
    if (parent !== undefined) {
      if (parent.deadline !== Infinity) {
        if (now < 0) now = performance.now();
        const inherited = now + (parent.deadline - Date.now());
        if (deadline < 0 || inherited < deadline) deadline = inherited;
      }
      signal = signal === undefined ? parent.signal : AbortSignal.any([signal, parent.signal]);
    }
    if (this.closed) return this.refused(msg, new RpcError(Code.UNAVAILABLE, 'client is closed'), ext);
    if (signal?.aborted) return this.refused(msg, new RpcError(Code.CANCELLED, 'call cancelled before it started'), ext);
    if (deadline >= 0 && deadline <= now) {
      return this.refused(msg, new RpcError(Code.DEADLINE_EXCEEDED, `deadline exceeded for ${msg.name} before it was sent`), ext);
    }
    const observer = this.options.observer;
    if (observer !== undefined) return this.observed(observer, msg, request, deadline, signal, metadata, ext, waitForReady, now);
    const promise = new Promise<unknown>(this.park);
    const resolve = this.parkedResolve;
    const reject = this.parkedReject;
    // Not kept past this call: they would hold its settled promise, and its value, until the next one.
    this.parkedResolve = this.parkedReject = noop;
    try {
      this.start(msg, request, deadline, signal, metadata, resolve, reject, ext, waitForReady, now);
    } catch (err) {
      // As a throw in an executor would: the call rejects with it.
      reject(err as RpcError);
    }
    return promise;
  }

  /** A call that fails before it starts still counts, by its code, with the observer (and ends its hooks or stream). */
  private refused(msg: MessageDef, error: RpcError, ext: CallHooks | undefined): Promise<never> {
    const observer = this.options.observer;
    if (observer !== undefined) {
      const info = this.callInfo(msg, undefined, -1, performance.now());
      observer.callStarted?.(msg.name, info);
      observer.callEnded?.(msg.name, error.code, 0, endCallInfo(info, error.code, 0, error));
    }
    ext?.ended(error);
    return Promise.reject(error);
  }

  private observed(
    observer: RpcObserver,
    msg: MessageDef,
    request: unknown,
    deadline: number,
    signal: AbortSignal | undefined,
    metadata: Metadata | undefined,
    ext: CallHooks | undefined,
    waitForReady: boolean,
    now: number,
  ): Promise<unknown> {
    const started = performance.now();
    const info = this.callInfo(msg, metadata, deadline, started);
    observer.callStarted?.(msg.name, info);
    return new Promise((resolve, reject) =>
      this.start(
        msg,
        request,
        deadline,
        signal,
        metadata,
        (value) => {
          const ms = performance.now() - started;
          observer.callEnded?.(msg.name, Code.OK, ms, endCallInfo(info, Code.OK, ms, undefined));
          resolve(value);
        },
        (err) => {
          const ms = performance.now() - started;
          observer.callEnded?.(msg.name, err.code, ms, endCallInfo(info, err.code, ms, err));
          reject(err);
        },
        ext,
        waitForReady,
        now,
        info,
      ),
    );
  }

  /** What the observer is told about a call; `deadline` and `started` on the `performance.now()` clock (deadline -1: none). */
  private callInfo(msg: MessageDef, metadata: Metadata | undefined, deadline: number, started: number): CallInfo {
    const epochDeadline = deadline < 0 ? Infinity : performance.timeOrigin + deadline;
    const service = this.options.protocol?.name ?? '';
    return newCallInfo('client', service, msg.name, callKind(msg.oneWay, msg.stream), '', metadata, epochDeadline, undefined, 0, started);
  }

  private start(
    msg: MessageDef,
    request: unknown,
    deadline: number,
    signal: AbortSignal | undefined,
    metadata: Metadata | undefined,
    resolve: (value: unknown) => void,
    reject: (error: RpcError) => void,
    ext: CallHooks | undefined,
    waitForReady: boolean,
    now: number,
    info?: CallInfo,
  ): void {
    this.budget.deposit();
    // Hedged: each attempt is a call of its own (its own id, deadline timer and abort listener).
    if (ext === undefined && this.hedging?.covers(msg) === true) {
      const make = (res: (value: unknown) => void, rej: (error: RpcError) => void): ClientCall =>
        this.attempt(msg, request, deadline, signal, metadata, res, rej, undefined, waitForReady, -1, info);
      return new HedgedCall(this.hedgeHost, this.hedging, msg, make, resolve, reject).start();
    }
    this.dispatch(this.attempt(msg, request, deadline, signal, metadata, resolve, reject, ext, waitForReady, now, info));
  }

  /** A call (or one attempt of a hedged call) with its deadline timer and abort listener armed. */
  private attempt(
    msg: MessageDef,
    request: unknown,
    deadline: number,
    signal: AbortSignal | undefined,
    metadata: Metadata | undefined,
    resolve: (value: unknown) => void,
    reject: (error: RpcError) => void,
    ext: CallHooks | undefined,
    waitForReady: boolean,
    /** `performance.now()` if read just before, else -1. */
    now: number,
    info?: CallInfo,
  ): ClientCall {
    const call = new ClientCall(msg, request, metadata, deadline, resolve, reject, this);
    call.waitForReady = waitForReady;
    if (info !== undefined) call.info = info;
    if (ext !== undefined) {
      call.ext = ext;
      if (ext instanceof ClientStream) ext.attach(call, this);
    }
    if (now >= 0) call.clockAt = now;
    if (deadline >= 0) this.deadlines.add(call, now >= 0 ? now : performance.now());
    if (signal !== undefined) {
      call.signal = signal;
      call.onAbort = () => this.abandon(call, abortError(signal));
      signal.addEventListener('abort', call.onAbort, { once: true });
    }
    return call;
  }

  /** Settles a call locally (deadline, cancel), telling the server if the call reached it. */
  abandon(call: ClientCall, error: RpcError): void {
    if (call.done) return;
    if (call.conn !== null) call.conn.detach(call, error);
    else this.unqueue(call);
    call.reject(error);
  }

  /** Decides between a retry and a rejection after a failed attempt. */
  attemptFailed(call: ClientCall, error: RpcError, mayHaveRun: boolean): void {
    if (call.done) return;
    if (mayHaveRun) call.mayHaveRun = true;
    // This attempt is over: what it did is in `call.mayHaveRun` now.
    call.sent = false;
    const retry =
      !this.closed &&
      // A stream that delivered anything, or took anything from the caller's requests, cannot be replayed.
      !(call.ext !== undefined && call.ext.touched) &&
      error.code === Code.UNAVAILABLE &&
      (!mayHaveRun || call.msg.idempotent || this.options.idempotent.has(call.msg.name)) &&
      call.attempts < this.options.maxAttempts &&
      (call.deadline < 0 || performance.now() < call.deadline) &&
      this.budget.withdraw();
    if (retry) this.dispatch(call);
    else call.reject(error, false);
  }

  /** A connection became ready: send the calls that were waiting for one. */
  readonly flushQueue = (): void => {
    if (this.waiting.size === 0) return;
    const calls = [...this.waiting.keys()];
    for (const call of calls) {
      this.unqueue(call);
      this.dispatch(call);
    }
  };

  /** Rejects every waiting call with `error` (the server refused us for a reason retrying will not fix). */
  readonly failQueue = (error: RpcError): void => {
    for (const call of [...this.waiting.keys()]) {
      this.unqueue(call);
      call.reject(error);
    }
  };

  /** Every endpoint is known down: waiting calls that do not wait for ready fail with `error` (gRPC's fail fast). */
  readonly failDown = (error: RpcError): void => {
    for (const call of [...this.waiting.keys()]) {
      if (call.waitForReady) continue;
      this.unqueue(call);
      call.reject(error);
    }
  };

  /** Rejects waiting calls and refuses new ones; calls on connections finish. */
  close(): void {
    this.closed = true;
    for (const call of [...this.waiting.keys()]) {
      this.unqueue(call);
      call.reject(new RpcError(Code.UNAVAILABLE, 'client closed while the call waited for a connection'));
    }
  }

  private dispatch(call: ClientCall): void {
    const picked = this.pool.pick(call.avoidEndpoint);
    if (picked.type === 'pick') return picked.conn.start(call);
    // No socket to encode on yet: check the request now, so a bad one fails at once with its
    // reason rather than after waiting for a server (a connection checks it as it encodes).
    // (The requests of a client or bidi stream are an iterable, checked element by element as they go.)
    const kind = call.msg.stream;
    const invalid = call.attempts === 0 && (kind === undefined || kind === 'server') ? invalidRequest(call.msg, call.request) : undefined;
    if (invalid !== undefined) return call.reject(invalid);
    // Every endpoint fails in a way retrying will not fix (TLS, not avrpc): say so now, not after waitForReadyMs.
    if (picked.type === 'fail') return call.reject(picked.error);
    // Every endpoint is known down: fail fast, as gRPC does, unless the call waits for ready.
    if (picked.type === 'down' && !call.waitForReady) return call.reject(picked.error);
    if (this.waiting.size >= this.options.maxQueuedCalls) {
      return call.reject(new RpcError(Code.RESOURCE_EXHAUSTED, `${this.waiting.size} calls already wait for a connection`));
    }
    call.clockAt = -1;
    const timer = setTimeout(onWaitTimeout, this.options.waitForReadyMs, this, call);
    this.waiting.set(call, timer);
  }

  private unqueue(call: ClientCall): void {
    const timer = this.waiting.get(call);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.waiting.delete(call);
  }

  /** Called when a call waited `waitForReadyMs` without a usable connection. */
  waitTimedOut(call: ClientCall): void {
    this.unqueue(call);
    const last = this.pool.lastError();
    const why = this.pool.endpointCount === 0 ? 'no endpoints known' : last !== undefined ? last.message : 'no connection ready';
    call.reject(new RpcError(Code.UNAVAILABLE, `no usable connection within ${this.options.waitForReadyMs} ms: ${why}`, { cause: last }));
  }
}

/** A call whose signal aborted: an inherited deadline keeps its code, anything else is a cancel. */
function abortError(signal: AbortSignal): RpcError {
  const reason: unknown = signal.reason;
  if (reason instanceof RpcError && reason.code === Code.DEADLINE_EXCEEDED)
    return new RpcError(Code.DEADLINE_EXCEEDED, `deadline of the incoming call exceeded`);
  return new RpcError(Code.CANCELLED, 'call cancelled by the caller');
}

function onWaitTimeout(runner: CallRunner, call: ClientCall): void {
  runner.waitTimedOut(call);
}
