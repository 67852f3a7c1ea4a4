import type { CallContext } from './call-context.js';
import type { Handler } from './server-options.js';

/**
 * Server middleware around each handler (logging, tracing, auth): call `next(request)` to go on, or
 * throw / return without it. Interceptors run in order, the first outermost. Calls refused before a
 * handler is chosen (unknown message, undecodable request, limits, authorization) do not reach them.
 */
export type ServerInterceptor = (request: unknown, ctx: CallContext, next: (request: unknown) => Promise<unknown>) => Promise<unknown>;

/** Wraps `handler` in `interceptors`, once, at server creation; no interceptors cost nothing. */
export function chainHandler(handler: Handler, interceptors: readonly ServerInterceptor[]): Handler {
  let chained = handler;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    const interceptor = interceptors[i]!;
    const next = chained;
    chained = (request, ctx) => interceptor(request, ctx, async (r) => next(r, ctx));
  }
  return chained;
}
