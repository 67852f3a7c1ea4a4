import type { Socket } from 'node:net';
import type { Protocol } from '../codec/protocol.js';
import type { ResolverCache } from '../codec/resolver-cache.js';
import { FramedSocket } from '../connection/framed-socket.js';
import type { FramedSocketOptions } from '../connection/framed-socket-options.js';
import { Lifecycle } from '../connection/lifecycle.js';
import { readRemoteError } from '../connection/payload.js';
import { Code, errorCode } from '../errors/code.js';
import { protocolError, unexpectedFrame } from '../errors/protocol-error.js';
import { RpcError } from '../errors/rpc-error.js';
import { readGoaway } from '../framing/bodies.js';
import { FrameType, idAfter } from '../framing/frame.js';
import type { Logger, RpcObserver } from '../observability/observer.js';
import { logClose } from '../observability/log-policy.js';
import { CallTable, type ClientCall } from './call-table.js';
import { ClientHandshake, type ClientHandshakeOptions, type HandshakeMemory } from './client-handshake.js';
import { ClientSession } from './client-session.js';
import type { ClientStream } from './client-stream.js';
import type { ConnectFailure } from './connect-failure.js';
import type { EndpointHealth } from './endpoint-health.js';

/** Filled options of a {@link ClientConnection}. */
export interface ClientConnectionOptions
  extends Omit<FramedSocketOptions, 'expectPreface' | 'pauseReadsWhenBlocked'>, ClientHandshakeOptions {
  /** Opens the socket (plain TCP by default; TLS plugs in here). */
  dial: (host: string, port: number) => Socket;
  /** Told of bytes in and out, and of connections. */
  observer?: RpcObserver | undefined;
  /** Told why the connection closed (levels in `observability/log-policy`). */
  logger?: Logger | undefined;
}

/** Where a connection goes, and what it shares with the other connections to that endpoint. */
export interface ConnectionTarget {
  readonly host: string;
  readonly port: number;
  /** Told how each call ended; read by balancers. */
  readonly health: EndpointHealth;
  /** Handshake shortcuts learnt by earlier connections. */
  readonly memory: HandshakeMemory;
}

/** Lifecycle: one string, moved only by the connection's `Lifecycle`. */
export type ClientConnectionState = 'connecting' | 'ready' | 'draining' | 'closed';

/** Told of every state change of a connection, with the state it left (the pool listens). */
export type ConnectionListener<C = ClientConnection> = (conn: C, prev: ClientConnectionState, next: ClientConnectionState) => void;

const LEGAL: Record<ClientConnectionState, readonly ClientConnectionState[]> = {
  connecting: ['ready', 'draining', 'closed'],
  ready: ['draining', 'closed'],
  draining: ['closed'],
  closed: [],
};

/**
 * Each state with its own data. `draining` (after a GOAWAY, or our own close) may come before the
 * handshake completed: it then holds the handshake, and a session once a WELCOME still arrives.
 */
type Phase =
  | { readonly state: 'connecting'; readonly handshake: ClientHandshake }
  | { readonly state: 'ready'; readonly session: ClientSession }
  | {
      readonly state: 'draining';
      handshake: ClientHandshake | undefined;
      session: ClientSession | undefined;
      /** `lastId` of a graceful GOAWAY (code 0): requests sent after it were never run by the server; -1: none. */
      goawayLastId: number;
      /** Why the connection will close, when a GOAWAY said (an error code). */
      error: RpcError | undefined;
    }
  | {
      readonly state: 'closed';
      readonly error: RpcError;
      /** How the connection failed, when it closed before its handshake completed. */
      readonly failure: ConnectFailure | undefined;
      readonly wasReady: boolean;
    };

/**
 * One client socket: a {@link ClientHandshake}, then a {@link ClientSession} serving calls; the call
 * table across both (calls wait in it for the handshake); GOAWAY, and the one place every call goes
 * back to its owner when the connection dies. A pool balances over its `inFlight`.
 */
export class ClientConnection {
  /** The endpoint's health, shared with its other connections: told how each call ended. */
  readonly health: EndpointHealth;
  private phase: Phase;
  private readonly life: Lifecycle<ClientConnectionState>;
  private readonly calls = new CallTable();
  private readonly framed: FramedSocket;
  private readonly observer: RpcObserver | undefined;
  private readonly logger: Logger | undefined;
  /** Judges a timed-out call after this turn's I/O (one function per connection, not one per call). */
  private readonly judge = (id: number, index: number, budgetMs: number, lateMs: number): void =>
    this.timedOut(id, index, budgetMs, lateMs);

