/**
 * The two directions of a gRPC stream call, between grpc-js and the call executor: request elements
 * read under backpressure and the memory budget, responses written under grpc-js's, and the stream's
 * idle check (`streamIdleTimeoutMs`, as on the avrpc port: no element either way for a whole period
 * cancels the call).
 */
import type * as grpc from '@grpc/grpc-js';
import type { MessageDef } from '../../codec/protocol.js';
import { ElementQueue } from '../../connection/element-queue.js';
import { DEFAULT_STREAM_WINDOW } from '../../connection/large-messages.js';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import type { CallContext } from '../call-context.js';
import { executeStream, type CallOutcome, type ElementSink } from '../call-executor.js';
import type { ServerShared } from '../server-shared.js';

type Readable = grpc.ServerReadableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>;
type Writable = grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>;

/**
 * Elements either way, for the idle check: after a whole period of `ms` with none, the call is
 * cancelled CANCELLED (between one and two periods after the last one; a count, no clock per element).
 */
export class StreamActivity {
  /** Elements so far, either way. */
  count = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(ms: number, ctx: CallContext) {
    if (ms <= 0) return;
    let seen = 0;
    const check = (): void => {
      if (this.count === seen) return ctx.cancel(new RpcError(Code.CANCELLED, `stream idle for ${ms} ms`));
      seen = this.count;
      this.timer = setTimeout(check, ms);
    };
    this.timer = setTimeout(check, ms);
  }

  /** The call ended: no more checks. */
  stop(): void {
    clearTimeout(this.timer);
  }
}

/**
 * A client or bidi stream's request elements, as the handler takes them. The grpc-js stream is paused
 * while a window (`maxBufferedElements`) of them waits unread, so a slow handler makes the client's
 * HTTP/2 flow control hold the sender; what waits counts against the server's memory budget (which
 * may cancel the call RESOURCE_EXHAUSTED, as it sheds an avrpc connection); the call's cancel ends
 * them with its reason. `done` gives back what is still held, once the call ended.
 */
function readRequests(
  shared: ServerShared,
  call: Readable,
  ctx: CallContext,
  activity: StreamActivity,
): { requests: AsyncIterable<Buffer>; done: () => void } {
  const window = shared.options.maxBufferedElements ?? DEFAULT_STREAM_WINDOW;
  const account = shared.budget.account((e) => ctx.cancel(e));
  account.handshakeDone();
  const sizes: number[] = [];
  const queue = new ElementQueue<Buffer>(
    {
      credit: () => void call.resume(),
      took: () => account.credit(sizes.shift() ?? 0),
      // The handler stopped reading: what else comes is dropped.
      abandoned: () => void call.removeListener('data', onData).resume(),
    },
    window,
  );
  const onData = (b: Buffer): void => {
    activity.count++;
    sizes.push(b.length);
    account.charge(b.length);
    queue.push(b, b.length);
    if (queue.buffered >= window) call.pause();
  };
  call.on('data', onData);
  call.once('end', () => queue.end());
  ctx.signal.addEventListener('abort', () => queue.fail(ctx.cancelReason ?? RpcError.from(ctx.signal.reason)), { once: true });
  return {
    requests: queue,
    done: () => {
      call.removeListener('data', onData);
      account.close();
    },
  };
}

/**
 * Runs one stream call of `msg` through the executor: a client or bidi stream's requests read from
 * `call`, a server or bidi stream's responses written to it (`request`: a server stream's record),
 * with the idle check. What it held is given back once it ended.
 */
export function runStream(
  shared: ServerShared,
  msg: MessageDef,
  call: Readable | Writable,
  ctx: CallContext,
  request?: unknown,
): Promise<CallOutcome> {
  const activity = new StreamActivity(shared.options.streamIdleTimeoutMs, ctx);
  const reading = msg.stream === 'client' || msg.stream === 'bidi' ? readRequests(shared, call as Readable, ctx, activity) : undefined;
  const sink = msg.stream === 'client' ? noop : sinkOf(call as Writable, ctx, activity);
  const input = reading === undefined ? { request } : { requests: reading.requests };
  return executeStream(shared, msg, input, ctx, sink, true).finally(() => {
    activity.stop();
    reading?.done();
  });
}

/** Writes each response's bytes; the next waits until grpc-js has taken this one (its 'drain'), or the call ended. */
function sinkOf(call: Writable, ctx: CallContext, activity: StreamActivity): ElementSink {
  return (bytes) => {
    activity.count++;
    ctx.sendHeader();
    if (call.write(bytes as Buffer)) return;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        call.off('drain', done);
        ctx.signal.removeEventListener('abort', done);
        resolve();
      };
      call.on('drain', done);
      ctx.signal.addEventListener('abort', done, { once: true });
    });
  };
}

function noop(): void {}
