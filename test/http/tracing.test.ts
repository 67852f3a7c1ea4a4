/**
 * Tracing of HTTP/JSON calls: the W3C `traceparent`/`tracestate` headers an OpenTelemetry HTTP client
 * sends are the call's trace context, so the server's SERVER span continues the caller's trace.
 * Real sockets (fetch), the real OpenTelemetry SDK's in-memory exporter.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Protocol, type Server } from '../../src/index.js';
import { item, loadEcho } from '../helpers/echo-fixture.js';
import { memoryProvider, spansWhen } from '../observability/tracing-fixture.js';

const { provider, exporter } = memoryProvider();
let protocol: Protocol;
let server: Server;
let base: string;
const seen: Array<Readonly<Record<string, string>>> = [];

const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
const parentId = '00f067aa0ba902b7';
const body = JSON.stringify({ item: { ...item(1), blob: '' } });

test.before(async () => {
  protocol = await loadEcho();
  server = createServer({
    protocol,
    http: {},
    tracing: { tracerProvider: provider },
    handlers: { echo: (req: { item: unknown }, ctx) => (seen.push(ctx.metadata), req.item) },
  });
  const { http } = await server.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${http!.port}`;
});

test.after(async () => {
  await server.close({ graceMs: 100 });
});

test.before.each(() => {
  exporter.reset();
  seen.length = 0;
});

async function post(headers: Record<string, string>): Promise<void> {
  const res = await fetch(`${base}/avrpc.echo.Echo/echo`, { method: 'POST', body, headers });
  assert.is(res.status, 200, await res.clone().text());
  await res.text();
}

test('a traceparent header: the SERVER span is a child of the caller span, tracestate kept', async () => {
  await post({ traceparent: `00-${traceId}-${parentId}-01`, tracestate: 'vendor=x' });
  const span = await spansWhen(exporter, (spans) => spans.find((s) => s.name === 'avrpc.echo.Echo/echo'));
  assert.is(span.spanContext().traceId, traceId);
  assert.is(span.parentSpanContext?.spanId, parentId);
  assert.is(span.spanContext().traceState?.get('vendor'), 'x');
  assert.is(seen[0]?.traceparent, `00-${traceId}-${parentId}-01`);
});

test('without one the span starts a trace; avrpc-md-traceparent wins over the plain header', async () => {
  await post({});
  const root = await spansWhen(exporter, (spans) => spans.find((s) => s.name === 'avrpc.echo.Echo/echo'));
  assert.is(root.parentSpanContext, undefined);
  assert.is.not(root.spanContext().traceId, traceId);
  exporter.reset();
  const other = '0af7651916cd43dd8448eb211c80319c';
  await post({ traceparent: `00-${traceId}-${parentId}-01`, 'avrpc-md-traceparent': `00-${other}-${parentId}-01` });
  const span = await spansWhen(exporter, (spans) => spans.find((s) => s.name === 'avrpc.echo.Echo/echo'));
  assert.is(span.spanContext().traceId, other);
});

test('other headers stay out of the metadata', async () => {
  await post({ 'x-other': '1', traceparent: `00-${traceId}-${parentId}-01` });
  assert.equal(Object.keys(seen[0]!).sort(), ['traceparent']);
});

test.run();
