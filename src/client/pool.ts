import type { ResolverCache } from '../codec/resolver-cache.js';
import type { Protocol } from '../codec/protocol.js';
import { RpcError } from '../errors/rpc-error.js';
import { Code } from '../errors/code.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import type { Balancer } from './balancer.js';
import type { HandshakeMemory } from './client-handshake.js';
import {
  ClientConnection,
  type ClientConnectionOptions,
  type ClientConnectionState,
  type ConnectionListener,
} from './client-connection.js';
import { EndpointHealth } from './endpoint-health.js';
import { OutlierDetector, type OutlierStats } from './outlier-detector.js';
import {
  QUEUE,
  realClock,
  type ConnectionFactory,
  type PickResult,
  type PoolClock,
  type PoolSeams,
  type PooledConnection,
} from './pool-contract.js';

/** An endpoint the pool should keep connections to. */
export interface PoolEndpoint {
  host: string;
  port: number;
  /** Balancing weight (default 1). */
  weight?: number;
}

/** What `client.stats()` reports per endpoint. */
export interface EndpointStats {
  /** `host:port`. */
  endpoint: string;
  /** Sockets open or opening. */
  connections: number;
  /** Sockets ready for calls. */
  ready: number;
  /** Calls in flight on this endpoint. */
  inFlight: number;
  /** Latency EWMA in ms. */
  latencyEwmaMs: number;
  /** Ejected by outlier detection right now. */
  ejected: boolean;
  /** Last connection error, if the endpoint is failing. */
  lastError: string | undefined;
}

/** Filled options of a {@link Pool}. */
export interface PoolOptions {
  protocol: Protocol;
  connection: ClientConnectionOptions;
  connectionsPerEndpoint: number;
  balancer: Balancer;
  backoff: BackoffOptions;
  /** Consecutive failures that eject an endpoint from balancing. */
  ejectAfterFailures: number;
  /** First ejection time in ms; doubles for each further ejection, up to 10x, and decays (see `nextEjection`). */
  ejectMs: number;
  /** Outlier-detection interval in ms (failure-percentage ejection, see `OutlierDetector`); 0: off. */
  ejectIntervalMs: number;
  /** Failed share of an endpoint's calls in an interval, in percent, above which it is ejected. */
  ejectFailurePercent: number;
  /** Calls an endpoint must finish in an interval to be judged by its failed share. */
  ejectMinCalls: number;
  /** Endpoints ejected at once at most, in percent of all endpoints. */
  maxEjectedPercent: number;
}

/**
 * Consecutive connection attempts to an endpoint that the peer closed during the handshake without a
 * byte (`suspect` in client/connect-failure.ts) after which it counts as failing for good.
 */
const SUSPECT_ATTEMPTS = 3;

/** One endpoint's connections and health. */
interface Slot {
  readonly key: string;
  readonly host: string;
  readonly port: number;
  /** Balancing figures and call outcomes, shared by its connections. */
  readonly health: EndpointHealth;
  /** Handshake shortcuts, shared by its connections. */
  readonly memory: HandshakeMemory;
  readonly conns: PooledConnection[];
  readonly backoff: Backoff;
  reconnectTimer: unknown;
  /** Its calls' outcomes in the interval and its ejection history (outlier detection). */
  readonly outliers: OutlierStats;
  ejectTimer: unknown;
  lastError: RpcError | undefined;
  /**
   * Failed connection attempts in a row that retrying will not fix: `SUSPECT_ATTEMPTS` as soon as one
   * failed for good (TLS, not avrpc), +1 per suspect one, back to 0 on a transient failure or success.
   */
  badAttempts: number;
  /** The last failed attempt was a suspect one (it counts only in a row). */
  lastSuspect: boolean;
  /**
   * Known down (gRPC's TRANSIENT_FAILURE): its last connection attempt failed and no connection is
   * ready. Stays so while it reconnects, until a connection is ready; a lost connection alone does not
   * make it down (its reconnect is in progress: CONNECTING), nor a server's own "retry later" refusal.
   */
  down: boolean;
}

/**
 * The client's sockets: `connectionsPerEndpoint` per endpoint, reconnected with exponential backoff
 * and jitter, endpoints with consecutive failures ejected for a while (outlier detection), sockets
 * that received GOAWAY left to finish. Publishes an immutable snapshot of the usable connections,
 * rebuilt only when something changes, and lets the balancer pick from it.
 */