  constructor(
    target: ConnectionTarget,
    protocol: Protocol,
    cache: ResolverCache,
    options: ClientConnectionOptions,
    onTransition: ConnectionListener = () => {},
  ) {
    this.health = target.health;
    this.observer = options.observer;
    this.logger = options.logger;
    const socket = options.dial(target.host, target.port);
    this.framed = new FramedSocket(
      socket,
      { ...options, expectPreface: false, pauseReadsWhenBlocked: false },
      {
        onFrame: (type, flags, id, body) => this.onFrame(type as FrameType, flags, id, body),
        onClose: (error) => this.onClose(error),
        onRefused: (type, _flags, id, error) => this.onRefused(type, id, error),
        awaitingReplies: () => this.calls.size > 0,
        admits: (type, flags, id) => this.admits(type, flags, id),
        onPong: (id) => this.session?.onPong(id),
        onWritten: () => {
          if (this.session?.settleWritten() === true) this.endIfDrained();
        },
      },
    );
    const handshake = new ClientHandshake(this.framed, socket, protocol, cache, target.memory, options, `${target.host}:${target.port}`);
    this.phase = { state: 'connecting', handshake };
    this.life = new Lifecycle<ClientConnectionState>(
      'connecting',
      LEGAL,
      'closed',
      (prev, next) => onTransition(this, prev, next),
      'ClientConnection',
    );
  }

  /** The current state. */
  get state(): ClientConnectionState {
    return this.phase.state;
  }

  /** Why the connection closed (or will: an error GOAWAY, a refused WELCOME), once known. */
  get closeError(): RpcError | undefined {
    const p = this.phase;
    if (p.state === 'closed') return p.error;
    if (p.state === 'draining') return p.error ?? p.handshake?.refusal;
    return p.state === 'connecting' ? p.handshake.refusal : undefined;
  }

  /** How the connection failed, when it closed before its handshake completed (for the pool). */
  get failure(): ConnectFailure | undefined {
    return this.phase.state === 'closed' ? this.phase.failure : undefined;
  }

  /** True once the handshake completed (even if the connection closed since). */
  get wasReady(): boolean {
    const p = this.phase;
    return p.state === 'closed' ? p.wasReady : this.session !== undefined;
  }

  /** Calls in flight on this socket, including ones waiting for the handshake. */
  get inFlight(): number {
    return this.calls.size;
  }

  /** `host:port` of the endpoint (for balancers). */
  get endpointKey(): string {
    return this.health.key;
  }

  /** Endpoint weight (for balancers). */
  get weight(): number {
    return this.health.weight;
  }

  /** Endpoint latency EWMA in ms (for balancers). */
  get latencyEwmaMs(): number {
    return this.health.latencyEwmaMs;
  }

  /** Takes a call for an attempt on this socket: written now if ready, after the handshake otherwise. */
  start(call: ClientCall): void {
    call.attempts++;
    call.sent = false;
    call.conn = this;
    this.calls.add(call);
    const p = this.phase;
    if (p.state === 'ready') p.session.send(call);
    // Sent once the handshake is done: by then the reading taken when it was made is stale.
    else call.clockAt = -1;
  }

  /**
   * Takes a call back (`reason`: deadline, cancel): the server is told to stop working on it, and its
   * id is remembered, since its answer may cross our CANCEL. A call that ran out of time is judged
   * once this turn's I/O is read (see {@link timedOut}): it may count against the endpoint.
   */
  detach(call: ClientCall, reason?: RpcError): void {
    if (this.calls.take(call.id) === undefined) return;
    call.conn = null;
    this.framed.discard(call.id);
    if (call.sent) this.session?.cancel(call, reason, this.judge);
    this.endIfDrained();
  }

  /** A call timed out (see `ClientSession.timedOut`); this turn's I/O is read. */
  timedOut(id: number, index: number, budgetMs: number, lateMs: number): void {
    if (this.phase.state === 'closed') return;
    this.session?.timedOut(id, index, budgetMs, lateMs);
  }

  /** Stops taking calls, lets in-flight calls finish, then closes. */
  close(): Promise<void> {
    const p = this.phase;
    if (p.state === 'closed') return Promise.resolve();
    if (p.state !== 'draining') this.drain(undefined, -1);
    // Unary calls end by themselves; an open stream (a watch nobody reads) may never: cancelled.
    for (const call of this.calls.streams()) (call.ext as ClientStream).cancel(new RpcError(Code.CANCELLED, 'client closed'));
    const done = this.life.closed();
    if (this.calls.size === 0) this.framed.end();
    return done;
  }

