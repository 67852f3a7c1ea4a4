import type { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import type { ToWorker } from './stream-task.js';

type Waiter = { resolve: (r: IteratorResult<unknown>) => void; reject: (e: unknown) => void };

const DONE: IteratorResult<never> = Object.freeze({ done: true, value: undefined });

/**
 * The requests of a client or bidi stream as its worker handler reads them (`for await`). Each
 * `next()` asks the main thread for one element (`want`), which takes it from the stream's queue
 * only then: the client gets its credit back as the handler consumes, never earlier, and nothing
 * is buffered here. The main thread answers the wants in order, one message each.
 */
export class WorkerRequests implements AsyncIterableIterator<unknown> {
  private readonly waiters: Waiter[] = [];
  private ended = false;
  private stopped = false;
  private error: unknown = undefined;

  constructor(
    /** Ask the main thread for the next element. */
    private readonly want: () => void,
    /** The handler stopped reading before the end. */
    private readonly stop: () => void,
    /** Decodes one element's bytes; throws (and fails the stream) when they do not decode. */
    private readonly decode: (bytes: ArrayBuffer) => unknown,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<unknown>> {
    if (this.error !== undefined) return Promise.reject(this.error);
    if (this.ended || this.stopped) return Promise.resolve(DONE);
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.want();
    });
  }

  /** The handler breaks out of its `for await`: no more wants; the main thread stops taking requests. */
  return(): Promise<IteratorResult<unknown>> {
    if (!this.stopped && !this.ended && this.error === undefined) {
      this.stopped = true;
      this.stop();
    }
    this.settle((w) => w.resolve(DONE));
    return Promise.resolve(DONE);
  }

  /** The main thread's answer to the oldest want. */
  deliver(m: ToWorker): void {
    if (m.t === 'req') {
      const w = this.waiters.shift();
      if (w === undefined || this.error !== undefined || this.stopped) return;
      let value: unknown;
      try {
        value = this.decode(m.bytes);
      } catch (err) {
        return w.reject(err);
      }
      return w.resolve({ done: false, value });
    }
    if (m.t === 'reqEnd') {
      this.ended = true;
      return this.settle((w) => w.resolve(DONE));
    }
    if (m.t === 'reqFail') this.fail(new RpcError(m.code as Code, m.message));
  }

  /** The requests fail with `error` (the call was cancelled): waiting and later reads throw it. */
  fail(error: unknown): void {
    if (this.ended || this.stopped) return;
    this.error ??= error;
    this.settle((w) => w.reject(this.error));
  }

  private settle(each: (w: Waiter) => void): void {
    const waiters = this.waiters.splice(0);
    for (const w of waiters) each(w);
  }
}