export class Pool {
  private readonly slots = new Map<string, Slot>();
  private snapshot: readonly PooledConnection[] | null = null;
  private started = false;
  private closed = false;
  private readonly detector: OutlierDetector;
  private intervalTimer: unknown;
  private readonly connect: ConnectionFactory;
  private readonly clock: PoolClock;
  /** The one `pick` result, reused (a pick allocates nothing). */
  private readonly picked: { readonly type: 'pick'; conn: PooledConnection } = { type: 'pick', conn: null! };

  constructor(
    private readonly options: PoolOptions,
    cache: ResolverCache,
    /** Told when a connection becomes ready (queued calls can go). */
    private readonly onReady: () => void,
    /** Told when a connection was refused for a reason retrying will not fix (auth, limits, protocol). */
    private readonly onFatal: (error: RpcError) => void = () => {},
    seams: PoolSeams = {},
    /** Told when every endpoint became known down (queued calls that do not wait for ready fail). */
    private readonly onDown: (error: RpcError) => void = () => {},
  ) {
    const o = options;
    this.clock = seams.clock ?? realClock;
    this.connect =
      seams.connect ??
      ((target, onTransition) =>
        new ClientConnection(target, o.protocol, cache, o.connection, onTransition as ConnectionListener<ClientConnection>));
    this.detector = new OutlierDetector(
      {
        failurePercent: o.ejectFailurePercent,
        minCalls: o.ejectMinCalls,
        maxEjectedPercent: o.maxEjectedPercent,
        ejectMs: o.ejectMs,
      },
      o.protocol.messages.length,
    );
  }

  /**
   * Where the next call goes, preferring endpoints other than `avoid`: a ready connection; else
   * `fail` when every endpoint fails for good (see {@link failingForGood}); else `down` when every
   * endpoint is known down (see {@link knownDown}); else `queue` (connections are being made; the
   * first pick starts the pool).
   */
  pick(avoid?: string): PickResult {
    let snap = this.snapshot ?? this.rebuild();
    if (snap.length === 0) {
      this.start();
      const error = this.failingForGood();
      if (error !== undefined) return { type: 'fail', error };
      const down = this.knownDown();
      return down === undefined ? QUEUE : { type: 'down', error: down };
    }
    if (avoid !== undefined && snap.length > 1) {
      const others = snap.filter((c) => c.endpointKey !== avoid);
      if (others.length > 0) snap = others;
    }
    this.picked.conn = this.options.balancer(snap) as PooledConnection;
    return this.picked;
  }

  /** Replaces the set of endpoints: new ones are connected, removed ones drained. */
  setEndpoints(endpoints: readonly PoolEndpoint[]): void {
    if (this.closed) return;
    const wanted = new Map(endpoints.map((e) => [`${e.host}:${e.port}`, e]));
    for (const [key, slot] of this.slots) {
      if (!wanted.has(key)) this.removeSlot(key, slot);
    }
    for (const [key, e] of wanted) {
      const slot = this.slots.get(key);
      if (slot !== undefined) slot.health.weight = e.weight ?? 1;
      else this.addSlot(key, e);
    }
    this.snapshot = null;
  }

  /**
   * When every endpoint is failing for good (its last attempts failed for a reason retrying will not
   * fix, and it has no connection up): the UNAVAILABLE error to fail calls with instead of waiting for
   * a connection. Undefined otherwise, or with no endpoint known.
   */
  failingForGood(): RpcError | undefined {
    let last: Slot | undefined;
    for (const slot of this.slots.values()) {
      if (slot.badAttempts < SUSPECT_ATTEMPTS || slot.lastError === undefined) return undefined;
      last = slot;
    }
    if (last === undefined) return undefined;
    const e = last.lastError!;
    const n = this.slots.size;
    const times = last.lastSuspect ? ` (${last.badAttempts} attempts in a row)` : '';
    if (n === 1 && !last.lastSuspect) return e;
    const what =
      n === 1 ? `${e.message}${times}` : `all ${n} endpoints fail in ways retrying will not fix; ${last.key}: ${e.message}${times}`;
    return new RpcError(e.code === Code.UNAUTHENTICATED ? e.code : Code.UNAVAILABLE, what, { cause: e });
  }

