import type { ResolverCache } from '../codec/resolver-cache.js';
import { ClientConnection, type ClientConnectionOptions, type EndpointState } from '../connection/client-connection.js';
import type { RpcError } from '../errors/rpc-error.js';
import { Code } from '../errors/code.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import type { Balancer } from './balancer.js';
import { nextEjection } from './ejection.js';
import type { Protocol } from '../codec/protocol.js';

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
}

/** One endpoint's connections and health. */
interface Slot {
  readonly state: EndpointState;
  readonly host: string;
  readonly port: number;
  readonly conns: ClientConnection[];
  readonly backoff: Backoff;
  reconnectTimer: NodeJS.Timeout | undefined;
  ejections: number;
  ejectedUntil: number;
  ejectTimer: NodeJS.Timeout | undefined;
  lastError: RpcError | undefined;
}

/**
 * The client's sockets: `connectionsPerEndpoint` per endpoint, reconnected with exponential backoff
 * and jitter, endpoints with consecutive failures ejected for a while (outlier detection), sockets
 * that received GOAWAY left to finish. Publishes an immutable snapshot of the usable connections,
 * rebuilt only when something changes, and lets the balancer pick from it.
 */
export class Pool {
  private readonly slots = new Map<string, Slot>();
  private snapshot: readonly ClientConnection[] | null = null;
  private readonly seenReady = new WeakSet<ClientConnection>();
  private started = false;
  private closed = false;

  constructor(
    private readonly options: PoolOptions,
    private readonly cache: ResolverCache,
    /** Told when a connection becomes ready (queued calls can go). */
    private readonly onReady: () => void,
    /** Told when a connection was refused for a reason retrying will not fix (auth, limits, protocol). */
    private readonly onFatal: (error: RpcError) => void = () => {},
  ) {}

  /** The connection for the next call, preferring endpoints other than `avoid`; undefined if none is ready. */
  pick(avoid?: string): ClientConnection | undefined {
    let snap = this.snapshot ?? this.rebuild();
    if (snap.length === 0) {
      this.start();
      return undefined;
    }
    if (avoid !== undefined && snap.length > 1) {
      const others = snap.filter((c) => c.endpointKey !== avoid);
      if (others.length > 0) snap = others;
    }
    return this.options.balancer(snap) as ClientConnection;
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
      if (slot !== undefined) slot.state.weight = e.weight ?? 1;
      else this.addSlot(key, e);
    }
    this.snapshot = null;
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
    const now = performance.now();
    return [...this.slots.values()].map((slot) => {
      let ready = 0;
      let inFlight = 0;
      for (const c of slot.conns) {
        if (c.state === 'ready') ready++;
        inFlight += c.inFlight;
      }
      return {
        endpoint: slot.state.key, connections: slot.conns.length, ready, inFlight,
        latencyEwmaMs: slot.state.latencyEwmaMs, ejected: slot.ejectedUntil > now,
        lastError: slot.lastError?.message,
      };
    });
  }

  /** Closes every socket once its in-flight calls finish. */
  async close(): Promise<void> {
    this.closed = true;
    const closing: Promise<void>[] = [];
    for (const [key, slot] of this.slots) closing.push(...this.removeSlot(key, slot));
    await Promise.all(closing);
  }

  private start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    for (const slot of this.slots.values()) this.refill(slot);
  }

  private addSlot(key: string, e: PoolEndpoint): void {
    const state: EndpointState = {
      key, weight: e.weight ?? 1, serverFingerprint: null, sendProtocol: false, latencyEwmaMs: 0, consecutiveFailures: 0,
    };
    const slot: Slot = {
      state, host: e.host, port: e.port, conns: [], backoff: new Backoff(this.options.backoff),
      reconnectTimer: undefined, ejections: 0, ejectedUntil: 0, ejectTimer: undefined, lastError: undefined,
    };
    this.slots.set(key, slot);
    if (this.started) this.refill(slot);
  }

  private removeSlot(key: string, slot: Slot): Promise<void>[] {
    this.slots.delete(key);
    clearTimeout(slot.reconnectTimer);
    clearTimeout(slot.ejectTimer);
    this.snapshot = null;
    return slot.conns.map((c) => c.close());
  }

  private refill(slot: Slot): void {
    slot.reconnectTimer = undefined;
    if (this.closed || this.slots.get(slot.state.key) !== slot) return;
    let live = 0;
    for (const c of slot.conns) if (c.state === 'connecting' || c.state === 'ready') live++;
    for (; live < this.options.connectionsPerEndpoint; live++) {
      slot.conns.push(new ClientConnection(
        slot.host, slot.port, this.options.protocol, this.cache, slot.state, this.options.connection, this.onChange,
      ));
    }
  }

  private readonly onChange = (conn: ClientConnection): void => {
    this.snapshot = null;
    const slot = this.slots.get(conn.endpoint.key);
    if (slot === undefined || !slot.conns.includes(conn)) return;
    if (conn.state === 'ready') {
      // Also called for every failed call on a ready socket: only the first time is "became ready".
      if (this.seenReady.has(conn)) return this.maybeEject(slot);
      this.seenReady.add(conn);
      slot.backoff.reset();
      slot.lastError = undefined;
      slot.state.consecutiveFailures = 0;
      this.onReady();
    } else if (conn.state === 'closed' || conn.state === 'draining') {
      if (conn.state === 'closed') slot.conns.splice(slot.conns.indexOf(conn), 1);
      if (conn.closeError !== undefined) {
        slot.lastError = conn.closeError;
        if (conn.closeError.code !== Code.UNAVAILABLE && conn.state === 'closed' && !conn.wasReady) this.onFatal(conn.closeError);
      }
      if (slot.reconnectTimer === undefined && !this.closed) {
        // A socket that never got ready is a failed attempt: back off, from the first failure on (the
        // connection counts its failure only after telling us it closed). One that worked is replaced at once.
        const failed = conn.closeError !== undefined && (!conn.wasReady || slot.state.consecutiveFailures > 0);
        const delay = failed ? slot.backoff.fail() : 0;
        slot.reconnectTimer = setTimeout(() => this.refill(slot), delay);
        slot.reconnectTimer.unref();
      }
    }
    this.maybeEject(slot);
  };

  private maybeEject(slot: Slot): void {
    const now = performance.now();
    if (slot.state.consecutiveFailures < this.options.ejectAfterFailures || slot.ejectedUntil > now) return;
    // Only endpoints that accept connections but fail calls are outliers; unreachable ones back off instead.
    if (!slot.conns.some((c) => c.state === 'ready')) return;
    const { ejections, ejectedUntil, ms } = nextEjection(slot, now, this.options.ejectMs);
    slot.ejections = ejections;
    slot.ejectedUntil = ejectedUntil;
    slot.state.consecutiveFailures = 0;
    clearTimeout(slot.ejectTimer);
    slot.ejectTimer = setTimeout(() => { this.snapshot = null; }, ms);
    slot.ejectTimer.unref();
  }

  private rebuild(): readonly ClientConnection[] {
    const now = performance.now();
    const healthy: ClientConnection[] = [];
    const ejected: ClientConnection[] = [];
    for (const slot of this.slots.values()) {
      const into = slot.ejectedUntil > now ? ejected : healthy;
      for (const c of slot.conns) if (c.state === 'ready') into.push(c);
    }
    // Never eject everything: a degraded endpoint beats none.
    const snap = Object.freeze(healthy.length > 0 ? healthy : ejected);
    this.snapshot = snap;
    return snap;
  }
}
