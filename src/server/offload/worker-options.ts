import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import type { Protocol } from '../../codec/protocol.js';
import { intOption, invalid, knownOptions, oneOf } from '../../util/validate.js';

/**
 * Default of {@link WorkerOptions.thresholdBytes}, chosen with `bench/offload-threshold.ts` (echo of an
 * array of small records, main-thread event-loop busy time per call, inline vs offloaded, 2-core
 * machine under load). Offloading costs the main thread 45-140 us per call whatever the size (copy,
 * postMessage, reply), inline work about 30-45 us per KB: offload becomes cheaper for the main thread
 * from about 1-2.5 KB, but it adds a piscina round trip (70-250 us) to every call's latency. At 15 KB a
 * call costs the main thread 440-740 us inline against 75-140 us offloaded (3-6x less) while its latency
 * stays about the same; at 540 KB, 11-18 ms against 0.6-1 ms. 16 KiB keeps calls that are cheap
 * inline off the pool and sends everything that could hold the loop for half a millisecond or more.
 */
export const DEFAULT_OFFLOAD_THRESHOLD_BYTES = 16 * 1024;

/** Default of {@link WorkerOptions.abandonGraceMs}. */
export const DEFAULT_ABANDON_GRACE_MS = 5000;

/**
 * Handlers that run on worker threads (`piscina`): the main thread hands the request's payload bytes
 * to a worker, which decodes them, runs the handler, encodes the reply and hands bytes back, so a heavy
 * message never blocks the event loop. Server interceptors do not run around worker handlers (they
 * take decoded requests); `authorize` and `acl` do, on the main thread, before the task is queued.
 *
 * `listen()` loads the module in a worker first and rejects with INVALID_ARGUMENT (naming the module,
 * and the message whose function is missing) when it does not load or lacks a listed handler.
 *
 * What crosses to the worker is structured-cloned, `ctx.peer.principal` included: a worker handler sees
 * the principal's data, never its prototype or methods (a class instance arrives as a plain object).
 * A principal that cannot be cloned at all (it holds a function, say) is checked once per connection and
 * replaced by a copy of its own enumerable properties without the values that cannot cross (functions,
 * symbols, and objects that are neither plain nor cloneable); the server logs a warning the first time.
 * Decide there what the worker should know (`authenticate` may return a plain object with ids and roles).
 */
export interface WorkerOptions {
  /**
   * The module loaded in each worker (built JavaScript; a path, relative to the working directory, or
   * a `file:` URL): it exports one handler per offloaded message, named after the message, with the
   * same signature as inline handlers (`(request, ctx) => response`). `ctx.signal` aborts on cancellation, deadline and
   * disconnect; `ctx.cancelled` reads the cancellation flag synchronously, for CPU loops.
   */
  module: string | URL;
  /**
   * Messages whose handlers run in workers. Required, at least one.
   *
   * Stream messages may be listed too: a stream message listed here always runs in a worker, whatever
   * `offload` and `thresholdBytes` say (it needs no inline handler). Its handler has the inline
   * signature (an async generator for a server stream, `(requests, ctx)` for client and bidi streams);
   * only bytes cross threads: the worker decodes each request element (with schema resolution) as
   * the handler asks for it, so the client's credit comes back as the worker consumes, and it encodes
   * each response, a few ahead of what the client's credit takes at most, so a slow client holds the
   * generator in its `yield`. `ctx.responseHeader`, `ctx.responseTrailer` and `ctx.sendHeader()` work
   * as inline. A started stream lives on its worker's event loop rather than holding the thread (as a
   * running call does): one thread serves many open streams, and a call's CPU-bound handler delays
   * the streams on its thread. Each open stream holds one of `maxTasks`. Cancellation (client CANCEL,
   * deadline, disconnect, idle timeout) aborts `ctx.signal` and closes the handler's generator; one
   * that has not finished `abandonGraceMs` later gets its thread terminated and replaced, which fails
   * the other streams running on that thread with INTERNAL.
   */
  messages: readonly string[];
  /** Worker threads, started with the server. Default: CPU cores minus one, at least 1. */
  threads?: number;
  /**
   * `'always'`: every call of these messages runs in a worker. `'auto'`: requests whose payload is
   * at least `thresholdBytes` run in a worker, smaller ones run inline with the handler of the same
   * name in `handlers` (which 'auto' then requires). Default `'auto'`.
   *
   * 'auto' looks at the request's size only (the response's is not known before the handler runs): for
   * a message with a small request and a large response (a query returning thousands of rows), choose
   * `'always'`, or the response's encoding runs on the main thread.
   */
  offload?: 'auto' | 'always';
  /**
   * Smallest request payload (Avro bytes, without frame head and metadata) that `'auto'` sends to
   * a worker, in bytes. Default 16384 ({@link DEFAULT_OFFLOAD_THRESHOLD_BYTES}: measured, see there).
   */
  thresholdBytes?: number;
  /** Offloaded calls queued or running at once; more are refused with RESOURCE_EXHAUSTED. Default 1024. */
  maxTasks?: number;
  /**
   * How long a worker handler may keep running after its call ended (cancelled, past its deadline, or
   * its connection gone), in ms. Then its task is aborted: a queued task is dropped, and a running one's
   * worker thread is terminated and replaced (its module loads again), so a handler that never looks at
   * `ctx.cancelled` / `ctx.signal` cannot hold a thread forever. The call itself has already failed with
   * its code. Default 5000; 0 aborts at once.
   */
  abandonGraceMs?: number;
}

