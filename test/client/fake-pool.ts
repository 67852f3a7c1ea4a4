/**
 * Fakes for the client's pool and call runner: a clock whose timers run only when the test advances
 * it, and connections that change state and settle calls when the test says so. No sockets, no real
 * timers: what a test checks is the pool's and the runner's decisions alone.
 */
import { leastConnections, type Balancer } from '../../src/client/balancer.js';
import type { ClientCall } from '../../src/client/call-table.js';
import type { ClientConnectionState, ConnectionListener, ConnectionTarget } from '../../src/client/client-connection.js';
import { resolveClientOptions } from '../../src/client/client-options.js';
import type { ConnectFailure } from '../../src/client/connect-failure.js';
import type { EndpointHealth } from '../../src/client/endpoint-health.js';
import { Pool, type PoolOptions } from '../../src/client/pool.js';
import type { PoolClock, PooledConnection } from '../../src/client/pool-contract.js';
import { ResolverCache } from '../../src/codec/resolver-cache.js';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { poolProtocol } from '../helpers/pool-fixture.js';

interface FakeTimer {
  at: number;
  ms: number;
  every: boolean;
  fn: () => void;
}

/** A clock that stands still until {@link advance}; its timers fire in time order. */
export class FakeClock implements PoolClock {
  private t = 1000;
  private readonly timers = new Set<FakeTimer>();

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const timer = { at: this.t + ms, ms, every: false, fn };
    this.timers.add(timer);
    return timer;
  }

  clearTimeout(timer: unknown): void {
    this.timers.delete(timer as FakeTimer);
  }

  setInterval(fn: () => void, ms: number): unknown {
    const timer = { at: this.t + ms, ms, every: true, fn };
    this.timers.add(timer);
    return timer;
  }

  clearInterval(timer: unknown): void {
    this.timers.delete(timer as FakeTimer);
  }

  /** Delays of the one-shot timers waiting now, in the order they were set. */
  pending(): number[] {
    return [...this.timers].filter((t) => !t.every).map((t) => t.ms);
  }

  /** Moves time on by `ms`, firing every timer that falls due, earliest first. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let guard = 0; guard < 10_000; guard++) {
      let next: FakeTimer | undefined;
      for (const t of this.timers) if (t.at <= end && (next === undefined || t.at < next.at)) next = t;
      if (next === undefined) break;
      this.t = next.at;
      if (next.every) next.at += next.ms;
      else this.timers.delete(next);
      next.fn();
    }
    this.t = end;
  }
}

/** A connection that does what the test tells it. */
export class FakeConnection implements PooledConnection {
  state: ClientConnectionState = 'connecting';
  closeError: RpcError | undefined;
  wasReady = false;
  failure: ConnectFailure | undefined;
  /** Calls on it now, in the order they came. */
  readonly calls: ClientCall[] = [];
  /** While true, calls started here are held unwritten (a large request waiting for a fragment slot). */
  holdWrites = false;
  readonly health: EndpointHealth;

  constructor(
    target: ConnectionTarget,
    private readonly onTransition: ConnectionListener<PooledConnection>,
  ) {
    this.health = target.health;
  }

  get endpointKey(): string {
    return this.health.key;
  }
  get weight(): number {
    return this.health.weight;
  }
  get latencyEwmaMs(): number {
    return this.health.latencyEwmaMs;
  }
  get inFlight(): number {
    return this.calls.length;
  }

  start(call: ClientCall): void {
    call.attempts++;
    call.sent = !this.holdWrites && this.state === 'ready';
    call.conn = this;
    this.calls.push(call);
  }

  detach(call: ClientCall): void {
    this.take(call);
  }

  close(): Promise<void> {
    if (this.state !== 'closed' && this.state !== 'draining') this.move('draining');
    return Promise.resolve();
  }

  /** The handshake completed. */
  ready(): void {
    this.wasReady = true;
    this.move('ready');
    for (const c of this.calls) c.sent = !this.holdWrites;
  }

  /** The server answered `call` (the oldest here by default). */
  answer(value: unknown = 'ok', call = this.calls[0]!): void {
    this.take(call);
    this.health.answered(call.msg.index, 1);
    call.resolve(value);
  }

  /** The server refused `call` with ERROR UNAVAILABLE and the REFUSED flag: no handler ran. */
  refuse(call = this.calls[0]!): void {
    this.take(call);
    this.health.failed();
    call.conn = null;
    call.avoidEndpoint = this.endpointKey;
    call.owner.attemptFailed(call, new RpcError(Code.UNAVAILABLE, 'refused', { isRemote: true }), false);
  }

