/**
 * The client half of tracing: a CLIENT span around each call or stream, its context written into the
 * call metadata. Typed structurally (this layer does not know the client's types); `createClient`
 * installs it as its first interceptor.
 */
import type * as OtelApi from '@opentelemetry/api';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { callScope } from '../util/call-scope.js';
import { endSpan, kits, serverSpans, spanStart, type TraceKit } from './tracing-kit.js';
import type { Tracing } from './tracing.js';

/** The parts of a client's `OutgoingCall` tracing reads and replaces. */
export interface TracedCall {
  readonly message: string;
  readonly kind: string;
  readonly options: {
    readonly metadata?: Readonly<Record<string, string>>;
    readonly onTrailer?: (trailers: Readonly<Record<string, string>>, error?: RpcError) => void;
  };
}

/** A client interceptor, structurally. */
export type TracedNext<C extends TracedCall> = (call: C) => Promise<unknown>;

/**
 * The tracing interceptor of a client. The parent of its span is the active span (a context manager
 * registered), else the server span of the handler this call is made from (avrpc's call scope).
 */
export function clientTracingInterceptor<C extends TracedCall>(tracing: Tracing): (call: C, next: TracedNext<C>) => Promise<unknown> {
  return (call, next) => {
    const kit = kits.get(tracing);
    // Only the first calls of a client can find the API still loading.
    if (kit === undefined) return tracing.ready().then(() => traced(kits.get(tracing)!, call, next));
    return traced(kit, call, next);
  };
}

function traced<C extends TracedCall>(kit: TraceKit, call: C, next: TracedNext<C>): Promise<unknown> {
  // Options the call will refuse go as they are: rebuilt (a string's characters spread into
  // metadata, a non-function onTrailer wrapped), they could pass the check.
  if (!wellFormed(call.options)) return next(call);
  const { api } = kit;
  const active = api.context.active();
  let parent = active;
  if (api.trace.getSpan(active) === undefined) {
    const incoming = callScope.getStore();
    if (incoming !== undefined) parent = serverSpans.get(incoming) ?? active;
  }
  const start = spanStart(kit, call.message, false);
  const span = kit.tracer.startSpan(start.name, start.options, parent);
  // No SDK registered (the API's no-op tracer) and no trace to continue: nothing to record or send.
  if (!span.isRecording() && !api.isSpanContextValid(span.spanContext())) return next(call);
  const spanContext = api.trace.setSpan(parent, span);
  const metadata: Record<string, string> = { ...call.options.metadata };
  kit.propagator.inject(spanContext, metadata, api.defaultTextMapSetter);
  let ended = false;
  const end = (error: unknown): void => {
    if (ended) return;
    ended = true;
    endSpan(kit, span, error === undefined ? Code.OK : RpcError.from(error).code, error, false);
  };
  const responses = call.kind === 'server' || call.kind === 'bidi';
  let options: C['options'] = { ...call.options, metadata };
  if (responses) {
    // A stream's call ends with its trailers, whenever its consumer reads the rest.
    const user = call.options.onTrailer;
    options = {
      ...options,
      onTrailer: (trailers, error) => {
        end(error);
        if (user !== undefined) user(trailers, error);
      },
    };
  }
  let result: Promise<unknown>;
  try {
    // Promise.resolve: an interceptor after this one may return a plain value, or throw at once.
    result = Promise.resolve(api.context.with(spanContext, next, undefined, { ...call, options }));
  } catch (err) {
    end(err);
    throw err;
  }
  if (!responses) {
    return result.then(
      (value) => {
        end(undefined);
        return value;
      },
      (err: unknown) => {
        end(err);
        throw err;
      },
    );
  }
  return result.then(
    (stream) => {
      // A stream refused before it started (wrong method, bad options) never reaches the trailers hook.
      endWithTrailers(kit, stream, () => {
        if (ended) return undefined;
        ended = true;
        return span;
      });
      return stream;
    },
    (err: unknown) => {
      end(err);
      throw err;
    },
  );
}

/** True for an options object whose `metadata` and `onTrailer` tracing may rebuild. */
function wellFormed(options: unknown): boolean {
  if (!isRecord(options)) return false;
  const { metadata, onTrailer } = options as TracedCall['options'];
  return (metadata === undefined || isRecord(metadata)) && (onTrailer === undefined || typeof onTrailer === 'function');
}

function isRecord(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Ends the span of a stream refused locally once its `trailers` resolve (it has no code to tell then). */
function endWithTrailers(kit: TraceKit, stream: unknown, take: () => OtelApi.Span | undefined): void {
  const trailers = (stream as { trailers?: Promise<unknown> } | null)?.trailers;
  if (trailers === undefined || typeof trailers.then !== 'function') return;
  trailers.then(
    () => {
      const span = take();
      if (span === undefined) return;
      span.setStatus({ code: kit.api.SpanStatusCode.ERROR, message: 'stream refused before it started' });
      span.setAttribute('error.type', '_OTHER');
      span.end();
    },
    () => undefined,
  );
}
