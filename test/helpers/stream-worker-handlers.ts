/**
 * Stream handlers for the worker-offload stream tests, loaded in worker threads (`workers.module`), and
 * their protocol (`streamIdl`, and `streamIdlV0`, an older client's view of it for schema resolution).
 * Handlers put their `threadId` in a header or trailer (0 would be the main thread) and report what
 * they do on a BroadcastChannel, which reaches the test from any thread, in the order they did it.
 */
import { BroadcastChannel, threadId } from 'node:worker_threads';
import { Code, RpcError, type CallContext } from '../../src/index.js';

/** Server side. `tag` names the stream in reports. */
export const streamIdl = `
@namespace("avrpc.wstream")
protocol WStream {
  record Item { long id; string name; string note = "none"; }
  record Summary { long count; string names; int threadId; }
  error StreamError { string reason; long after; }
  @stream("server") Item watch(long from, int count, int failAfter, string tag) throws StreamError;
  @stream("client") Summary upload(Item item) throws StreamError;
  @stream("bidi") Item chat(Item item) throws StreamError;
  Item echo(Item item);
}`;

/** An older client: its Item has no `note` (the worker resolves it to the default). */
export const streamIdlV0 = `
@namespace("avrpc.wstream")
protocol WStream {
  record Item { long id; string name; }
  record Summary { long count; string names; int threadId; }
  error StreamError { string reason; long after; }
  @stream("server") Item watch(long from, int count, int failAfter, string tag) throws StreamError;
  @stream("client") Summary upload(Item item) throws StreamError;
  @stream("bidi") Item chat(Item item) throws StreamError;
  Item echo(Item item);
}`;

/** The BroadcastChannel name handlers report on. */
export const STREAM_REPORTS = 'avrpc-offload-stream-test';

/** One report: what a handler did (`produced` n, `took` n, `abort` code, `finally`, `start`). */
export interface StreamReport {
  tag: string;
  event: 'start' | 'produced' | 'took' | 'abort' | 'finally';
  n: number;
  threadId: number;
}

let channel: BroadcastChannel | undefined;

function report(tag: string, event: StreamReport['event'], n = 0): void {
  if (channel === undefined) {
    // One channel for the module: its messages arrive in the order they were sent. Unref'd: it must
    // not keep a worker alive.
    channel = new BroadcastChannel(STREAM_REPORTS);
    (channel as unknown as { unref(): void }).unref();
  }
  channel.postMessage({ tag, event, n, threadId } satisfies StreamReport);
}

function onAbort(tag: string, ctx: CallContext): void {
  ctx.signal.addEventListener('abort', () => report(tag, 'abort', (ctx.signal.reason as RpcError).code), { once: true });
}

interface Item {
  id: number;
  name: string;
  note: string;
}

/**
 * `count` Items from `from`; fails with StreamError after `failAfter` (if >= 0). Tag `stubborn`: after
 * its first Item it waits forever, ignoring cancellation; tag `exit`: its worker thread exits after
 * the second Item.
 */
export async function* watch(req: { from: number; count: number; failAfter: number; tag: string }, ctx: CallContext) {
  report(req.tag, 'start');
  onAbort(req.tag, ctx);
  ctx.responseHeader.thread = String(threadId);
  try {
    for (let i = 0; i < req.count; i++) {
      if (i === req.failAfter) {
        ctx.responseTrailer.thread = String(threadId);
        throw new RpcError(Code.ABORTED, 'stopped', { details: { reason: 'asked', after: i } });
      }
      if (req.tag === 'stubborn' && i === 1) await new Promise(() => undefined);
      if (req.tag === 'exit' && i === 2) process.exit(3);
      report(req.tag, 'produced', i + 1);
      yield { id: req.from + i, name: `item ${req.from + i}`, note: req.tag };
    }
    ctx.responseTrailer.thread = String(threadId);
    ctx.responseTrailer.produced = String(req.count);
  } finally {
    report(req.tag, 'finally');
  }
}

/** Counts the Items; fails with StreamError at an Item named `fail`. Its header is sent before it reads. */
export async function upload(requests: AsyncIterable<{ item: Item }>, ctx: CallContext) {
  onAbort('upload', ctx);
  ctx.responseHeader.thread = String(threadId);
  ctx.sendHeader();
  const names: string[] = [];
  try {
    for await (const r of requests) {
      if (r.item.name === 'fail') throw new RpcError(Code.ABORTED, 'failed', { details: { reason: 'fail', after: names.length } });
      names.push(`${r.item.name}:${r.item.note}`);
      report('upload', 'took', names.length);
    }
  } finally {
    report('upload', 'finally');
  }
  ctx.responseTrailer.counted = String(names.length);
  return { count: names.length, names: names.join(','), threadId };
}

/** A unary call beside the streams: returns its Item, with the thread in a header and a trailer. */
export function echo(req: { item: Item }, ctx: CallContext): Item {
  ctx.responseHeader.thread = String(threadId);
  ctx.responseTrailer.thread = String(threadId);
  return req.item;
}

/** Answers each Item as it arrives (its name with `!`, its note as resolved here). */
export async function* chat(requests: AsyncIterable<{ item: Item }>, ctx: CallContext) {
  onAbort('chat', ctx);
  let n = 0;
  try {
    for await (const r of requests) {
      if (r.item.name === 'fail') throw new RpcError(Code.ABORTED, 'failed', { details: { reason: 'fail', after: n } });
      n++;
      report('chat', 'took', n);
      yield { id: r.item.id, name: `${r.item.name}!`, note: r.item.note };
    }
    ctx.responseTrailer.thread = String(threadId);
  } finally {
    report('chat', 'finally');
  }
}
