import type { Code } from '../errors/code.js';

/** What kind of call a {@link CallInfo} describes: the client's `CallKind` (interceptors see the same). */
export type CallInfoKind = 'unary' | 'oneWay' | 'server' | 'client' | 'bidi';

/**
 * One call as an observer sees it: the last argument of `callStarted` and `callEnded`. The same object
 * goes to both hooks of one call (the end fields filled in before `callEnded`), so an observer can keep
 * per-call state in a `WeakMap` keyed by it. Built only when an observer is set. Read it, do not write
 * it: avrpc fills its sizes, peer and end fields as the call goes (read them at `callEnded`).
 */
export interface CallInfo {
  /** Who observes: the server answering or the client calling. */
  readonly side: 'server' | 'client';
  /** The protocol's full name (`avrpc.echo.Echo`): the service, in OpenTelemetry's terms. */
  readonly service: string;
  /** The message called; `(refused)` for a server's request refused before a handler was chosen. */
  readonly message: string;
  /** Unary, one-way or a stream. */
  readonly kind: CallInfoKind;
  /**
   * The other side, `host:port`: a server's client; a client's endpoint of the last attempt, `''`
   * while (or when) no attempt was sent.
   */
  peer: string;
  /** The request's metadata (an empty object when there is none). */
  readonly metadata: Readonly<Record<string, string>>;
  /** The deadline, epoch ms (`Date.now()` clock); `Infinity` when the call has none. */
  readonly deadline: number;
  /** When the call started, epoch ms (`performance.timeOrigin` + `performance.now()`: no clock read per call). */
  readonly startTime: number;
  /** Server: who the caller is (`authenticate`'s or the mTLS certificate's principal). Undefined on a client. */
  readonly principal: unknown;
  /**
   * Bytes of the REQUEST body, uncompressed, its head (message index, timeout, metadata) included; for
   * a client or bidi stream only its opening (the elements are DATA: see `requestElements`). 0 while not sent.
   */
  requestBytes: number;
  /**
   * Bytes of the answer's body (RESPONSE, ERROR, or a stream's END), uncompressed; 0 for a one-way
   * call, an answer never received, and on a server for a call cancelled or refused before it ran.
   */
  responseBytes: number;
  /** Stream elements the client sent (a server: received) so far. */
  requestElements: number;
  /** Stream elements the server sent (a client: received) so far. */
  responseElements: number;
  /** Client: attempts sent or tried so far (retries add to it). 1 on a server. */
  attempts: number;
  /** The code the call ended with; undefined until it ended. */
  code: Code | undefined;
  /** How long it took, in ms; 0 until it ended. */
  durationMs: number;
  /**
   * Why it failed (code not OK): a client's `RpcError` as the caller gets it; a server's thrown value
   * (the handler's error, its cause included) or the refusal. Undefined on success.
   */
  error: unknown;
}

/** Mutable: what avrpc builds and fills. */
type Filling = { -readonly [K in keyof CallInfo]: CallInfo[K] };

const NONE: Readonly<Record<string, string>> = Object.freeze({});

/** The {@link CallInfoKind} of a message. */
export function callKind(oneWay: boolean, stream: 'server' | 'client' | 'bidi' | undefined): CallInfoKind {
  if (stream !== undefined) return stream;
  return oneWay ? 'oneWay' : 'unary';
}

/**
 * A new {@link CallInfo} (internal: servers and clients build it when an observer is set). `deadline`
 * is epoch ms or Infinity.
 */
export function newCallInfo(
  side: 'server' | 'client',
  service: string,
  message: string,
  kind: CallInfoKind,
  peer: string,
  metadata: Readonly<Record<string, string>> | undefined,
  deadline: number,
  principal: unknown,
  requestBytes: number,
  /** When the call started, on the `performance.now()` clock (taken already by the caller). */
  startedAt: number = performance.now(),
): CallInfo {
  const info: Filling = {
    side,
    service,
    message,
    kind,
    peer,
    metadata: metadata ?? NONE,
    deadline,
    // No clock read: Date.now() costs about 50 ns, a call's start was measured already.
    startTime: performance.timeOrigin + startedAt,
    principal,
    requestBytes,
    responseBytes: 0,
    requestElements: 0,
    responseElements: 0,
    attempts: side === 'server' ? 1 : 0,
    code: undefined,
    durationMs: 0,
    error: undefined,
  };
  return info;
}

/** Fills the end fields of `info` (internal); returns it, for the `callEnded` call. */
export function endCallInfo(info: CallInfo, code: Code, durationMs: number, error: unknown): CallInfo {
  const f = info as Filling;
  f.code = code;
  f.durationMs = durationMs;
  f.error = code === 0 ? undefined : error;
  return info;
}