  /** Closes at once; calls in flight go back to their owners with `error`. */
  destroy(error: RpcError): void {
    this.framed.destroy(error);
  }

  /** The session serving calls, once the handshake completed and until the connection closed. */
  private get session(): ClientSession | undefined {
    const p = this.phase;
    return p.state === 'ready' || p.state === 'draining' ? p.session : undefined;
  }

  private enter(phase: Phase): void {
    this.phase = phase;
    this.life.transition(phase.state);
  }

  /** To `draining` (from connecting or ready), keeping what the connection has so far. */
  private drain(error: RpcError | undefined, goawayLastId: number): void {
    const p = this.phase;
    if (p.state === 'connecting') this.enter({ state: 'draining', handshake: p.handshake, session: undefined, goawayLastId, error });
    else if (p.state === 'ready') this.enter({ state: 'draining', handshake: undefined, session: p.session, goawayLastId, error });
  }

  private onFrame(type: FrameType, flags: number, id: number, body: Buffer): void {
    switch (type) {
      case FrameType.RESPONSE: {
        const s = this.session;
        if (s === undefined) return this.strayBeforeHandshake(id);
        s.onResponse(flags, id, body);
        return this.endIfDrained();
      }
      // Stream frames (SPEC.md section 13): HEADERS for any call, the rest for streams.
      case FrameType.HEADERS:
      case FrameType.DATA:
      case FrameType.END:
      case FrameType.CREDIT: {
        const s = this.session;
        if (s === undefined) return this.strayBeforeHandshake(id);
        if (type === FrameType.HEADERS) s.streams.onHeaders(id, body);
        else if (type === FrameType.DATA) s.streams.onData(flags, id, body);
        else if (type === FrameType.CREDIT) s.streams.onCredit(id, body);
        else s.streams.onEnd(flags, id, body);
        // END frees its id; a DATA that does not decode fails its stream.
        return this.endIfDrained();
      }
      case FrameType.ERROR: {
        if (id === 0) return this.framed.destroy(readRemoteError(flags, body, undefined, undefined));
        const s = this.session;
        if (s === undefined) return this.strayBeforeHandshake(id);
        s.onError(flags, id, body);
        return this.endIfDrained();
      }
      case FrameType.WELCOME:
        return this.onWelcome(body);
      case FrameType.GOAWAY:
        return this.onGoaway(body);
      // A client's frames, never a server's. PING, PONG, CONTINUATION and WINDOW are the FramedSocket's: they never reach here.
      case FrameType.HELLO:
      case FrameType.REQUEST:
      case FrameType.CANCEL:
      case FrameType.PING:
      case FrameType.PONG:
      case FrameType.CONTINUATION:
      case FrameType.WINDOW:
        return this.framed.fail(unexpectedFrame(type, 'from server'));
      default:
        return this.framed.fail(unexpectedFrame(type satisfies never, 'from server'));
    }
  }

  private onRefused(type: number, id: number, error: RpcError): void {
    if (type !== FrameType.RESPONSE && type !== FrameType.DATA) return this.framed.fail(unexpectedFrame(type, 'from server'));
    const s = this.session;
    if (s === undefined) return this.strayBeforeHandshake(id);
    s.onRefused(id, error);
    this.endIfDrained();
  }

  private admits(type: number, flags: number, id: number): boolean {
    const s = this.session;
    if (s !== undefined) return s.admits(type, flags, id);
    this.strayBeforeHandshake(id);
    return false;
  }

  /** An answer before WELCOME OK: no call can have gone out yet (SPEC.md section 4). */
  private strayBeforeHandshake(id: number): void {
    this.framed.fail(protocolError(`server sent an answer for request id ${id}, before the handshake completed`));
  }

