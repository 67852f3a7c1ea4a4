/**
 * Tracing with nothing registered globally: no context manager, no propagator, the provider passed as
 * `tracing: { tracerProvider }`. Nested calls still continue the handler's trace (through avrpc's call
 * scope), the metadata still carries W3C trace context (the built-in propagator), which is checked
 * both ways against the SDK's own W3CTraceContextPropagator.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as api from '@opentelemetry/api';
import {
  ROOT_CONTEXT,
  SpanKind,
  context,
  createTraceState,
  defaultTextMapGetter,
  defaultTextMapSetter,
  propagation,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { w3cTraceContext } from '../../src/observability/w3c-trace-context.js';
import { chain, memoryProvider, spansWhen, type Chain } from './tracing-fixture.js';

const test = suite('OpenTelemetry tracing (explicit provider, no context manager, no global propagator)');
const { provider, exporter } = memoryProvider();
const global = memoryProvider();
// A global provider that must stay unused: the option names another.
trace.setGlobalTracerProvider(global.provider);

let c: Chain;
test.before(async () => {
  c = await chain({ tracerProvider: provider });
});
test.after(async () => {
  await c.close();
});
test.before.each(() => {
  exporter.reset();
  global.exporter.reset();
});

test('nothing global is set up: no context manager, no propagator', () => {
  assert.equal(propagation.fields(), []);
  const span = trace.getTracer('t').startSpan('probe');
  context.with(trace.setSpan(ROOT_CONTEXT, span), () => assert.is(trace.getSpan(context.active()), undefined));
  span.end();
});

test('a call inside a handler is a child of its server span through the call scope', async () => {
  assert.is(await c.entry.call('nested', { name: 'dee' }), 'hello dee');
  const spans = await spansWhen(exporter, (s) => (s.length >= 4 ? s : undefined));
  const byKind = (suffix: string, kind: SpanKind) => spans.find((s) => s.name.endsWith(suffix) && s.kind === kind)!;
  const entryClient = byKind('/nested', SpanKind.CLIENT);
  const frontServer = byKind('/nested', SpanKind.SERVER);
  const innerClient = byKind('/hello', SpanKind.CLIENT);
  const backServer = byKind('/hello', SpanKind.SERVER);
  assert.is(frontServer.parentSpanContext?.spanId, entryClient.spanContext().spanId);
  assert.is(innerClient.parentSpanContext?.spanId, frontServer.spanContext().spanId);
  assert.is(backServer.parentSpanContext?.spanId, innerClient.spanContext().spanId);
  assert.is(new Set(spans.map((s) => s.spanContext().traceId)).size, 1);
  assert.equal(global.exporter.getFinishedSpans(), [], 'the global provider got nothing');
  // The built-in propagator wrote what the SDK's W3C propagator reads.
  const seen = c.seen.get('back.hello')!;
  const read = trace.getSpanContext(new W3CTraceContextPropagator().extract(ROOT_CONTEXT, seen, defaultTextMapGetter));
  assert.is(read?.spanId, innerClient.spanContext().spanId);
  assert.is(read?.traceId, innerClient.spanContext().traceId);
});

test('a server stream producer calling out: children of the stream span through the call scope', async () => {
  const got: string[] = [];
  for await (const s of c.entry.serverStream<string>('count', { n: 2, nested: true })) got.push(s);
  assert.equal(got, ['hello n0', 'hello n1']);
  const spans = await spansWhen(exporter, (s) => (s.filter((x) => x.name.endsWith('/hello')).length >= 4 && s.length >= 6 ? s : undefined));
  const streamServer = spans.find((s) => s.name.endsWith('/count') && s.kind === SpanKind.SERVER)!;
  const inner = spans.filter((s) => s.name.endsWith('/hello') && s.kind === SpanKind.CLIENT);
  assert.is(inner.length, 2);
  for (const s of inner) assert.is(s.parentSpanContext?.spanId, streamServer.spanContext().spanId);
});

const ours = w3cTraceContext(api);
const sdk = new W3CTraceContextPropagator();

test('built-in W3C propagator: injects what the SDK injects', () => {
  const ctx = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902b7',
    traceFlags: 1,
    traceState: createTraceState('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'),
  });
  for (const flags of [0, 1]) {
    const c1 = trace.setSpanContext(ctx, { ...trace.getSpanContext(ctx)!, traceFlags: flags });
    const a: Record<string, string> = {};
    const b: Record<string, string> = {};
    ours.inject(c1, a, defaultTextMapSetter);
    sdk.inject(c1, b, defaultTextMapSetter);
    assert.equal(a, b);
  }
  const none: Record<string, string> = {};
  ours.inject(ROOT_CONTEXT, none, defaultTextMapSetter);
  assert.equal(none, {}, 'no span, nothing injected');
  assert.equal(ours.fields(), sdk.fields());
});

test('built-in W3C propagator: extracts what the SDK extracts, valid or not', () => {
  const cases: Record<string, string>[] = [
    { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE' },
    { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' },
    { traceparent: '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future' },
    { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra' },
    { traceparent: 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
    { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01' },
    { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01' },
    { traceparent: '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01' },
    { traceparent: 'garbage' },
    { tracestate: 'a=b' },
  ];
  for (const carrier of cases) {
    const a = trace.getSpanContext(ours.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter));
    const b = trace.getSpanContext(sdk.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter));
    assert.is(a === undefined, b === undefined, JSON.stringify(carrier));
    if (a === undefined || b === undefined) continue;
    assert.equal({ ...a, traceState: a.traceState?.serialize() }, { ...b, traceState: b.traceState?.serialize() }, JSON.stringify(carrier));
  }
});

test.run();
