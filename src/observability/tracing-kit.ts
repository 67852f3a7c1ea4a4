/**
 * The OpenTelemetry side of tracing, typed by `@opentelemetry/api`: loading it, the tracer and
 * propagator of a traced client or server, and how a span ends. Kept apart from tracing.ts so that
 * the public types (option `tracing`) never refer to the optional package.
 */
import type * as OtelApi from '@opentelemetry/api';
import { Code, codeName } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { w3cTraceContext } from './w3c-trace-context.js';
import type { TracingOptions } from './tracing.js';

type Api = typeof OtelApi;

/** Name and version of the instrumentation scope the spans carry. */
const SCOPE = 'avrpc';
const SCOPE_VERSION = '0.1.0';

let loading: Promise<Api> | undefined;

/**
 * `@opentelemetry/api`, imported once. Rejects with FAILED_PRECONDITION naming the package when it
 * is missing (tried again on the next call, in case it was installed meanwhile).
 */
function loadApi(): Promise<Api> {
  loading ??= import('@opentelemetry/api').then(
    (mod) => mod as Api,
    (err: unknown) => {
      loading = undefined;
      throw new RpcError(Code.FAILED_PRECONDITION, 'option tracing needs the @opentelemetry/api package: npm install @opentelemetry/api', {
        cause: err,
      });
    },
  );
  return loading;
}

/** What a traced side needs once the API is loaded. */
export interface TraceKit {
  readonly api: Api;
  readonly tracer: OtelApi.Tracer;
  readonly propagator: OtelApi.TextMapPropagator;
  /** `rpc.service`: the protocol's full name. */
  readonly service: string;
  /** Name and start options of spans, by side and message, made once (see {@link spanStart}). */
  readonly starts: Map<string, SpanStart>;
}

/** How the spans of one message on one side start: their name, kind and first attributes. */
export interface SpanStart {
  readonly name: string;
  readonly options: OtelApi.SpanOptions;
}

/** The kit of each `Tracing` once built (see {@link buildKit}). */
export const kits = new WeakMap<object, TraceKit>();

/**
 * Loads the API and builds the tracer and the propagator: `options`' own, else the global provider
 * and the global propagator when one is registered, else W3C trace context.
 */
export async function buildKit(options: TracingOptions, service: string): Promise<TraceKit> {
  const api = await loadApi();
  const provider = (options.tracerProvider as OtelApi.TracerProvider | undefined) ?? api.trace.getTracerProvider();
  const global = api.propagation.fields().length > 0 ? api.propagation : undefined;
  const propagator = (options.propagator as OtelApi.TextMapPropagator | undefined) ?? global ?? w3cTraceContext(api);
  return { api, tracer: provider.getTracer(SCOPE, SCOPE_VERSION), propagator, service, starts: new Map() };
}

/** Server codes that mark a SERVER span as an error: the server's fault, as the gRPC conventions have it. */
const SERVER_ERRORS: ReadonlySet<number> = new Set([
  Code.UNKNOWN,
  Code.DEADLINE_EXCEEDED,
  Code.UNIMPLEMENTED,
  Code.INTERNAL,
  Code.UNAVAILABLE,
  Code.DATA_LOSS,
]);

/**
 * Ends `span` with the call's code: `rpc.response.status_code` (the code's name, 'OK' included);
 * on failure `error.type` (the name too), the exception recorded, and status ERROR (a client span
 * for every failure, a server span for {@link SERVER_ERRORS} only).
 */
export function endSpan(kit: TraceKit, span: OtelApi.Span, code: number, error: unknown, server: boolean): void {
  const name = codeName(code);
  span.setAttribute('rpc.response.status_code', name);
  if (code !== Code.OK) {
    span.setAttribute('error.type', name);
    const message = error instanceof Error ? error.message : typeof error === 'string' ? error : undefined;
    if (error !== undefined) span.recordException(error instanceof Error ? error : { name, message: message ?? name });
    if (!server || SERVER_ERRORS.has(code)) span.setStatus({ code: kit.api.SpanStatusCode.ERROR, message: message ?? name });
  }
  span.end();
}

/**
 * The name (`<service>/<message>`) and start options (kind; `rpc.system`, `rpc.service`,
 * `rpc.method`) of `message`'s spans on one side: built once per message, not per call (the SDK
 * copies what it keeps of them).
 */
export function spanStart(kit: TraceKit, message: string, server: boolean): SpanStart {
  const key = server ? `s:${message}` : `c:${message}`;
  let start = kit.starts.get(key);
  if (start === undefined) {
    const attributes = Object.freeze({ 'rpc.system': 'avrpc', 'rpc.service': kit.service, 'rpc.method': message });
    const kind = server ? kit.api.SpanKind.SERVER : kit.api.SpanKind.CLIENT;
    start = { name: `${kit.service}/${message}`, options: Object.freeze({ kind, attributes }) };
    kit.starts.set(key, start);
  }
  return start;
}

/** The span context of each traced server call, by its `CallContext`: the parent of calls its handler makes without a context manager. */
export const serverSpans = new WeakMap<object, OtelApi.Context>();
