/**
 * Tracing with the real OpenTelemetry SDK registered globally, as an application does: a tracer
 * provider exporting to memory, the AsyncLocalStorage context manager and the W3C propagator, and
 * `tracing: true` on every client and server. Real servers on loopback.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, createTraceState, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  AlwaysOffSampler,
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { Code, RpcError, createClient, createServer } from '../../src/index.js';
import { codeOf } from '../helpers/code-of.js';
import { chain, memoryProvider, named, protocol, spansWhen, type Chain } from './tracing-fixture.js';

const test = suite('OpenTelemetry tracing (global SDK, context manager)');
const { provider, exporter } = memoryProvider();
trace.setGlobalTracerProvider(provider);
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
propagation.setGlobalPropagator(new W3CTraceContextPropagator());

let c: Chain;
test.before(async () => {
  c = await chain(true);
});
test.after(async () => {
  await c.close();
});
test.before.each(() => exporter.reset());

const parentId = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;
const HELLO = 'test.trace.Traced/hello';

test('a call: a CLIENT span and a SERVER span of one trace, with the RPC attributes', async () => {
  assert.is(await c.entry.call('hello', { name: 'ann' }), 'hello ann');
  const [client] = await spansWhen(exporter, (s) => {
    const hits = s.filter((x) => x.name === HELLO);
    return hits.length === 2 ? [hits.find((x) => x.kind === SpanKind.CLIENT)!] : undefined;
  });
  const server = exporter.getFinishedSpans().find((x) => x.name === HELLO && x.kind === SpanKind.SERVER)!;
  assert.ok(client && server);
  assert.is(server.spanContext().traceId, client.spanContext().traceId);
  assert.is(parentId(server), client.spanContext().spanId);
  assert.is(server.parentSpanContext?.isRemote, true);
  assert.is(parentId(client), undefined, 'a call outside any span starts a trace');
  for (const s of [client, server]) {
    assert.is(s.attributes['rpc.system'], 'avrpc');
    assert.is(s.attributes['rpc.service'], 'test.trace.Traced');
    assert.is(s.attributes['rpc.method'], 'hello');
    assert.is(s.attributes['rpc.response.status_code'], 'OK');
    assert.is(s.attributes['error.type'], undefined);
    assert.is(s.status.code, SpanStatusCode.UNSET);
    assert.is(s.instrumentationScope.name, 'avrpc');
  }
  assert.is(c.active.get('front.hello'), server.spanContext().spanId, 'the handler runs in its span');
  assert.is(server.attributes['network.peer.address'], '127.0.0.1');
  assert.type(server.attributes['network.peer.port'], 'number');
});

test('the metadata on the wire carries traceparent and tracestate of the client span', async () => {
  // A remote parent with a tracestate, as an upstream service would have sent it.
  const upstream = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: 1,
    isRemote: true,
    traceState: createTraceState('vendor=abc,other=1'),
  });
  await context.with(upstream, () => c.entry.call('hello', { name: 'bob' }, { metadata: { user: 'kept' } }));
  const [client] = await spansWhen(exporter, (s) => {
    const hit = s.find((x) => x.name === HELLO && x.kind === SpanKind.CLIENT);
    return hit === undefined ? undefined : [hit];
  });
  const seen = c.seen.get('front.hello')!;
  assert.is(seen.traceparent, `00-0af7651916cd43dd8448eb211c80319c-${client!.spanContext().spanId}-01`);
  assert.is(seen.tracestate, 'vendor=abc,other=1');
  assert.is(seen.user, 'kept', "the caller's own metadata goes too");
  assert.is(parentId(client!), 'b7ad6b7169203331');
});

test('a call made inside a handler is a child of its server span (nested across two servers)', async () => {
  assert.is(await c.entry.call('nested', { name: 'cy' }), 'hello cy');
  const spans = await spansWhen(exporter, (s) => (s.length >= 4 ? s : undefined));
  const entryClient = spans.find((s) => s.name.endsWith('/nested') && s.kind === SpanKind.CLIENT)!;
  const frontServer = spans.find((s) => s.name.endsWith('/nested') && s.kind === SpanKind.SERVER)!;
  const innerClient = spans.find((s) => s.name === HELLO && s.kind === SpanKind.CLIENT)!;
  const backServer = spans.find((s) => s.name === HELLO && s.kind === SpanKind.SERVER)!;
  assert.is(parentId(frontServer), entryClient.spanContext().spanId);
  assert.is(parentId(innerClient), frontServer.spanContext().spanId);
  assert.is(parentId(backServer), innerClient.spanContext().spanId);
  const traces = new Set(spans.map((s) => s.spanContext().traceId));
  assert.is(traces.size, 1, 'one trace end to end');
});

test('an RpcError: its code on both spans; ERROR on the client, the server span unset for a caller error', async () => {
  assert.is(await codeOf(c.entry.call('hello', { name: 'notfound' })), Code.NOT_FOUND);
  const spans = await named(exporter, HELLO, 2);
  const client = spans.find((s) => s.kind === SpanKind.CLIENT)!;
  const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
  for (const s of [client, server]) {
    assert.is(s.attributes['rpc.response.status_code'], 'NOT_FOUND');
    assert.is(s.attributes['error.type'], 'NOT_FOUND');
    assert.ok(
      s.events.some((e) => e.name === 'exception' && e.attributes?.['exception.message'] === 'no such name'),
      'exception recorded',
    );
  }
  assert.is(client.status.code, SpanStatusCode.ERROR);
  assert.is(client.status.message, 'no such name');
  assert.is(server.status.code, SpanStatusCode.UNSET, 'NOT_FOUND is not the server failing');
});

test('a handler that crashes: INTERNAL, ERROR on both spans', async () => {
  assert.is(await codeOf(c.entry.call('hello', { name: 'crash' })), Code.INTERNAL);
  const spans = await named(exporter, HELLO, 2);
  for (const s of spans) {
    assert.is(s.attributes['rpc.response.status_code'], 'INTERNAL');
    assert.is(s.status.code, SpanStatusCode.ERROR);
  }
  const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
  assert.ok(server.events.some((e) => e.name === 'exception' && e.attributes?.['exception.message'] === 'handler crashed'));
});

test('a declared error through a nested call: UNKNOWN (declared), the error recorded on each span', async () => {
  assert.is(await codeOf(c.entry.call('nested', { name: 'missing' })), Code.UNKNOWN);
  const spans = await spansWhen(exporter, (s) => (s.length >= 4 ? s : undefined));
  const back = spans.find((s) => s.name === HELLO && s.kind === SpanKind.SERVER)!;
  const inner = spans.find((s) => s.name === HELLO && s.kind === SpanKind.CLIENT)!;
  assert.is(back.attributes['rpc.response.status_code'], 'UNKNOWN');
  assert.is(inner.attributes['rpc.response.status_code'], 'UNKNOWN');
  assert.is(back.status.code, SpanStatusCode.ERROR);
  assert.ok(back.events.some((e) => e.name === 'exception'));
});

test('a deadline: DEADLINE_EXCEEDED on the client span; the server span ends cancelled', async () => {
  assert.is(await codeOf(c.entry.call('slow', { name: 'x' }, { timeoutMs: 50 })), Code.DEADLINE_EXCEEDED);
  const spans = await named(exporter, 'test.trace.Traced/slow', 2);
  assert.is(spans.find((s) => s.kind === SpanKind.CLIENT)!.attributes['rpc.response.status_code'], 'DEADLINE_EXCEEDED');
  // The server's own deadline timer and the client's CANCEL at its deadline race: either ends the call.
  const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
  assert.ok(['DEADLINE_EXCEEDED', 'CANCELLED'].includes(server.attributes['rpc.response.status_code'] as string), 'server span cancelled');
});

test('a server stream: one span each side, ended with the stream; calls from its producer are children', async () => {
  const got: string[] = [];
  for await (const s of c.entry.serverStream<string>('count', { n: 3, nested: true })) got.push(s);
  assert.equal(got, ['hello n0', 'hello n1', 'hello n2']);
  const [client, server] = await spansWhen(exporter, (s) => {
    const cl = s.find((x) => x.name.endsWith('/count') && x.kind === SpanKind.CLIENT);
    const sv = s.find((x) => x.name.endsWith('/count') && x.kind === SpanKind.SERVER);
    return cl && sv ? [cl, sv] : undefined;
  });
  assert.is(client!.attributes['rpc.response.status_code'], 'OK');
  assert.is(server!.attributes['rpc.response.status_code'], 'OK');
  assert.is(parentId(server!), client!.spanContext().spanId);
  const inner = exporter.getFinishedSpans().filter((s) => s.name === HELLO && s.kind === SpanKind.CLIENT);
  assert.is(inner.length, 3);
  for (const s of inner) assert.is(parentId(s), server!.spanContext().spanId);
});

test('a bidi stream the consumer breaks off: CANCELLED on both spans', async () => {
  async function* words() {
    yield { s: 'a' };
    yield { s: 'b' };
    await new Promise(() => {}); // never ends: only the break ends the stream
  }
  for await (const s of c.entry.bidiStream<string>('chat', words())) {
    assert.is(s, 'A');
    break;
  }
  const spans = await named(exporter, 'test.trace.Traced/chat', 2);
  for (const s of spans) assert.is(s.attributes['rpc.response.status_code'], 'CANCELLED', `kind ${s.kind}`);
  assert.is(spans.find((s) => s.kind === SpanKind.CLIENT)!.status.code, SpanStatusCode.ERROR);
});

test('a client stream: spans end with its response', async () => {
  assert.is(await c.entry.clientStream('sum', [{ n: 1 }, { n: 2 }, { n: 3 }]), 6);
  const spans = await named(exporter, 'test.trace.Traced/sum', 2);
  for (const s of spans) assert.is(s.attributes['rpc.response.status_code'], 'OK');
});

test('a stream refused before it starts still ends its span', async () => {
  const stream = c.entry.serverStream('hello', { name: 'x' }); // not a stream: refused locally
  const [span] = await named(exporter, HELLO);
  assert.is(span!.status.code, SpanStatusCode.ERROR);
  let code: number | undefined;
  try {
    for await (const _ of stream) void _;
  } catch (err) {
    code = (err as RpcError).code;
  }
  assert.is(code, Code.INVALID_ARGUMENT);
});

test('a caller onTrailer still runs, and hears the error of a failed stream', async () => {
  let heard: unknown = 'not called';
  const stream = c.entry.bidiStream('chat', [{ s: 'x' }], {
    onTrailer: (_t, error) => {
      heard = error;
    },
  });
  for await (const _ of stream) void _;
  assert.is(heard, undefined, 'no error on success');
  let failed: RpcError | undefined;
  await codeOf(
    c.entry.call(
      'hello',
      { name: 'notfound' },
      {
        onTrailer: (_t, error) => {
          failed = error;
        },
      },
    ),
  );
  assert.is(failed?.code, Code.NOT_FOUND);
});

test('without the option nothing is traced, even with a provider registered', async () => {
  let seen: Readonly<Record<string, string>> | undefined;
  const server = createServer({ protocol, handlers: { hello: (_r: unknown, ctx) => ((seen = ctx.metadata), 'hi') } });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  try {
    await trace.getTracer('test').startActiveSpan('outer', async (outer) => {
      await client.call('hello', { name: 'z' });
      outer.end();
    });
    assert.equal(
      exporter.getFinishedSpans().map((s) => s.name),
      ['outer'],
    );
    assert.is(seen?.traceparent, undefined, 'no traceparent sent');
  } finally {
    await client.close();
    await server.close({ graceMs: 100 });
  }
});

test('a sampled-out trace records no span but still sends its context (flags 00)', async () => {
  const unsampledExporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({
    sampler: new AlwaysOffSampler(),
    spanProcessors: [new SimpleSpanProcessor(unsampledExporter)],
  });
  let seen: Readonly<Record<string, string>> | undefined;
  const server = createServer({
    protocol,
    tracing: { tracerProvider },
    handlers: { hello: (_r: unknown, ctx) => ((seen = ctx.metadata), 'hi') },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], tracing: { tracerProvider } });
  try {
    assert.is(await client.call('hello', { name: 'u' }), 'hi');
    assert.match(seen?.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    assert.equal(unsampledExporter.getFinishedSpans(), []);
    assert.equal(exporter.getFinishedSpans(), [], 'nothing went to the global provider either');
  } finally {
    await client.close();
    await server.close({ graceMs: 100 });
  }
});

test('bad call options are refused as without tracing (not rebuilt into good ones)', async () => {
  for (const options of [{ metadata: 'abc' }, { metadata: null }, { metadata: ['x'] }, { onTrailer: 'x' }]) {
    assert.is(await codeOf(c.entry.call('hello', { name: 'x' }, options as never)), Code.INVALID_ARGUMENT, JSON.stringify(options));
  }
});

test('bad tracing options are refused INVALID_ARGUMENT', () => {
  for (const tracing of ['yes', 1, null, { tracerProvider: {} }, { propagator: { inject() {} } }, { sampler: 1 }]) {
    for (const make of [
      () => createClient({ protocol, endpoints: ['127.0.0.1:1'], tracing: tracing as never }),
      () => createServer({ protocol, handlers: {}, tracing: tracing as never }),
    ]) {
      try {
        make();
        assert.unreachable(`accepted ${JSON.stringify(tracing)}`);
      } catch (err) {
        assert.instance(err, RpcError);
        assert.is((err as RpcError).code, Code.INVALID_ARGUMENT);
        assert.match((err as RpcError).message, /tracing/);
      }
    }
  }
});

test.run();