  /**
   * When every endpoint is known down (its last connection attempt failed, and none has a connection
   * ready): the error (UNAVAILABLE, or the code the endpoints' connection errors share) that calls not
   * waiting for ready fail with at once. Undefined
   * otherwise, or with no endpoint known (discovery may still bring some).
   */
  knownDown(): RpcError | undefined {
    let last: Slot | undefined;
    // The code of the endpoints' connection errors when they agree (a server refusing our credentials
    // says UNAUTHENTICATED, as gRPC's fail-fast reports the connection's status), else UNAVAILABLE.
    let code: Code | undefined;
    for (const slot of this.slots.values()) {
      if (!slot.down) return undefined;
      const c = slot.lastError?.code ?? Code.UNAVAILABLE;
      code = code === undefined || code === c ? c : Code.UNAVAILABLE;
      last = slot;
    }
    if (last === undefined) return undefined;
    const n = this.slots.size;
    const why = last.lastError?.message ?? 'connection failed';
    const what = n === 1 ? `${last.key} is down: ${why}` : `all ${n} endpoints are down; ${last.key}: ${why}`;
    return new RpcError(code ?? Code.UNAVAILABLE, what, { cause: last.lastError });
  }

  /** True when a connection to an endpoint other than `key` is ready for calls now (hedging goes there). */
  otherEndpointReady(key: string | undefined): boolean {
    const snap = this.snapshot ?? this.rebuild();
    for (const c of snap) if (c.endpointKey !== key) return true;
    return false;
  }

  /** The last connection error of any endpoint (to explain why no connection is ready). */
  lastError(): RpcError | undefined {
    for (const slot of this.slots.values()) if (slot.lastError !== undefined) return slot.lastError;
    return undefined;
  }

  /** Number of endpoints known. */
  get endpointCount(): number {
    return this.slots.size;
  }

  /** A point-in-time view of every endpoint, for observability. */
  stats(): EndpointStats[] {
    const now = this.clock.now();
    return [...this.slots.values()].map((slot) => {
      let ready = 0;
      let inFlight = 0;
      for (const c of slot.conns) {
        if (c.state === 'ready') ready++;
        inFlight += c.inFlight;
      }
      return {
        endpoint: slot.key,
        connections: slot.conns.length,
        ready,
        inFlight,
        latencyEwmaMs: slot.health.latencyEwmaMs,
        ejected: slot.outliers.ejectedUntil > now,
        lastError: slot.lastError?.message,
      };
    });
  }

  /** Closes every socket once its in-flight calls finish. */
  async close(): Promise<void> {
    this.closed = true;
    this.clock.clearInterval(this.intervalTimer);
    const closing: Promise<void>[] = [];
    for (const [key, slot] of this.slots) closing.push(...this.removeSlot(key, slot));
    await Promise.all(closing);
  }

