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

/** How many times its advertised `S` a window may grow to (see `ElementQueue.growth`). */
const GROWTH = 8;
/** Bytes of small elements a grown window may hold at most (by the average element size). */
const GROWTH_BYTES = 256 * 1024;
/** The largest window, whatever `S` (a u32 CREDIT could say more; no stream needs it). */
const MAX_WINDOW = 65536;

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
  private batch: number;
  private windowNow: number;
  /** How far the window may grow: {@link GROWTH} times the advertised one. */
  private readonly maxWindow: number;
  /** Average element size in bytes (moving), from what `push` was told; 0 when never told. */
  private averageBytes = 0;
  /** The consumer found nothing buffered since the last CREDIT: the window, not the consumer, limits. */
  private starved = false;
  /** Elements taken so far. */
  private takenTotal = 0;

  constructor(
    private readonly owner: ElementQueueOwner,
    /** The window this side advertised (`S`). */
    window: number,
  ) {
    this.windowNow = window;
    this.maxWindow = Math.min(MAX_WINDOW, window * GROWTH);
    this.batch = Math.max(1, window >>> 1);
  }

  /**
   * Elements the consumer may find buffered at most: the advertised `S`, plus what credit beyond the
   * elements taken grew it by. (A receiver still checks DATA against `S`: DATA received minus the
   * credit given back stays below `S`, SPEC.md section 13.5.)
   */
  get window(): number {
    return this.windowNow;
  }

  /** Elements received and not taken yet. */
  get buffered(): number {
    return this.items.length - this.head;
  }

  /** True once the sender ended, failed, or the consumer stopped. */
  get closed(): boolean {
    return this.ending !== undefined || this.stopped;
  }

  /**
   * An element arrived, `bytes` long on the wire (0: unknown; small elements let the window grow).
   * Ignored once the consumer stopped (the stream is being cancelled).
   */
  push(value: T, bytes = 0): void {
    if (this.stopped || this.ending !== undefined) return;
    if (bytes > 0) this.averageBytes = this.averageBytes === 0 ? bytes : this.averageBytes + (bytes - this.averageBytes) / 8;
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
    // Waiting for the first element says nothing of throughput; waiting for a later one does.
    if (this.takenTotal > 0) this.starved = true;
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
    this.takenTotal++;
    this.owner.took?.();
    if (this.ending !== undefined) return;
    if (++this.taken >= this.batch) {
      const grow = this.growth();
      const n = this.taken + grow;
      this.taken = 0;
      if (grow > 0) {
        this.windowNow += grow;
        this.batch = this.windowNow >>> 1;
      }
      this.owner.credit(n);
    }
  }

  /**
   * Credit beyond what was taken: a stream of small elements whose consumer keeps up (it found the
   * queue empty since the last CREDIT: the window, not the consumer, is what it waits for) gets a window
   * that doubles, up to {@link GROWTH} times `S` and while the window's elements stay within
   * {@link GROWTH_BYTES}, so it needs fewer CREDIT round trips; large elements keep the window `S`.
   */
  private growth(): number {
    const w = this.windowNow;
    const starved = this.starved;
    this.starved = false;
    if (!starved || this.averageBytes === 0 || w >= this.maxWindow || 2 * w * this.averageBytes > GROWTH_BYTES) return 0;
    return Math.min(w, this.maxWindow - w);
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
