/**
 * The server half of tracing: a SERVER span around each handler, continuing the caller's trace from
 * the call metadata, with the handler (and a stream handler's pulls) run in the span's context.
 * Typed structurally (this layer does not know the server's types); `createServer` installs it as
 * its first interceptor. Calls refused before a handler is chosen, or run in worker threads, reach no
 * interceptor and get no span.
 */
import type * as OtelApi from '@opentelemetry/api';
import { Code } from '../errors/code.js';
import { endSpan, kits, serverSpans, spanStart, type TraceKit } from './tracing-kit.js';
import type { Tracing } from './tracing.js';

/** The parts of a server's `CallContext` tracing reads. */
export interface TracedContext {
  readonly message: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly peer: { readonly address: string; readonly port: number };
  readonly cancelled: boolean;
  readonly cancelCode: number;
}

/** What a handler's failure sends: the code (and message) the server derives from what it threw. */
export type DescribeFailure = (message: string, thrown: unknown) => { code: number };

/**
 * The tracing interceptor of a server. `streams` tells which messages answer with a stream of
 * responses (server and bidi streams): their span ends with the stream, not with the handler.
 */
export function serverTracingInterceptor(
  tracing: Tracing,
  streams: ReadonlySet<string>,
  describe: DescribeFailure,
): (request: unknown, ctx: TracedContext, next: (request: unknown) => Promise<unknown>) => Promise<unknown> {
  return (request, ctx, next) => {
    const kit = kits.get(tracing);
    // listen() waited for the API: only a server that never listened could get here first.
    if (kit === undefined) return tracing.ready().then(() => traced(kits.get(tracing)!, request, ctx, next, streams, describe));
    return traced(kit, request, ctx, next, streams, describe);
  };
}

function traced(
  kit: TraceKit,
  request: unknown,
  ctx: TracedContext,
  next: (request: unknown) => Promise<unknown>,
  streams: ReadonlySet<string>,
  describe: DescribeFailure,
): Promise<unknown> {
  const { api } = kit;
  // From the root: whatever context was active where the server listened is no parent of its calls.
  const parent = kit.propagator.extract(api.ROOT_CONTEXT, ctx.metadata, api.defaultTextMapGetter);
  const start = spanStart(kit, ctx.message, true);
  const span = kit.tracer.startSpan(start.name, start.options, parent);
  const recording = span.isRecording();
  // No SDK registered (the API's no-op tracer) and no trace to continue: nothing to record or pass on.
  if (!recording && !api.isSpanContextValid(span.spanContext())) return next(request);
  if (recording) {
    span.setAttribute('network.peer.address', ctx.peer.address);
    span.setAttribute('network.peer.port', ctx.peer.port);
  }
  const spanContext = api.trace.setSpan(parent, span);
  serverSpans.set(ctx, spanContext);
  let ended = false;
  const end = (code: number, error: unknown): void => {
    if (ended) return;
    ended = true;
    // A call cancelled or past its deadline ends with that code, whatever its handler did after.
    endSpan(kit, span, ctx.cancelled ? ctx.cancelCode : code, error, true);
  };
  const failed = (err: unknown): void => end(describe(ctx.message, err).code, err);
  return api.context.with(spanContext, next, undefined, request).then(
    (value) => {
      if (!streams.has(ctx.message)) {
        end(Code.OK, undefined);
        return value;
      }
      return tracedResponses(api, spanContext, value, end, failed);
    },
    (err: unknown) => {
      failed(err);
      throw err;
    },
  );
}

/**
 * A stream handler's responses, pulled in the span's context (the producer's code runs at each pull),
 * ending the span when they end, fail, or are closed early (a cancel, a deadline; otherwise a response
 * that did not encode: INTERNAL). A plain iterable stays plain, so its elements cost no turn each.
 */
function tracedResponses(
  api: TraceKit['api'],
  spanContext: OtelApi.Context,
  value: unknown,
  end: (code: number, error: unknown) => void,
  failed: (err: unknown) => void,
): unknown {
  const source = value as Partial<AsyncIterable<unknown> & Iterable<unknown>> | null;
  const asyncIt = source?.[Symbol.asyncIterator];
  const syncIt = source?.[Symbol.iterator];
  if (typeof asyncIt !== 'function' && (typeof syncIt !== 'function' || typeof value === 'string')) {
    end(Code.INTERNAL, new Error('stream handler returned no iterable of responses'));
    return value;
  }
  const closed = (): void => end(Code.INTERNAL, new Error('response stream closed before its end'));
  if (typeof asyncIt === 'function') {
    return {
      [Symbol.asyncIterator](): AsyncIterator<unknown> {
        const it = asyncIt.call(source) as AsyncIterator<unknown>;
        return {
          next: () =>
            api.context
              .with(spanContext, () => it.next())
              .then(
                (r) => {
                  if (r.done === true) end(Code.OK, undefined);
                  return r;
                },
                (err: unknown) => {
                  failed(err);
                  throw err;
                },
              ),
          return: (v?: unknown) => {
            closed();
            return typeof it.return === 'function' ? it.return(v) : Promise.resolve({ done: true, value: v });
          },
        };
      },
    };
  }
  return {
    [Symbol.iterator](): Iterator<unknown> {
      const it = syncIt!.call(source) as Iterator<unknown>;
      return {
        next: () => {
          try {
            const r = api.context.with(spanContext, () => it.next());
            if (r.done === true) end(Code.OK, undefined);
            return r;
          } catch (err) {
            failed(err);
            throw err;
          }
        },
        return: (v?: unknown) => {
          closed();
          return typeof it.return === 'function' ? it.return(v) : { done: true, value: v };
        },
      };
    },
  };
}