  private start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    if (this.options.ejectIntervalMs > 0)
      this.intervalTimer = this.clock.setInterval(() => this.endInterval(), this.options.ejectIntervalMs);
    for (const slot of this.slots.values()) this.refill(slot);
  }

  /** Every `ejectIntervalMs`: failure-percentage ejection over the interval that ends. */
  private endInterval(): void {
    const now = this.clock.now();
    const ejected = this.detector.evaluate(now, (h) => {
      const slot = this.slots.get(h.key);
      return slot !== undefined && slot.outliers === h && slot.conns.some((c) => c.state === 'ready');
    });
    for (const { health, ms } of ejected) this.ejected(this.slots.get(health.key)!, ms);
  }

  /** Out of rotation for `ms`: the snapshot is rebuilt now and when the ejection ends. */
  private ejected(slot: Slot, ms: number): void {
    slot.health.resetFailures();
    this.clock.clearTimeout(slot.ejectTimer);
    slot.ejectTimer = this.clock.setTimeout(() => {
      this.snapshot = null;
    }, ms);
    this.snapshot = null;
  }

  private addSlot(key: string, e: PoolEndpoint): void {
    const outliers = this.detector.add(key);
    const slot: Slot = {
      key,
      host: e.host,
      port: e.port,
      // A call failure may eject the endpoint at once (consecutive failures).
      health: new EndpointHealth(key, e.weight ?? 1, outliers, () => this.maybeEject(slot)),
      memory: { serverFingerprint: null, sendProtocol: false },
      conns: [],
      backoff: new Backoff(this.options.backoff),
      reconnectTimer: undefined,
      outliers,
      ejectTimer: undefined,
      lastError: undefined,
      badAttempts: 0,
      lastSuspect: false,
      down: false,
    };
    this.slots.set(key, slot);
    if (this.started) this.refill(slot);
  }

  private removeSlot(key: string, slot: Slot): Promise<void>[] {
    this.slots.delete(key);
    this.detector.remove(slot.outliers);
    this.clock.clearTimeout(slot.reconnectTimer);
    this.clock.clearTimeout(slot.ejectTimer);
    this.snapshot = null;
    return slot.conns.map((c) => c.close());
  }

  private refill(slot: Slot): void {
    slot.reconnectTimer = undefined;
    if (this.closed || this.slots.get(slot.key) !== slot) return;
    let live = 0;
    for (const c of slot.conns) if (c.state === 'connecting' || c.state === 'ready') live++;
    for (; live < this.options.connectionsPerEndpoint; live++) slot.conns.push(this.connect(slot, this.onTransition));
  }

  private readonly onTransition = (conn: PooledConnection, _prev: ClientConnectionState, next: ClientConnectionState): void => {
    this.snapshot = null;
    const slot = this.slots.get(conn.endpointKey);
    if (slot === undefined || !slot.conns.includes(conn)) return;
    if (next === 'ready') {
      slot.backoff.reset();
      slot.lastError = undefined;
      slot.badAttempts = 0;
      slot.down = false;
      slot.health.resetFailures();
      this.onReady();
    } else if (next === 'closed' || next === 'draining') {
      if (next === 'closed') slot.conns.splice(slot.conns.indexOf(conn), 1);
      const closeError = conn.closeError;
      if (closeError !== undefined) {
        slot.lastError = closeError;
        if (next === 'closed' && !conn.wasReady) {
          const kind = conn.failure;
          slot.badAttempts =
            kind === 'permanent' ? Math.max(SUSPECT_ATTEMPTS, slot.badAttempts + 1) : kind === 'suspect' ? slot.badAttempts + 1 : 0;
          slot.lastSuspect = kind === 'suspect';
          // A server that refused the handshake with GOAWAY UNAVAILABLE (a handshake cap: retry later) is
          // up, shedding load: its calls wait for the reconnect, as in a herd reconnecting after a restart.
          const shedding = closeError.isRemote && closeError.code === Code.UNAVAILABLE;
          slot.down = !shedding && !slot.conns.some((c) => c.state === 'ready');
          const forGood = this.failingForGood();
          if (closeError.code !== Code.UNAVAILABLE) this.onFatal(closeError);
          else if (forGood !== undefined) this.onFatal(forGood);
          else if (slot.down) {
            const down = this.knownDown();
            if (down !== undefined) this.onDown(down);
          }
        }
      }
      if (slot.reconnectTimer === undefined && !this.closed) {
        // A socket that never got ready is a failed attempt: back off, from the first failure on (the
        // connection counts its failure only after telling us it closed). One that worked is replaced at once.
        const failed = closeError !== undefined && (!conn.wasReady || slot.health.consecutiveFailures > 0);
        const delay = failed ? slot.backoff.fail() : 0;
        slot.reconnectTimer = this.clock.setTimeout(() => this.refill(slot), delay);
      }
    }
    this.maybeEject(slot);
  };

  private maybeEject(slot: Slot): void {
    if (this.slots.get(slot.key) !== slot) return;
    const now = this.clock.now();
    if (slot.health.consecutiveFailures < this.options.ejectAfterFailures || slot.outliers.ejectedUntil > now) return;
    // Only endpoints that accept connections but fail calls are outliers; unreachable ones back off instead.
    if (!slot.conns.some((c) => c.state === 'ready')) return;
    const ms = this.detector.eject(slot.outliers, now);
    if (ms > 0) this.ejected(slot, ms);
  }

  private rebuild(): readonly PooledConnection[] {
    const now = this.clock.now();
    const healthy: PooledConnection[] = [];
    const ejected: PooledConnection[] = [];
    for (const slot of this.slots.values()) {
      const into = slot.outliers.ejectedUntil > now ? ejected : healthy;
      for (const c of slot.conns) if (c.state === 'ready') into.push(c);
    }
    // Never eject everything: a degraded endpoint beats none.
    const snap = Object.freeze(healthy.length > 0 ? healthy : ejected);
    this.snapshot = snap;
    return snap;
  }
}
