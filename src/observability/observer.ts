import type { Code } from '../errors/code.js';
import type { RpcError } from '../errors/rpc-error.js';
import type { CallInfo } from './call-info.js';

/**
 * Hooks for metrics and tracing, called by servers and clients (option `observer`). Every hook is
 * optional; a server or client without an observer pays nothing.
 */
export interface RpcObserver {
  /** A connection was established (`peer` is `host:port`). */
  connectionOpened?(peer: string): void;
  /** A connection closed; `error` says why when it was not a clean close. */
  connectionClosed?(peer: string, error: RpcError | undefined): void;
  /**
   * A call began (server: request decoded; client: `call()` invoked). `info` describes it: peer,
   * metadata, deadline, request size... (see {@link CallInfo}); the same object reaches `callEnded`.
   */
  callStarted?(message: string, info: CallInfo): void;
  /**
   * A call ended with `code` (0 for OK) after `durationMs`; `info` has them too, with the sizes, the
   * peer of the last attempt and the error. A server's request refused before any handler was chosen
   * ends as message `(refused)` without a `callStarted`.
   */
  callEnded?(message: string, code: Code, durationMs: number, info: CallInfo): void;
  /**
   * One element of a stream (SPEC.md section 13) went out (`sent`) or arrived (`received`), on the side
   * that observes it: a server sends responses and receives requests, a client the other way round.
   * `info` is the call's (its element counts include this one).
   */
  streamElement?(message: string, direction: 'sent' | 'received', info: CallInfo): void;
  /** Bytes read from sockets. */
  bytesReceived?(n: number): void;
  /** Bytes written to sockets. */
  bytesSent?(n: number): void;
  /**
   * A client's connection pool to report on: `createClient` calls it once with a function reading the
   * pool's state per endpoint (read it at scrape time, not per call), and calls what it returns at close.
   */
  poolAttached?(stats: () => readonly PoolStat[]): (() => void) | void;
}

/** One endpoint of a client's pool, as observers see it (a subset of `client.stats()`). */
export interface PoolStat {
  /** `host:port`. */
  readonly endpoint: string;
  /** Sockets open or opening. */
  readonly connections: number;
  /** Sockets ready for calls. */
  readonly ready: number;
  /** Calls in flight on this endpoint. */
  readonly inFlight: number;
  /** Ejected by outlier detection right now. */
  readonly ejected: boolean;
}

/** A pino-compatible logger: the subset avrpc uses. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** The logger used when none is given: drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** Checks a `logger` option: a pino-compatible object, or undefined for silence. */
export function isLogger(value: unknown): value is Logger {
  if (value === null || typeof value !== 'object') return false;
  const l = value as Record<string, unknown>;
  return ['debug', 'info', 'warn', 'error'].every((k) => typeof l[k] === 'function');
}

const HOOKS = [
  'connectionOpened',
  'connectionClosed',
  'callStarted',
  'callEnded',
  'streamElement',
  'bytesReceived',
  'bytesSent',
  'poolAttached',
] as const satisfies readonly (keyof RpcObserver)[];

/**
 * Wraps a user's observer so that a hook that throws never breaks a call or a connection (or, thrown
 * from a promise callback, the process): the first failure of each hook is logged at `error`, the
 * rest ignored. Hooks the observer lacks stay absent, so `observer.hook?.()` still costs nothing.
 */
export function guardObserver(observer: RpcObserver, logger: Logger): RpcObserver {
  const guarded: Record<string, unknown> = {};
  const reported = new Set<string>();
  const guard =
    <A extends unknown[], R>(name: string, fn: (...args: A) => R, self: unknown) =>
    (...args: A): R | undefined => {
      try {
        return fn.apply(self, args);
      } catch (err) {
        if (!reported.has(name)) {
          reported.add(name);
          logger.error({ err, hook: name }, 'observer hook threw; ignored from now on');
        }
        return undefined;
      }
    };
  for (const name of HOOKS) {
    const hook = observer[name] as ((...args: unknown[]) => unknown) | undefined;
    if (typeof hook !== 'function') continue;
    guarded[name] =
      name !== 'poolAttached'
        ? guard(name, hook, observer)
        : guard(
            name,
            (stats: unknown) => {
              const detach = hook.call(observer, stats);
              return typeof detach === 'function' ? guard('poolAttached detach', detach as () => void, undefined) : undefined;
            },
            undefined,
          );
  }
  return guarded as RpcObserver;
}

/** Wraps a user's logger so that a logger that throws cannot break what avrpc was doing. */
export function guardLogger(logger: Logger): Logger {
  const at =
    (level: keyof Logger) =>
    (obj: object, msg?: string): void => {
      try {
        logger[level](obj, msg);
      } catch {
        // Nowhere left to report it.
      }
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** The filled `observer` and `logger` options: guarded, or absent / silent when not given. */
export function guarded(
  observer: RpcObserver | undefined,
  logger: Logger | undefined,
): { observer: RpcObserver | undefined; logger: Logger } {
  const log = logger === undefined ? silentLogger : guardLogger(logger);
  return { observer: observer === undefined ? undefined : guardObserver(observer, log), logger: log };
}

/**
 * Counts a stream element in its call's {@link CallInfo} and tells the observer (internal: the stream
 * of each side calls it, only with an observer).
 */
export function observeElement(observer: RpcObserver, message: string, direction: 'sent' | 'received', info: CallInfo | undefined): void {
  if (info !== undefined) {
    // A client sends requests and receives responses; a server the other way round.
    if ((direction === 'sent') === (info.side === 'client')) info.requestElements++;
    else info.responseElements++;
  }
  observer.streamElement?.(message, direction, info!);
}

/**
 * One observer calling each of `observers` in turn (say Prometheus and a call log), with only the hooks
 * some of them have, so absent hooks still cost nothing. `poolAttached` returns a detach of them all.
 */
export function combineObservers(...observers: RpcObserver[]): RpcObserver {
  if (observers.length === 1) return observers[0]!;
  const combined: Record<string, unknown> = {};
  for (const name of HOOKS) {
    const hooks = observers.filter((o) => typeof o[name] === 'function');
    if (hooks.length === 0) continue;
    combined[name] =
      name === 'poolAttached'
        ? (stats: () => readonly PoolStat[]) => {
            const detaches = hooks.map((o) => o.poolAttached!(stats));
            return () => {
              for (const d of detaches) if (typeof d === 'function') d();
            };
          }
        : (...args: unknown[]) => {
            for (const o of hooks) (o[name] as (...a: unknown[]) => void).apply(o, args);
          };
  }
  return combined as RpcObserver;
}
