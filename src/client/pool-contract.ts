/**
 * The contract between the pool and what it is given: the connections it balances over (made by a
 * factory, so tests pass fakes), the clock it times reconnects and ejections by, and what a pick says.
 */
import type { RpcError } from '../errors/rpc-error.js';
import type { ConnectionView } from './balancer.js';
import type { ClientCall } from './call-table.js';
import type { ClientConnectionState, ConnectionListener, ConnectionTarget } from './client-connection.js';
import type { ConnectFailure } from './connect-failure.js';

/** What the pool and the call runner use of a connection (a `ClientConnection`, or a test's fake). */
export interface PooledConnection extends ConnectionView {
  readonly state: ClientConnectionState;
  /** Why it closed (or will), once known. */
  readonly closeError: RpcError | undefined;
  /** True once its handshake completed. */
  readonly wasReady: boolean;
  /** How it failed, when it closed before its handshake completed. */
  readonly failure: ConnectFailure | undefined;
  /** Takes a call for an attempt (see `ClientConnection.start`). */
  start(call: ClientCall): void;
  /** Stops taking calls and closes once they finished. */
  close(): Promise<void>;
}

/**
 * Opens a connection to `target`, which reports every state change to `onTransition` (never from
 * within this call: the pool adds the connection first). The default makes a `ClientConnection`.
 */
export type ConnectionFactory = (target: ConnectionTarget, onTransition: ConnectionListener<PooledConnection>) => PooledConnection;

/** The pool's timers and clock (`performance.now()` and unref'd Node timers by default; tests pass a fake). */
export interface PoolClock {
  now(): number;
  /** Calls `fn` after `ms`; the timer never keeps the process alive on its own. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
  /** Calls `fn` every `ms`; the timer never keeps the process alive on its own. */
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(timer: unknown): void;
}

/** The real clock: `performance.now()` and unref'd Node timers. */
export const realClock: PoolClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout | undefined),
  setInterval: (fn, ms) => setInterval(fn, ms).unref(),
  clearInterval: (t) => clearInterval(t as NodeJS.Timeout | undefined),
};

/** What the pool can inject for tests: how connections are made, and the clock. */
export interface PoolSeams {
  connect?: ConnectionFactory;
  clock?: PoolClock;
}

/**
 * What {@link Pool.pick} decided for a call: a connection to start it on; wait (queue) for one, since
 * connections are on their way; `down`: every endpoint is known down (its last connection attempt
 * failed, gRPC's TRANSIENT_FAILURE), so a call fails with `error` unless it waits for ready; or fail
 * now with `error`, since waiting will not help. A `pick` result is reused by the next pick: read its
 * `conn` at once.
 */
export type PickResult =
  | { readonly type: 'pick'; readonly conn: PooledConnection }
  | { readonly type: 'queue' }
  | { readonly type: 'down'; readonly error: RpcError }
  | { readonly type: 'fail'; readonly error: RpcError };

/** The one `queue` result. */
export const QUEUE: PickResult = Object.freeze({ type: 'queue' });
