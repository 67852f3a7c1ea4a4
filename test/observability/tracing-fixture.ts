/**
 * Shared parts of the tracing tests: the real OpenTelemetry SDK's in-memory exporter, a protocol with
 * every kind of call, and a two-server chain (entry client -> front server -> back server) whose
 * front handlers call the back from inside themselves.
 */
import { InMemorySpanExporter, SimpleSpanProcessor, BasicTracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Code, RpcError, createClient, createServer, parseProtocol, type CallContext, type Client, type Server } from '../../src/index.js';
import type { TracingOptions } from '../../src/observability/tracing.js';
import { trace } from '@opentelemetry/api';

export const protocol = parseProtocol(`
@namespace("test.trace")
protocol Traced {
  error Missing { string what; }
  string hello(string name) throws Missing;
  string nested(string name);
  string slow(string name);
  @stream("server") string count(int n, boolean nested);
  @stream("client") int sum(int n);
  @stream("bidi") string chat(string s);
}`);

/** An SDK provider exporting to memory, synchronously at each span's end. */
export function memoryProvider(): { provider: BasicTracerProvider; exporter: InMemorySpanExporter } {
  const exporter = new InMemorySpanExporter();
  return { provider: new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }), exporter };
}

/** Waits (a bounded poll, not a timing assertion) until `pick` finds what it wants among the finished spans. */
export async function spansWhen<T>(exporter: InMemorySpanExporter, pick: (spans: ReadableSpan[]) => T | undefined): Promise<T> {
  for (let i = 0; i < 1000; i++) {
    const found = pick(exporter.getFinishedSpans());
    if (found !== undefined) return found;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(
    `expected spans never came; finished: ${exporter
      .getFinishedSpans()
      .map((s) => s.name)
      .join(', ')}`,
  );
}

/** `count` spans named `name`, once they are all finished. */
export function named(exporter: InMemorySpanExporter, name: string, count = 1): Promise<ReadableSpan[]> {
  return spansWhen(exporter, (spans) => {
    const hits = spans.filter((s) => s.name === name);
    return hits.length >= count ? hits : undefined;
  });
}

/** What the handlers saw of the incoming metadata, by message. */
export type SeenMetadata = Map<string, Readonly<Record<string, string>>>;

export interface Chain {
  entry: Client;
  back: Server;
  front: Server;
  frontClient: Client;
  seen: SeenMetadata;
  /** The active span's id in handlers (a context manager registered), by message. */
  active: Map<string, string | undefined>;
  close(): Promise<void>;
}

/** The chain; `tracing` is each side's option. */
export async function chain(tracing: boolean | TracingOptions): Promise<Chain> {
  const seen: SeenMetadata = new Map();
  const active = new Map<string, string | undefined>();
  const back = createServer({
    protocol,
    tracing,
    handlers: {
      hello: (req: { name: string }, ctx: CallContext) => {
        seen.set('back.hello', ctx.metadata);
        if (req.name === 'missing') throw { what: 'nobody' };
        if (req.name === 'notfound') throw new RpcError(Code.NOT_FOUND, 'no such name');
        if (req.name === 'crash') throw new Error('handler crashed');
        return `hello ${req.name}`;
      },
    },
  });
  const backPort = (await back.listen({ host: '127.0.0.1', port: 0 })).port;
  const frontClient = createClient({ protocol, endpoints: [`127.0.0.1:${backPort}`], tracing });
  const front = createServer({
    protocol,
    tracing,
    handlers: {
      hello: (req: { name: string }, ctx: CallContext) => {
        seen.set('front.hello', ctx.metadata);
        active.set('front.hello', trace.getActiveSpan()?.spanContext().spanId);
        if (req.name === 'notfound') throw new RpcError(Code.NOT_FOUND, 'no such name');
        if (req.name === 'crash') throw new Error('handler crashed');
        return `hello ${req.name}`;
      },
      // Awaits before calling on: the context must survive an await.
      nested: async (req: { name: string }) => {
        await new Promise((r) => setImmediate(r));
        return frontClient.call<string>('hello', { name: req.name });
      },
      // Answers only when cancelled (deadline or client): the span must say so.
      slow: (_req: unknown, ctx: CallContext) =>
        new Promise<string>((resolve) => ctx.signal.addEventListener('abort', () => resolve('too late'), { once: true })),
      count: async function* (req: { n: number; nested: boolean }) {
        for (let i = 0; i < req.n; i++) {
          // A call made from the producer, between elements: a child of the stream's span too.
          yield req.nested ? await frontClient.call<string>('hello', { name: `n${i}` }) : `e${i}`;
        }
      },
      sum: async (requests: AsyncIterable<{ n: number }>) => {
        let total = 0;
        for await (const r of requests) total += r.n;
        return total;
      },
      chat: async function* (requests: AsyncIterable<{ s: string }>) {
        for await (const r of requests) yield r.s.toUpperCase();
      },
    },
  });
  const frontPort = (await front.listen({ host: '127.0.0.1', port: 0 })).port;
  const entry = createClient({ protocol, endpoints: [`127.0.0.1:${frontPort}`], tracing });
  return {
    entry,
    back,
    front,
    frontClient,
    seen,
    active,
    async close() {
      await Promise.all([front.close({ graceMs: 200 }), back.close({ graceMs: 200 })]);
      await Promise.all([entry.close(), frontClient.close()]);
    },
  };
}
