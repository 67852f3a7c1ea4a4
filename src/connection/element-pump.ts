/**
 * The sending half of one direction of a stream (SPEC.md section 13), shared by both sides: pulls
 * elements from a producer (a handler's async generator, a caller's iterable of requests) only while
 * the peer's credit allows, so a slow consumer makes the producer's `yield` wait.
 */

/** Where an {@link ElementPump} puts what it pulls. */
export interface ElementSink<T> {
  /**
   * One element: write a DATA frame. Throws when it cannot be encoded (the pump then fails). Returns
   * false when the socket is backed up: the pump then waits for {@link ElementPump.resume}.
   */
  send(value: T): boolean | void;
  /** The producer finished. */
  end(): void;
  /** The producer threw (or an element did not encode). */
  fail(error: unknown): void;
}

/** Anything a stream may be fed from: an async iterable (generator), or a plain iterable (an array). */
export type ElementSource<T> = AsyncIterable<T> | Iterable<T>;

/** True when `v` can feed a stream. */
export function isElementSource(v: unknown): v is ElementSource<unknown> {
  if (v === null || (typeof v !== 'object' && typeof v !== 'function')) return false;
  const o = v as Record<symbol, unknown>;
  return typeof o[Symbol.asyncIterator] === 'function' || (typeof o[Symbol.iterator] === 'function' && typeof v !== 'string');
}

/**
 * Pulls from `source` while credit remains; `grant` adds credit (a CREDIT frame), `stop` ends the
 * pulling and closes the producer (`return()`, so a generator's `finally` runs). One `next()` at a
 * time, never more than the credit.
 */
export class ElementPump<T> {
  private readonly iterator: AsyncIterator<T> | Iterator<T>;
  private credit: number;
  private pulling = false;
  private done = false;
  /** The sink said the socket is backed up: no pull until `resume`. */
  private paused = false;
  /** The producer's `return()`, while it closes. */
  private closing: Promise<void> | undefined;

  constructor(
    source: ElementSource<T>,
    /** The peer's window `S`: elements it takes before its first CREDIT. */
    credit: number,
    private readonly sink: ElementSink<T>,
    /** Runs each pull (the call scope of a handler, for deadline propagation); default: directly. */
    private readonly runPull?: <R>(pull: () => R) => R,
  ) {
    const s = source as Partial<AsyncIterable<T> & Iterable<T>>;
    const async = s[Symbol.asyncIterator];
    this.iterator = typeof async === 'function' ? async.call(s) : (s as Iterable<T>)[Symbol.iterator]();
    this.credit = credit;
  }

  /** Credit left: elements the peer takes before its next CREDIT. */
  get available(): number {
    return this.credit;
  }

  /** True once the producer finished, failed, or was stopped. */
  get finished(): boolean {
    return this.done;
  }

  /** Starts pulling. */
  start(): void {
    void this.pull();
  }

  /** The peer took `n` more: pull again if we were waiting for credit. */
  grant(n: number): void {
    this.credit += n;
    if (!this.pulling && !this.done && !this.paused) void this.pull();
  }

  /** The socket took what was queued: pull again (see {@link ElementSink.send}). */
  resume(): void {
    this.paused = false;
    if (!this.pulling && !this.done) void this.pull();
  }

  /**
   * Stops pulling and closes the producer (its `finally` blocks run); nothing more is sent. Resolves
   * once the producer has closed: at once for one suspended in a `yield`, after its current `await`
   * for one that was running (a slot is held until then). Never rejects.
   */
  stop(): Promise<void> {
    if (this.done) return this.closing ?? Promise.resolve();
    this.done = true;
    return this.close();
  }

  private close(): Promise<void> {
    const it = this.iterator as { return?: () => unknown };
    if (typeof it.return !== 'function') return Promise.resolve();
    try {
      const r = it.return();
      if (isPromise(r)) return (this.closing = r.then(noop, noop));
    } catch {
      // A producer that throws while closing has nothing more to say to a stream that is over.
    }
    return Promise.resolve();
  }

  /** One `next()`, bound once (a closure per element would cost an allocation each). */
  private readonly nextOne = (): IteratorResult<T> | Promise<IteratorResult<T>> => this.iterator.next();

  private async pull(): Promise<void> {
    this.pulling = true;
    try {
      while (this.credit > 0 && !this.done && !this.paused) {
        const next = this.runPull === undefined ? this.iterator.next() : this.runPull(this.nextOne);
        // A plain iterator's result is used at once: an array of requests costs no turn per element.
        const r = isPromise(next) ? await next : next;
        if (this.done) return;
        if (r.done === true) {
          this.done = true;
          // An end that cannot be written (trailers that do not encode) fails the stream instead.
          try {
            this.sink.end();
          } catch (err) {
            this.sink.fail(err);
          }
          return;
        }
        this.credit--;
        if (this.sink.send(r.value) === false) this.paused = true;
      }
    } catch (err) {
      if (this.done) return;
      this.done = true;
      // An element that did not encode leaves the producer suspended: close it (a no-op once it threw).
      void this.close();
      this.sink.fail(err);
    } finally {
      this.pulling = false;
    }
  }
}

function isPromise<V>(v: V | Promise<V>): v is Promise<V> {
  return v !== null && typeof v === 'object' && typeof (v as Promise<V>).then === 'function';
}

function noop(): void {}
