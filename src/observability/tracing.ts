/**
 * OpenTelemetry tracing of calls (option `tracing` of `createClient` and `createServer`): a CLIENT
 * span per call or stream, a SERVER span per handled call or stream, W3C `traceparent`/`tracestate`
 * in the call metadata, and the handler run inside its span's context, so that its own calls are its
 * children. Installed as the first interceptor on either side, so without the option nothing of it
 * runs. `@opentelemetry/api` is an optional peer dependency, imported only when tracing is asked for.
 */
import { invalid, knownOptions } from '../util/validate.js';
import { buildKit, kits } from './tracing-kit.js';

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
  propagator?: {
    inject(context: unknown, carrier: unknown, setter: unknown): void;
    extract(context: unknown, carrier: unknown, getter: unknown): unknown;
    fields(): string[];
  };
}

const KNOWN_TRACING_OPTIONS = { tracerProvider: true, propagator: true } as const satisfies Record<keyof TracingOptions, true>;

/**
 * The tracing of one client or server: starts loading the API on creation (not per call); its kit
 * (tracer, propagator) is in `kits` once loaded, and {@link ready} waits for it.
 */
export class Tracing {
  private pending: Promise<void> | undefined;

  constructor(
    private readonly options: TracingOptions,
    private readonly service: string,
  ) {
    // Started now so that the first call usually finds it loaded; a failure is reported by ready().
    this.ready().catch(() => undefined);
  }

  /** Resolves once `@opentelemetry/api` is loaded; FAILED_PRECONDITION when it is not installed. */
  ready(): Promise<void> {
    if (kits.has(this)) return Promise.resolve();
    this.pending ??= buildKit(this.options, this.service).then(
      (kit) => void kits.set(this, kit),
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
