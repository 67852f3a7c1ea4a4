import type { CallOptions } from './client-options.js';

/** What kind of call an {@link OutgoingCall} is: a call (two-way or one-way) or a stream (SPEC.md section 13). */
export type CallKind = 'unary' | 'oneWay' | 'server' | 'client' | 'bidi';

/**
 * A call on its way out, as client interceptors see it; they may replace the request or options. For
 * streams `request` is the request (server) or the iterable of requests (client, bidi), and `next()`
 * resolves with what the method returns: the `ResponseStream`, or the client stream's response.
 */
export interface OutgoingCall {
  readonly message: string;
  readonly request: object;
  readonly options: CallOptions;
  readonly kind: CallKind;
}

/**
 * Client middleware around each call (logging, tracing, adding metadata): call `next(call)` to send
 * it, possibly changed. Interceptors run in order, the first outermost.
 */
export type ClientInterceptor = (call: OutgoingCall, next: (call: OutgoingCall) => Promise<unknown>) => Promise<unknown>;

/** Composes interceptors around `send`, once, at client creation. */
export function chainCall(
  send: (call: OutgoingCall) => Promise<unknown>,
  interceptors: readonly ClientInterceptor[],
): (call: OutgoingCall) => Promise<unknown> {
  let chained = send;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    const interceptor = interceptors[i]!;
    const next = chained;
    chained = (call) => interceptor(call, next);
  }
  return chained;
}
