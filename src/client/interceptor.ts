import type { CallOptions } from './client-options.js';

/** A call on its way out, as client interceptors see it; they may replace the request or options. */
export interface OutgoingCall {
  readonly message: string;
  readonly request: object;
  readonly options: CallOptions;
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
