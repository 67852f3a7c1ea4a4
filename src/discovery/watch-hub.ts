/**
 * The watch and lifecycle plumbing every registry shares: turning a push-style subscription into
 * an async iterable of filtered snapshots, ending all of them on close, and refusing calls after
 * close. Each registry only supplies a {@link Subscribe} function that pushes full snapshots.
 */
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { RegistryErrorListener, ServiceInstance, WatchOptions } from './registry.js';
import { checkVersionRange, selectInstances, watchOptionsOf } from './select.js';
import { checkSegment } from './validate.js';

/** Where a subscription delivers data. Calls after the watch ended are ignored. */
export interface SnapshotSink {
  /** The service's complete, unfiltered instance set (the hub applies the version filter). */
  push(instances: Iterable<ServiceInstance>): void;
  /** Ends the watch with this error (thrown from the consumer's next `next()`). */
  fail(err: unknown): void;
  /** True once the watch ended: producers stop polling, and stop reporting errors nobody awaits. */
  readonly ended: boolean;
}

/** Stops a subscription; may be async (etcd cancels its watcher). */
export type Unsubscribe = () => void | Promise<void>;

/**
 * Starts watching `name`: must push the current set before resolving (or reject, which the first
 * `next()` rethrows), then push again on every change until the returned function is called.
 */
export type Subscribe = (name: string, sink: SnapshotSink) => Promise<Unsubscribe>;

/** Ends a watch: marks it done, wakes the consumer, tears the subscription down. */
interface Endable {
  end(): Promise<void>;
}

/** Per-registry state: the closed flag and the set of live watches to end on close. */
export class WatchHub {
  private readonly closing = new AbortController();
  private readonly live = new Set<Endable>();

  /** @param label names the registry in errors, e.g. `'etcd registry'`. */
  constructor(private readonly label: string) {}

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.closing.signal.aborted;
  }

  /** Throws FAILED_PRECONDITION when the registry is closed (a caller bug, not an outage). */
  assertOpen(): void {
    if (this.closed) throw new RpcError(Code.FAILED_PRECONDITION, `${this.label} is closed`);
  }

  /** The shared `Registry.watch`: validates arguments synchronously, subscribes on first `next()`. */
  watch(name: string, options: WatchOptions | undefined, subscribe: Subscribe): AsyncIterable<ServiceInstance[]> {
    this.assertOpen();
    checkSegment(name, 'watch: name');
    const range = checkVersionRange(watchOptionsOf(options)?.version, 'watch: options.version');
    const signals = [this.closing.signal, ...(options?.signal ? [options.signal] : [])];
    const track = (watch: Endable, on: boolean): void => void (on ? this.live.add(watch) : this.live.delete(watch));
    return { [Symbol.asyncIterator]: () => new SnapshotIterator(name, range, subscribe, signals, track) };
  }

  /** Ends every watch and waits until their subscriptions are torn down. Idempotent. */
  async close(): Promise<void> {
    this.closing.abort();
    await Promise.all([...this.live].map((watch) => watch.end()));
  }
}

/**
 * Coalescing re-reader for subscriptions driven by "something changed" signals (etcd events, DNS
 * poll ticks): reads never overlap and a burst of triggers costs at most one extra read, so
 * snapshots arrive in order. Failures go to `onError`; the next trigger retries.
 */
export function serialRefresh(
  read: () => Promise<Iterable<ServiceInstance>>,
  sink: SnapshotSink,
  onError: RegistryErrorListener,
): () => Promise<void> {
  let running: Promise<void> | undefined;
  let again = false;
  const loop = async (): Promise<void> => {
    do {
      again = false;
      try {
        sink.push(await read());
      } catch (err) {
        // A read cut short by the watch ending (registry closed) is not worth reporting.
        if (!sink.ended) onError(RpcError.from(err, Code.UNAVAILABLE));
      }
    } while (again && !sink.ended);
    running = undefined;
  };
  return () => {
    if (running) again = true;
    else running = loop();
    return running;
  };
}

type Track = (watch: Endable, on: boolean) => void;

/** One subscription, consumed as an async iterator. Holds at most one pending (newest) snapshot. */
class SnapshotIterator implements AsyncIterableIterator<ServiceInstance[]>, Endable {
  private pending: ServiceInstance[] | undefined;
  private lastKey: string | undefined;
  private error: RpcError | undefined;
  private done = false;
  private wakers: (() => void)[] = [];
  private started: Promise<void> | undefined;
  private ended: Promise<void> | undefined;
  private unsubscribe: Unsubscribe | undefined;
  private readonly onAbort = (): void => void this.end();

  constructor(
    private readonly name: string,
    private readonly range: string | undefined,
    private readonly subscribe: Subscribe,
    private readonly signals: AbortSignal[],
    private readonly track: Track,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<ServiceInstance[]>> {
    if (!this.done) await (this.started ??= this.start());
    for (;;) {
      const error = this.error;
      if (error) {
        this.error = undefined; // thrown once; the iterator is finished afterwards
        throw error;
      }
      if (this.done) return { done: true, value: undefined };
      const snapshot = this.pending;
      if (snapshot) {
        this.pending = undefined;
        return { done: false, value: snapshot };
      }
      await new Promise<void>((wake) => this.wakers.push(wake));
    }
  }

  async return(): Promise<IteratorResult<ServiceInstance[]>> {
    await this.end();
    return { done: true, value: undefined };
  }

  /**
   * Idempotent and never rejects (a failed teardown must not mask why the watch ended); waits for
   * a subscription still being set up, so close() leaves nothing running.
   */
  end(): Promise<void> {
    this.done = true;
    this.pending = undefined;
    for (const signal of this.signals) signal.removeEventListener('abort', this.onAbort);
    this.wake();
    return (this.ended ??= (async () => {
      await this.started;
      try {
        await this.unsubscribe?.();
      } catch {
        // Secondary to whatever ended the watch; the subscription is gone either way.
      }
      this.track(this, false);
    })());
  }

  private async start(): Promise<void> {
    if (this.signals.some((signal) => signal.aborted)) return void this.end();
    for (const signal of this.signals) signal.addEventListener('abort', this.onAbort);
    this.track(this, true);
    const isDone = (): boolean => this.done;
    const sink: SnapshotSink = {
      push: (all) => this.push(all),
      fail: (err) => this.fail(err),
      get ended() {
        return isDone();
      },
    };
    try {
      this.unsubscribe = await this.subscribe(this.name, sink);
    } catch (err) {
      this.fail(err);
    }
  }

  private push(all: Iterable<ServiceInstance>): void {
    if (this.done) return;
    const snapshot = selectInstances(all, this.range);
    const key = JSON.stringify(snapshot);
    if (key === this.lastKey) return; // a change outside the version range, or a no-op re-read
    this.lastKey = key;
    this.pending = snapshot;
    this.wake();
  }

  private fail(err: unknown): void {
    if (this.done) return;
    this.error = RpcError.from(err, Code.UNAVAILABLE);
    void this.end();
  }

  private wake(): void {
    for (const wake of this.wakers.splice(0)) wake();
  }
}