/** Every option name of {@link WorkerOptions}; others are refused. */
const KNOWN_WORKER_OPTIONS = {
  module: true,
  messages: true,
  threads: true,
  offload: true,
  thresholdBytes: true,
  maxTasks: true,
  abandonGraceMs: true,
} as const satisfies Record<keyof WorkerOptions, true>;

/** {@link WorkerOptions} resolved: module as a URL string, messages as local indexes. */
export interface ResolvedWorkerOptions {
  moduleUrl: string;
  /** Local message indexes that may be offloaded. */
  messages: ReadonlySet<number>;
  threads: number;
  offload: 'auto' | 'always';
  thresholdBytes: number;
  maxTasks: number;
  abandonGraceMs: number;
}

/** Validates `workers` against the protocol and the inline handlers; throws with the option's path. */
export function resolveWorkerOptions(
  at: string,
  workers: WorkerOptions | undefined,
  protocol: Protocol,
  hasInline: (index: number) => boolean,
): ResolvedWorkerOptions | undefined {
  if (workers === undefined) return undefined;
  if (workers === null || typeof workers !== 'object') invalid(at, 'must be an object');
  knownOptions(at, workers, KNOWN_WORKER_OPTIONS);
  const offload = oneOf(`${at}.offload`, workers.offload, 'auto', ['auto', 'always']);
  if (!Array.isArray(workers.messages) || workers.messages.length === 0)
    invalid(`${at}.messages`, 'must be a non-empty array of message names');
  const messages = new Set<number>();
  for (const name of workers.messages) {
    const msg = typeof name === 'string' ? protocol.message(name) : undefined;
    if (msg === undefined) invalid(`${at}.messages`, `names no message of protocol ${protocol.name}: ${String(name)}`);
    // A stream always runs in the worker: no inline handler is needed for it.
    if (offload === 'auto' && msg.stream === undefined && !hasInline(msg.index)) {
      invalid(
        `${at}.messages`,
        `'${name}' needs an inline handler in options.handlers too when offload is 'auto' (small requests run inline)`,
      );
    }
    messages.add(msg.index);
  }
  return {
    moduleUrl: moduleUrl(`${at}.module`, workers.module),
    messages,
    threads: intOption(`${at}.threads`, workers.threads, Math.max(1, availableParallelism() - 1), 1, 1024),
    offload,
    thresholdBytes: intOption(`${at}.thresholdBytes`, workers.thresholdBytes, DEFAULT_OFFLOAD_THRESHOLD_BYTES, 0),
    maxTasks: intOption(`${at}.maxTasks`, workers.maxTasks, 1024, 1, 1 << 20),
    // setTimeout's limit: a longer delay would fire at once.
    abandonGraceMs: intOption(`${at}.abandonGraceMs`, workers.abandonGraceMs, DEFAULT_ABANDON_GRACE_MS, 0, 2 ** 31 - 1),
  };
}

function moduleUrl(path: string, module: unknown): string {
  if (module instanceof URL) {
    if (module.protocol !== 'file:') invalid(path, `must be a file: URL, got ${module.protocol}`);
    return module.href;
  }
  if (typeof module !== 'string' || module.length === 0) invalid(path, 'must be a path or a file: URL');
  if (module.startsWith('file:')) return module;
  return pathToFileURL(module).href;
}