  /** The server failed `call` with ERROR UNAVAILABLE after its handler ran. */
  failCall(call = this.calls[0]!): void {
    this.take(call);
    this.health.failed();
    call.conn = null;
    call.avoidEndpoint = this.endpointKey;
    call.owner.attemptFailed(call, new RpcError(Code.UNAVAILABLE, 'downstream outage', { isRemote: true }), true);
  }

  /** A graceful GOAWAY: draining, and the calls not written yet go back to the runner (never run). */
  goaway(): void {
    if (this.state === 'connecting' || this.state === 'ready') this.move('draining');
    for (const call of this.calls.filter((c) => !c.sent)) {
      this.take(call);
      call.conn = null;
      call.avoidEndpoint = this.endpointKey;
      call.owner.attemptFailed(call, new RpcError(Code.UNAVAILABLE, 'server sent GOAWAY before the request went out'), false);
    }
  }

  /** The socket closed (`failure`: how, if it never got ready); calls still here are lost with it. */
  lose(
    error = new RpcError(Code.UNAVAILABLE, 'connection reset'),
    failure: ConnectFailure | undefined = this.wasReady ? undefined : 'transient',
  ): void {
    this.closeError = error;
    this.failure = this.wasReady ? undefined : failure;
    this.move('closed');
    if (!this.wasReady || this.calls.length > 0) this.health.connectionFailed();
    for (const call of this.calls.splice(0)) {
      call.conn = null;
      call.avoidEndpoint = this.endpointKey;
      call.owner.attemptFailed(call, error, call.sent);
    }
  }

  private take(call: ClientCall): void {
    const i = this.calls.indexOf(call);
    if (i >= 0) this.calls.splice(i, 1);
  }

  private move(next: ClientConnectionState): void {
    const prev = this.state;
    this.state = next;
    this.onTransition(this, prev, next);
  }
}

/** A pool over fake connections and a fake clock, and what it told its owner. */
export interface FakePool {
  pool: Pool;
  clock: FakeClock;
  /** Every connection the pool made, in order. */
  made: FakeConnection[];
  /** The connections made to `host:port`. */
  to(endpoint: string): FakeConnection[];
  /** Times the pool said a connection became ready. */
  readies: () => number;
  /** Errors the pool said retrying will not fix. */
  fatal: RpcError[];
  /** Errors the pool gave when every endpoint became known down. */
  down: RpcError[];
}

/** Pool options as a client would fill them, with a jitter-free backoff (100 ms, x2, up to 1000 ms). */
export function fakePoolOptions(overrides: Partial<PoolOptions> = {}): PoolOptions {
  const protocol = poolProtocol();
  const o = resolveClientOptions({ protocol, endpoints: ['127.0.0.1:1'] });
  return {
    protocol,
    connection: o,
    connectionsPerEndpoint: 1,
    balancer: leastConnections({ random: () => 0.5 }),
    backoff: { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0 },
    ejectAfterFailures: 3,
    ejectMs: 1000,
    ejectIntervalMs: 0,
    ejectFailurePercent: 50,
    ejectMinCalls: 10,
    maxEjectedPercent: 50,
    ...overrides,
  };
}

/** A pool over `endpoints` (`host:port`) with fake connections. */
export function fakePool(endpoints: string[], overrides: Partial<PoolOptions> = {}, onReady: () => void = () => {}): FakePool {
  const clock = new FakeClock();
  const made: FakeConnection[] = [];
  const fatal: RpcError[] = [];
  const down: RpcError[] = [];
  let readies = 0;
  const options = fakePoolOptions(overrides);
  const pool = new Pool(
    options,
    new ResolverCache(options.protocol, 4),
    () => {
      readies++;
      onReady();
    },
    (e) => fatal.push(e),
    {
      clock,
      connect: (target, onTransition) => {
        const c = new FakeConnection(target, onTransition);
        made.push(c);
        return c;
      },
    },
    (e) => down.push(e),
  );
  pool.setEndpoints(
    endpoints.map((e) => {
      const [host, port] = e.split(':');
      return { host: host!, port: Number(port) };
    }),
  );
  return { pool, clock, made, to: (e) => made.filter((c) => c.endpointKey === e), readies: () => readies, fatal, down };
}

/** A balancer that picks a connection to `endpoint` whenever one is offered. */
export const prefer =
  (endpoint: string): Balancer =>
  (cs) =>
    cs.find((c) => c.endpointKey === endpoint) ?? cs[0]!;
