/**
 * The receiving half of one direction of a stream (SPEC.md section 13), shared by both sides: the
 * elements that arrived and that the consumer has not taken yet, handed out as an `AsyncIterator`.
 * Credit goes back to the sender as the consumer takes elements, never as they arrive, so a slow
 * consumer makes the producer wait and what is buffered stays within the window.
 */

/** What an {@link ElementQueue} tells its owner. */
export interface ElementQueueOwner {
  /** The consumer took `n` elements since the last call: send CREDIT `n`. */
  credit(n: number): void;
  /** The consumer took one element (before any `credit` it completes): what it held may be released. Optional. */
  took?(): void;
  /** The consumer stopped before the end (`return()`, a `break` out of `for await`): cancel the stream. */
  abandoned(): void;
}

type Waiter<T> = { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void };

const DONE: IteratorResult<never> = Object.freeze({ done: true, value: undefined });

/**
 * Elements in arrival order, then the end or an error. `push` never blocks: the sender keeps to its
 * credit, and the session checks it (a DATA beyond it is a protocol error) before pushing.
 */
export class ElementQueue<T> implements AsyncIterableIterator<T> {
  private items: T[] = [];
  private head = 0;
  private waiter: Waiter<T> | undefined;
  /** How the stream ended: `true` for END, an error for a failure; `undefined` while open. */
  private ending: true | { error: unknown } | undefined;
  private stopped = false;
  /** Taken since the last CREDIT went out. */
  private taken = 0;
  /** Elements taken before credit is returned: half the window, so CREDIT frames are few and the sender never runs dry. */
  private readonly batch: number;

  constructor(
    private readonly owner: ElementQueueOwner,
    /** The window this side advertised (`S`). */
    window: number,
  ) {
    this.batch = Math.max(1, window >>> 1);
  }

  /** Elements received and not taken yet. */
  get buffered(): number {
    return this.items.length - this.head;
  }

  /** True once the sender ended, failed, or the consumer stopped. */
  get closed(): boolean {
    return this.ending !== undefined || this.stopped;
  }

  /** An element arrived. Ignored once the consumer stopped (the stream is being cancelled). */
  push(value: T): void {
    if (this.stopped || this.ending !== undefined) return;
    const w = this.waiter;
    if (w !== undefined) {
      this.waiter = undefined;
      this.took();
      w.resolve({ done: false, value });
      return;
    }
    this.items.push(value);
  }

  /** The sender ended its side: iteration ends once the buffered elements are taken. */
  end(): void {
    if (this.ending !== undefined) return;
    this.ending = true;
    this.settleWaiter();
  }

  /** The stream failed: iteration throws `error` once the buffered elements are taken. */
  fail(error: unknown): void {
    if (this.ending !== undefined) return;
    this.ending = { error };
    this.settleWaiter();
  }

  next(): Promise<IteratorResult<T>> {
    if (this.head < this.items.length) {
      const value = this.items[this.head]!;
      this.items[this.head++] = undefined as T;
      if (this.head === this.items.length) {
        this.items = [];
        this.head = 0;
      }
      this.took();
      return Promise.resolve({ done: false, value });
    }
    if (this.stopped) return Promise.resolve(DONE);
    const e = this.ending;
    if (e === true) return Promise.resolve(DONE);
    if (e !== undefined) {
      // Thrown once; the iterator is finished after it, as a generator's would be.
      this.stopped = true;
      return Promise.reject(e.error);
    }
    if (this.waiter !== undefined) return Promise.reject(new Error('ElementQueue: next() called while a previous next() is pending'));
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** The consumer stops: buffered elements are dropped and the owner cancels the stream, unless it had ended. */
  return(): Promise<IteratorResult<T>> {
    if (!this.stopped) {
      this.stopped = true;
      this.items = [];
      this.head = 0;
      const w = this.waiter;
      this.waiter = undefined;
      w?.resolve(DONE);
      if (this.ending === undefined) this.owner.abandoned();
    }
    return Promise.resolve(DONE);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private took(): void {
    this.owner.took?.();
    if (this.ending !== undefined) return;
    if (++this.taken >= this.batch) {
      const n = this.taken;
      this.taken = 0;
      this.owner.credit(n);
    }
  }

  private settleWaiter(): void {
    const w = this.waiter;
    if (w === undefined) return;
    this.waiter = undefined;
    const e = this.ending!;
    if (e === true) return w.resolve(DONE);
    this.stopped = true;
    w.reject(e.error);
  }
}
