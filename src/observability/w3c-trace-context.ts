/**
 * W3C Trace Context (`traceparent`, `tracestate`) as an OpenTelemetry TextMapPropagator, for tracing
 * when the application registered no global propagator: `@opentelemetry/api` alone (our optional
 * peer) has none, and `@opentelemetry/core`'s W3CTraceContextPropagator is not ours to depend on. It
 * reads and writes exactly what that one does (the tests check both ways against it).
 */
import type * as OtelApi from '@opentelemetry/api';

const TRACEPARENT = 'traceparent';
const TRACESTATE = 'tracestate';
/** version-traceid-parentid-flags; version ff, an all-zero trace id or parent id are invalid (W3C, section 3.2). */
const TRACEPARENT_RE = /^\s?((?!ff)[\da-f]{2})-((?![0]{32})[\da-f]{32})-((?![0]{16})[\da-f]{16})-([\da-f]{2})(-.*)?\s?$/;

/** Parses a `traceparent`; undefined when it is not one (version 00 takes no further fields). */
function parseTraceParent(value: string): OtelApi.SpanContext | undefined {
  const m = TRACEPARENT_RE.exec(value);
  if (m === null) return undefined;
  if (m[1] === '00' && m[5] !== undefined) return undefined;
  return { traceId: m[2]!, spanId: m[3]!, traceFlags: parseInt(m[4]!, 16) };
}

/** The first value of a header a carrier may hold as a list. */
function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** A W3C trace context propagator built on the loaded `@opentelemetry/api`. */
export function w3cTraceContext(api: typeof OtelApi): OtelApi.TextMapPropagator {
  return {
    inject(context, carrier, setter) {
      const sc = api.trace.getSpanContext(context);
      if (sc === undefined || !api.isSpanContextValid(sc)) return;
      setter.set(carrier, TRACEPARENT, `00-${sc.traceId}-${sc.spanId}-0${Number(sc.traceFlags || 0).toString(16)}`);
      const state = sc.traceState?.serialize();
      if (state) setter.set(carrier, TRACESTATE, state);
    },
    extract(context, carrier, getter) {
      const header = first(getter.get(carrier, TRACEPARENT));
      if (header === undefined) return context;
      const sc = parseTraceParent(header);
      if (sc === undefined) return context;
      sc.isRemote = true;
      const state = getter.get(carrier, TRACESTATE);
      if (state !== undefined) sc.traceState = api.createTraceState(Array.isArray(state) ? state.join(',') : state);
      return api.trace.setSpanContext(context, sc);
    },
    fields() {
      return [TRACEPARENT, TRACESTATE];
    },
  };
}