  private onWelcome(body: Buffer): void {
    const p = this.phase;
    const handshake = p.state === 'connecting' ? p.handshake : p.state === 'draining' ? p.handshake : undefined;
    if (handshake === undefined) return this.framed.fail(protocolError('second WELCOME'));
    const established = handshake.onWelcome(body);
    if (established === undefined) return;
    const session = new ClientSession(
      this,
      this.framed,
      this.calls,
      this.health,
      established.codec,
      established.limits,
      established.negotiated.peerStreamWindow,
    );
    this.observer?.connectionOpened?.(this.health.key);
    if (p.state === 'draining') {
      p.handshake = undefined;
      p.session = session;
    } else {
      this.enter({ state: 'ready', session });
    }
    // Queued while connecting: the table holds them all, unsent, so it says nothing of what the server
    // runs; the server judges its maxConcurrentCalls for these itself.
    for (const call of this.calls.unsent()) session.send(call, false);
    this.endIfDrained();
  }

  private onGoaway(body: Buffer): void {
    let error: RpcError | undefined;
    let lastId = -1;
    try {
      const g = readGoaway(body);
      // Only a graceful GOAWAY's last id is exact, and one for expired credentials (SPEC.md section
      // 11.2), after which the server finishes its calls too; an error GOAWAY may carry 0 while handlers run.
      if (g.code === Code.OK || g.code === Code.UNAUTHENTICATED) lastId = g.lastId;
      else error = new RpcError(errorCode(g.code), g.message, { isRemote: true });
    } catch {
      // A malformed GOAWAY still means "go away".
    }
    const p = this.phase;
    if (p.state === 'draining') {
      if (lastId >= 0) p.goawayLastId = lastId;
      if (error !== undefined) p.error = error;
    } else {
      this.drain(error, lastId);
    }
    if (lastId >= 0) this.withdrawUnstarted();
    this.endIfDrained();
  }

  /**
   * After a graceful GOAWAY: requests not one byte of which went out yet (large ones waiting for a
   * fragment slot or for credit, or being compressed) are taken back and retried elsewhere. Small calls
   * overtake them, so their ids may be at or below `lastId`: left here, a close would count them as
   * possibly run, though the server never saw them (SPEC.md section 6).
   */
  private withdrawUnstarted(): void {
    for (const id of this.framed.discardUnstarted()) {
      const started = this.calls.get(id);
      // A stream whose REQUEST went out, with a request element not yet started: it runs on the server,
      // and its requests were just dropped: it fails, and the server is told (CANCEL).
      if (started !== undefined && started.msg.stream !== undefined && started.ext?.touched === true) {
        const error = new RpcError(Code.UNAVAILABLE, 'server sent GOAWAY while the stream was sending requests');
        this.detach(started, error);
        started.reject(error);
        continue;
      }
      const call = this.calls.take(id);
      // One-way calls are settled once queued; the server refuses them silently.
      if (call === undefined) continue;
      call.conn = null;
      call.avoidEndpoint = this.health.key;
      call.owner.attemptFailed(call, new RpcError(Code.UNAVAILABLE, 'server sent GOAWAY before the request went out'), false);
    }
  }

  private endIfDrained(): void {
    if (this.phase.state === 'draining' && this.calls.size === 0) this.framed.end();
  }

  private onClose(socketError: RpcError): void {
    const p = this.phase;
    if (p.state === 'closed') return;
    const session = this.session;
    const handshake = p.state === 'connecting' ? p.handshake : p.state === 'draining' ? p.handshake : undefined;
    handshake?.stop();
    const wasReady = session !== undefined;
    const goawayLastId = p.state === 'draining' ? p.goawayLastId : -1;
    let error = p.state === 'draining' ? (p.error ?? handshake?.refusal) : handshake?.refusal;
    let failure: ConnectFailure | undefined;
    if (wasReady) this.observer?.connectionClosed?.(this.health.key, socketError.code === Code.UNAVAILABLE ? undefined : socketError);
    else if (error === undefined) ({ error, failure } = handshake!.failed(socketError));
    error ??= socketError;
    if (this.logger !== undefined) logClose(this.logger, 'client', error, wasReady, p.state === 'draining', { endpoint: this.health.key });
    this.enter({ state: 'closed', error, failure, wasReady });
    if (!wasReady || this.calls.size > 0) this.health.connectionFailed();
    session?.closed();
    for (const call of this.calls.drain()) {
      // Lost with the connection; not so when taken back after a graceful GOAWAY, which ran nothing of it.
      // A one-way call still here was never written in full, so the server cannot have run it.
      const mayHaveRun = call.sent && !call.msg.oneWay && !(goawayLastId >= 0 && idAfter(call.id, goawayLastId));
      if (mayHaveRun) this.health.lost();
      call.conn = null;
      call.avoidEndpoint = this.health.key;
      call.owner.attemptFailed(call, error, mayHaveRun);
    }
  }
}
