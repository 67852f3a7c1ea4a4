/**
 * OpenTelemetry tracing of calls (option `tracing` of `createClient` and `createServer`): a CLIENT
 * span per call or stream, a SERVER span per handled call or stream, W3C `traceparent`/`tracestate`
 * in the call metadata, and the handler run inside its span's context, so that its own calls are its
 * children. Installed as the first interceptor on either side, so without the option nothing of it
 * runs. `@opentelemetry/api` is an optional peer dependency, imported only when tracing is asked for.
 */
import type * as OtelApi from '@opentelemetry/api';
import { Code, codeName } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { invalid, knownOptions } from '../util/validate.js';
import { w3cTraceContext } from './w3c-trace-context.js';

type Api = typeof OtelApi;

/**
 * Where spans go and how their context travels (option `tracing`, as an object). The types are
 * structural, so this module's types do not need `@opentelemetry/api`: pass the SDK's objects.
 */
export interface TracingOptions {
  /** An OpenTelemetry TracerProvider. Default: the global one (`trace.getTracerProvider()`), as the SDK registers it. */
  tracerProvider?: { getTracer(name: string, version?: string): unknown };
  /**
   * An OpenTelemetry TextMapPropagator for the call metadata. Default: the global one when one is
   * registered (NodeSDK registers W3C trace context and baggage), else W3C trace context.
   */
  propagator?: { inject(context: unknown, carrier: unknown, setter: unknown): void; extract(context: unknown, carrier: unknown, getter: unknown): unknown; fields(): string[] };
}

const KNOWN_TRACING_OPTIONS = { tracerProvider: true, propagator: true } as const satisfies Record<keyof TracingOptions, true>;

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
}

/**
 * The tracing of one client or server: loads the API on creation (not per call) and builds the
 * tracer and propagator once it is there. `kit` is undefined until then; {@link ready} waits for it.
 */
export class Tracing {
  kit: TraceKit | undefined = undefined;
  private pending: Promise<TraceKit> | undefined;

  constructor(
    private readonly options: TracingOptions,
    private readonly service: string,
  ) {
    // Started now so that the first call usually finds it loaded; a failure is reported by ready().
    this.ready().catch(() => undefined);
  }

  /** Resolves with the kit once `@opentelemetry/api` is loaded; FAILED_PRECONDITION when it is not installed. */
  ready(): Promise<TraceKit> {
    if (this.kit !== undefined) return Promise.resolve(this.kit);
    this.pending ??= loadApi().then(
      (api) => {
        const provider = (this.options.tracerProvider as OtelApi.TracerProvider | undefined) ?? api.trace.getTracerProvider();
        const global = api.propagation.fields().length > 0 ? api.propagation : undefined;
        const propagator = (this.options.propagator as OtelApi.TextMapPropagator | undefined) ?? global ?? w3cTraceContext(api);
        return (this.kit = { api, tracer: provider.getTracer(SCOPE, SCOPE_VERSION), propagator, service: this.service });
      },
      (err: unknown) => {
        this.pending = undefined;
        throw err;
      },
    );
    return this.pending;
  }
}

/** Checks option `tracing` (`at` names it): undefined or false is off; true or an object is on. */
export function resolveTracing(at: string, value: unknown, service: string): Tracing | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return new Tracing({}, service);
  if (value === null || typeof value !== 'object') invalid(at, 'must be a boolean or an object');
  knownOptions(at, value, KNOWN_TRACING_OPTIONS);
  const o = value as TracingOptions;
  if (o.tracerProvider !== undefined && typeof (o.tracerProvider as { getTracer?: unknown })?.getTracer !== 'function')
    invalid(`${at}.tracerProvider`, 'must be an OpenTelemetry TracerProvider (with getTracer)');
  const p = o.propagator as Record<string, unknown> | undefined;
  if (p !== undefined && (typeof p?.inject !== 'function' || typeof p.extract !== 'function' || typeof p.fields !== 'function'))
    invalid(`${at}.propagator`, 'must be an OpenTelemetry TextMapPropagator (inject, extract, fields)');
  return new Tracing(o, service);
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

/** Attributes every span of a call starts with (`rpc.system`, `rpc.service`, `rpc.method`). */
export function rpcAttributes(kit: TraceKit, method: string): OtelApi.Attributes {
  return { 'rpc.system': 'avrpc', 'rpc.service': kit.service, 'rpc.method': method };
}

/** The span context of each traced server call, by its `CallContext`: the parent of calls its handler makes without a context manager. */
export const serverSpans = new WeakMap<object, OtelApi.Context>();
