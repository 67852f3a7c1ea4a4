import type { Socket } from 'node:net';
import type { PeerCodec } from '../codec/peer-codec.js';
import { invalidRequest } from '../codec/invalid-value.js';
import type { Protocol } from '../codec/protocol.js';
import type { ResolverCache } from '../codec/resolver-cache.js';
import { Code, errorCode } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { readGoaway, requestFlags, writeRequest, type RequestDraft } from '../framing/bodies.js';
import { Flag, FrameType, idAfter } from '../framing/frame.js';
import { accepted, offer, type Negotiated } from '../framing/extensions.js';
import { TOKEN_META_KEY } from '../security/auth.js';
import type { Logger, RpcObserver } from '../observability/observer.js';
import { logClose } from '../observability/log-policy.js';
import { readyEvent } from '../security/tls.js';
import { CallTable, type ClientCall, type WriteFence } from './call-table.js';
import { CancelledIds } from './cancelled-ids.js';
import { connectFailureKind, permanentFailure, type ConnectFailure } from './connect-failure.js';
import { handshakeFailure, hello, helloFits, readWelcome, writeHello, type HandshakeMemory } from './client-handshake.js';
import { FramedSocket } from '../connection/framed-socket.js';
import type { FramedSocketOptions } from '../connection/framed-socket-options.js';
import { decodeExact, readRemoteError } from '../connection/payload.js';

/** Room a WELCOME needs beyond its protocol text: fingerprint, union indexes, the server's meta (extensions). */
const WELCOME_OVERHEAD_BYTES = 64 * 1024;

/** Filled options of a {@link ClientConnection}. */
export interface ClientConnectionOptions extends Omit<FramedSocketOptions, 'expectPreface' | 'pauseReadsWhenBlocked'> {
  /** Time allowed for TCP connect plus handshake, in ms. */
  connectTimeoutMs: number;
  /** Largest server protocol text accepted in a WELCOME, in UTF-8 bytes. */
  maxProtocolBytes: number;
  /** Opens the socket (plain TCP by default; TLS plugs in here). */
  dial: (host: string, port: number) => Socket;
  /** Token for the handshake, fetched per connection. */
  credentials: (() => string | Promise<string>) | undefined;
  /** Told of bytes in and out, and of connections. */
  observer?: RpcObserver | undefined;
  /** Told why the connection closed (levels in `observability/log-policy`). */
  logger?: Logger | undefined;
}

/**
 * What the client knows about one endpoint, shared by its connections: handshake shortcuts and the
 * health figures a balancer and outlier detection read.
 */
export interface EndpointState extends HandshakeMemory {
  /** `host:port`. */
  readonly key: string;
  /** Weight from the registry (default 1). */
  weight: number;
  /** EWMA of call latency in ms. */
  latencyEwmaMs: number;
  /** Failed calls and connections since the last success. */
  consecutiveFailures: number;
  /** Told how each call ended, for outlier detection (the arithmetic is the client's: client/outlier-detector.ts). */
  outcomes?: CallOutcomes;
}

/** Where a connection reports how its calls ended on the endpoint. */
export interface CallOutcomes {
  /** The server answered a call of message `index` (a RESPONSE, or an ERROR other than UNAVAILABLE and INTERNAL) `latencyMs` after it was sent. */
  answered(index: number, latencyMs: number): void;
  /** A call failed on the server's side: ERROR UNAVAILABLE or INTERNAL, lost with its connection, or timed out while the server left our PING unanswered. */
  failed(): void;
  /**
   * A call of message `index`, sent with `budgetMs` left before its deadline, ran out of time with no
   * answer (and our own loop was not to blame). Returns true when this counts as the endpoint's failure.
   */
  timedOut(index: number, budgetMs: number): boolean;
}

/** Lifecycle: one string, moved only by `transition`. */
export type ClientConnectionState = 'connecting' | 'ready' | 'draining' | 'closed';

const LEGAL: Record<ClientConnectionState, readonly ClientConnectionState[]> = {
  connecting: ['ready', 'draining', 'closed'],
  ready: ['draining', 'closed'],
  draining: ['closed'],
  closed: [],
};

/** Weight of the newest sample in the latency EWMA. */
const EWMA_ALPHA = 0.2;
/**
 * A deadline timer this late (or later than half the call's budget) means our own event loop was
 * stalled: the timeout is not held against the server.
 */
const OWN_STALL_MS = 100;
/** A close by the peer this soon after our HELLO, without a byte, is a `suspect` connect failure (connect-failure.ts). */
const SUSPECT_CLOSE_MS = 1000;
/** Largest `timeoutMs` a REQUEST can carry (u32); a caller allowing more sends none (SPEC.md section 4). */
const MAX_WIRE_TIMEOUT_MS = 0xffffffff;

/**
 * One client socket: connects, handshakes, multiplexes calls by request id, and hands every call
 * back to its owner in one place when it dies. A pool balances over its `inFlight`.
 */
export class ClientConnection {
  state: ClientConnectionState = 'connecting';
  /** Why the connection closed, once it has. */
  closeError: RpcError | undefined;
  /** `lastId` of a graceful GOAWAY (code 0): requests sent after it were never run by the server. */
  private goawayLastId = -1;
  private readonly calls = new CallTable();
  /** Ids we sent CANCEL for whose answers may still arrive: dropped unread. Any other unknown id is a protocol error. */
  private readonly cancelled = new CancelledIds();
  /** How the connection failed, when it closed before its handshake completed (for the pool). */
  failure: ConnectFailure | undefined;
  /** The first bytes the server sent: they tell an HTTP or TLS server from an avrpc one when the handshake fails. */
  private firstBytes: Buffer | undefined;
  /** We gave up on the handshake (a silent or stopped server, transient), rather than the peer closing. */
  private connectTimedOut = false;
  /** When our first HELLO was queued (`performance.now()`). */
  private helloAt = 0;
  /** One-way calls queued on the socket and not yet written: they settle once they are (SPEC.md section 4). */
  private unwritten: ClientCall[] = [];
  private readonly framed: FramedSocket;
  private codec: PeerCodec | undefined;
  private sentProtocol = false;
  private prefaceSent = false;
  private connectTimer: NodeJS.Timeout | undefined;
  private readonly closeWaiters: Array<() => void> = [];
  private readonly draft: RequestDraft = { index: 0, timeoutMs: -1, metadata: undefined, type: null!, value: null };
  private meta: Record<string, Buffer> = {};
  private readonly observer: RpcObserver | undefined;
  private readonly logger: Logger | undefined;
  private readonly maxProtocolBytes: number;
  private readonly maxFrameBytes: number;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly protocol: Protocol,
    private readonly cache: ResolverCache,
    /** Shared with the other connections to the same endpoint. */
    readonly endpoint: EndpointState,
    options: ClientConnectionOptions,
    /** Told on every state change and every failure (the pool listens). */
    private readonly onChange: (conn: ClientConnection) => void = () => {},
  ) {
    this.observer = options.observer;
    this.logger = options.logger;
    this.maxProtocolBytes = options.maxProtocolBytes;
    const socket = options.dial(host, port);
    this.framed = new FramedSocket(
      socket,
      { ...options, expectPreface: false, pauseReadsWhenBlocked: false },
      {
        onFrame: (type, flags, id, body) => this.onFrame(type, flags, id, body),
        onClose: (error) => this.onClose(error),
        onRefused: (type, _flags, id, error) =>
          type === FrameType.RESPONSE
            ? this.onRefused(id, error)
            : this.framed.fail(new RpcError(Code.INTERNAL, `protocol error: unexpected frame type ${type} from server`)),
        awaitingReplies: () => this.calls.size > 0,
        admits: (_type, flags, id) => this.admits(flags, id),
        onPong: (id) => this.onPong(id),
        onWritten: () => {
          if (this.unwritten.length > 0) this.settleWritten();
        },
      },
    );
    // Until WELCOME OK only a WELCOME (or a GOAWAY or ERROR) may come, and its protocol text is capped:
    // a hostile server cannot make us buffer maxFrameBytes before that cap is checked.
    this.maxFrameBytes = options.maxFrameBytes;
    const handshakeBytes = Math.min(options.maxFrameBytes, options.maxProtocolBytes + WELCOME_OVERHEAD_BYTES);
    this.framed.limitFrames(handshakeBytes, `the handshake limit (maxProtocolBytes ${options.maxProtocolBytes} + 64 KiB)`);
    this.connectTimer = setTimeout(() => {
      this.connectTimedOut = true;
      this.framed.destroy(new RpcError(Code.UNAVAILABLE, `connect to ${host}:${port} timed out after ${options.connectTimeoutMs} ms`));
    }, options.connectTimeoutMs);
    socket.once(readyEvent(socket), () => this.authenticateThenHello(options.credentials));
    socket.once('data', (chunk: Buffer) => {
      this.firstBytes = Buffer.from(chunk.subarray(0, 32));
    });
  }

  private authenticateThenHello(credentials: ClientConnectionOptions['credentials']): void {
    if (credentials === undefined) return this.sendHello();
    new Promise<string>((resolve) => resolve(credentials()))
      .then((token) => {
        if (typeof token !== 'string') throw new TypeError('credentials() must return a string');
        this.meta = { [TOKEN_META_KEY]: Buffer.from(token, 'utf8') };
        this.sendHello();
      })
      .catch((err: unknown) =>
        this.framed.destroy(
          new RpcError(Code.UNAUTHENTICATED, `credentials failed: ${(err as Error).message ?? String(err)}`, { cause: err }),
        ),
      );
  }

  /** True once the handshake completed (even if the connection closed since). */
  get wasReady(): boolean {
    return this.codec !== undefined;
  }

  /** Calls in flight on this socket, including ones waiting for the handshake. */
  get inFlight(): number {
    return this.calls.size;
  }

  /** `host:port` of the endpoint (for balancers). */
  get endpointKey(): string {
    return this.endpoint.key;
  }

  /** Endpoint weight (for balancers). */
  get weight(): number {
    return this.endpoint.weight;
  }

  /** Endpoint latency EWMA in ms (for balancers). */
  get latencyEwmaMs(): number {
    return this.endpoint.latencyEwmaMs;
  }

  /** Takes a call for an attempt on this socket: written now if ready, after the handshake otherwise. */
  start(call: ClientCall): void {
    call.attempts++;
    call.sent = false;
    call.conn = this;
    this.calls.add(call);
    if (this.state === 'ready') this.send(call);
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
    if (call.sent && !this.framed.isClosed) {
      this.framed.signal(FrameType.CANCEL, call.id);
      this.cancelled.add(call.id);
      if (reason?.code === Code.DEADLINE_EXCEEDED && !call.msg.oneWay) {
        // Judged, and the barrier PING sent, after this turn's I/O: if our own loop was blocked, the answer may be waiting unread.
        setImmediate(judgeTimedOut, this, call.id, call.msg.index, call.deadline - call.sentAt, performance.now() - call.deadline);
      } else {
        this.sendBarrier();
      }
    }
    this.endIfDrained();
  }

  /**
   * A call timed out `lateMs` after its deadline, sent with `budgetMs` to go; this turn's I/O is read.
   * Not the server's failure if its answer was among what we read (our loop was late) or our deadline
   * timer itself was late; the endpoint's failure if the server left our PING unanswered too; otherwise
   * outlier detection decides (`CallOutcomes.timedOut`: only when other endpoints answer in time).
   */
  timedOut(id: number, index: number, budgetMs: number, lateMs: number): void {
    if (this.state === 'closed') return;
    this.sendBarrier();
    if (this.cancelled.answered(id) || lateMs > Math.max(OWN_STALL_MS, budgetMs / 2)) return;
    const outcomes = this.endpoint.outcomes;
    if (this.framed.unanswered) {
      outcomes?.failed();
      this.countFailure();
    } else if (outcomes !== undefined && outcomes.timedOut(index, budgetMs)) {
      this.countFailure();
    }
  }

  /** Stops taking calls, lets in-flight calls finish, then closes. */
  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    if (this.state !== 'draining') this.transition('draining');
    const done = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    if (this.calls.size === 0) this.framed.end();
    return done;
  }

  /** Closes at once; calls in flight go back to their owners with `error`. */
  destroy(error: RpcError): void {
    this.framed.destroy(error);
  }

  private send(call: ClientCall): void {
    const d = this.draft;
    const msg = call.msg;
    const reading = this.codec!.responses[msg.index]!;
    if (reading.incompatible !== undefined) {
      // The server could not read the request, or we could not read its answer: refuse before it runs.
      this.calls.take(call.id);
      call.reject(new RpcError(Code.FAILED_PRECONDITION, `message ${msg.name}: ${reading.incompatible}`));
      return;
    }
    d.index = msg.index;
    let timeoutMs = call.deadline < 0 ? -1 : Math.max(1, Math.ceil(call.deadline - performance.now()));
    if (timeoutMs > MAX_WIRE_TIMEOUT_MS) timeoutMs = -1;
    d.timeoutMs = timeoutMs;
    d.metadata = call.metadata;
    d.type = msg.request;
    d.value = call.request;
    let spliced: boolean;
    try {
      spliced = this.framed.message(FrameType.REQUEST, requestFlags(d) | (msg.oneWay ? Flag.ONE_WAY : 0), call.id, d, writeRequest);
    } catch (err) {
      this.calls.take(call.id);
      call.reject(invalidRequest(msg, call.request, err)!);
      return;
    } finally {
      d.value = null;
    }
    call.sent = true;
    call.sentAt = performance.now();
    // A retry's earlier socket may still be writing the same Buffers: wait for both.
    if (spliced)
      call.writer = call.writer === undefined || call.writer === this.framed ? this.framed : bothWritten(call.writer, this.framed);
    // Its id stays taken until the flush wrote the REQUEST; resolving now would claim a write not made.
    if (msg.oneWay) this.unwritten.push(call);
    else this.framed.expectReply();
  }

  /** After a flush: one-way calls whose REQUEST is now on the socket resolve, and free their id. */
  private settleWritten(): void {
    // A fresh list: settling runs observer hooks, which may start calls (and push here).
    const list = this.unwritten;
    this.unwritten = [];
    for (let i = 0; i < list.length; i++) {
      const call = list[i]!;
      // Settled meanwhile (deadline, cancel), or failed with the connection and sent elsewhere.
      if (call.conn !== this) continue;
      if (this.framed.isWriting(call.id)) {
        this.unwritten.push(call);
        continue;
      }
      this.calls.take(call.id);
      call.resolve(undefined);
    }
    this.endIfDrained();
  }

  private onFrame(type: number, flags: number, id: number, body: Buffer): void {
    switch (type) {
      case FrameType.RESPONSE:
        return this.codec === undefined ? this.stray(id, true) : this.onResponse(id, body);
      case FrameType.ERROR:
        return this.codec === undefined && id !== 0 ? this.stray(id, true) : this.onError(flags, id, body);
      case FrameType.WELCOME:
        return this.onWelcome(body);
      case FrameType.GOAWAY:
        return this.onGoaway(body);
      default:
        this.framed.fail(new RpcError(Code.INTERNAL, `protocol error: unexpected frame type ${type} from server`));
    }
  }

  private onResponse(id: number, body: Buffer): void {
    const call = this.calls.take(id);
    if (call === undefined) return this.stray(id, true);
    const ep = this.endpoint;
    ep.consecutiveFailures = 0;
    const latency = performance.now() - call.sentAt;
    ep.latencyEwmaMs += EWMA_ALPHA * (latency - ep.latencyEwmaMs);
    ep.outcomes?.answered(call.msg.index, latency);
    try {
      call.resolve(decodeExact(call.msg.response, body, 0, this.codec!.responses[call.msg.index]!.response));
    } catch (err) {
      call.reject(new RpcError(Code.INTERNAL, `cannot decode response of ${call.msg.name}: ${(err as Error).message}`, { cause: err }));
    }
    this.endIfDrained();
  }

  private onError(flags: number, id: number, body: Buffer): void {
    const call = id === 0 ? undefined : this.calls.take(id);
    if (id !== 0 && call === undefined) return this.stray(id, true);
    const error = readRemoteError(flags, body, call?.msg, call === undefined ? undefined : this.codec!.responses[call.msg.index]);
    if (call === undefined) return this.framed.destroy(error);
    call.conn = null;
    // A refusal may come while the request is still going out in fragments: stop sending it.
    this.framed.discard(id);
    if (error.code === Code.UNAVAILABLE || error.code === Code.INTERNAL) {
      this.endpoint.outcomes?.failed();
      this.countFailure();
    } else {
      this.endpoint.outcomes?.answered(call.msg.index, performance.now() - call.sentAt);
    }
    call.avoidEndpoint = this.endpoint.key;
    // Only a REFUSED error says no handler ran: a handler may throw UNAVAILABLE itself (a downstream
    // outage) after side effects, so any other UNAVAILABLE may have run.
    if (error.code === Code.UNAVAILABLE) call.owner.attemptFailed(call, error, (flags & Flag.REFUSED) === 0);
    // Our credentials expired on this connection (SPEC.md section 11.2) as the call crossed the server's
    // GOAWAY: it did not run, and a new connection authenticates afresh (or is refused UNAUTHENTICATED).
    else if (error.code === Code.UNAUTHENTICATED && (flags & Flag.REFUSED) !== 0) {
      call.owner.attemptFailed(
        call,
        new RpcError(Code.UNAVAILABLE, `${error.message}: the call did not run`, { cause: error, isRemote: true }),
        false,
      );
    } else call.reject(error, (flags & Flag.REFUSED) === 0);
    this.endIfDrained();
  }

  /** A response refused before decoding (too large, does not inflate): the call fails, the server stops. */
  private onRefused(id: number, error: RpcError): void {
    const call = this.calls.take(id);
    if (call === undefined) return;
    call.conn = null;
    this.framed.discard(id);
    this.framed.signal(FrameType.CANCEL, id);
    // The rest of the refused answer may still come (its fragments): dropped as those of a cancelled call.
    this.cancelled.add(id);
    this.sendBarrier();
    call.reject(error);
    this.endIfDrained();
  }

  /**
   * Whether a fragment, compressed or oversized answer for `id` may be reassembled or inflated: only
   * for a call in flight here. Else {@link stray} drops it or fails the connection, before any buffer
   * is allocated for it or any byte inflated.
   */
  private admits(flags: number, id: number): boolean {
    if (this.codec !== undefined && this.calls.has(id)) return true;
    this.stray(id, (flags & Flag.MORE) === 0);
    return false;
  }

  /**
   * An answer frame (`last`: it ends its message) for an id with no call here. Dropped unread if we
   * cancelled that id and its answer has not ended yet (it crossed our CANCEL); otherwise the server
   * answered an id we never sent, or one already answered: a protocol error (SPEC.md section 4).
   */
  private stray(id: number, last: boolean): void {
    if (this.cancelled.expects(id)) {
      if (last) this.cancelled.ended(id);
      return;
    }
    const why = this.codec === undefined ? 'before the handshake completed' : 'which is not in flight on this connection';
    this.framed.fail(new RpcError(Code.INTERNAL, `protocol error: server sent an answer for request id ${id}, ${why}`));
  }

  /** Sends a barrier PING when cancelled ids wait for one (see `CancelledIds`). */
  private sendBarrier(): void {
    const ping = this.cancelled.barrier();
    if (ping >= 0) this.framed.signal(FrameType.PING, ping);
  }

  private onPong(id: number): void {
    const next = this.cancelled.pong(id);
    if (next < 0 || this.framed.isClosed) return;
    this.framed.signal(FrameType.PING, next);
  }

  private onGoaway(body: Buffer): void {
    try {
      const g = readGoaway(body);
      // Only a graceful GOAWAY's last id is exact, and one for expired credentials (SPEC.md section
      // 11.2), after which the server finishes its calls too; an error GOAWAY may carry 0 while handlers run.
      if (g.code === Code.OK || g.code === Code.UNAUTHENTICATED) {
        this.goawayLastId = g.lastId;
        this.withdrawUnstarted();
      } else {
        this.closeError = new RpcError(errorCode(g.code), g.message, { isRemote: true });
      }
    } catch {
      // A malformed GOAWAY still means "go away".
    }
    if (this.state === 'ready' || this.state === 'connecting') this.transition('draining');
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
      const call = this.calls.take(id);
      // One-way calls are settled once queued; the server refuses them silently.
      if (call === undefined) continue;
      call.conn = null;
      call.avoidEndpoint = this.endpoint.key;
      call.owner.attemptFailed(call, new RpcError(Code.UNAVAILABLE, 'server sent GOAWAY before the request went out'), false);
    }
  }

  private sendHello(withProtocol = this.endpoint.sendProtocol): void {
    const meta = { ...this.meta, ...offer(this.framed.support) };
    // A first HELLO stays within what every server takes before authenticating (SPEC.md section 3).
    if (withProtocol && !this.prefaceSent && !helloFits(this.protocol, meta)) withProtocol = false;
    this.sentProtocol = withProtocol;
    if (!this.prefaceSent) {
      this.framed.preface();
      this.helloAt = performance.now();
    }
    this.prefaceSent = true;
    this.framed.frame(FrameType.HELLO, 0, 0, hello(this.protocol, this.endpoint, withProtocol, meta), writeHello);
  }

  private onWelcome(body: Buffer): void {
    if (this.codec !== undefined) return this.framed.fail(new RpcError(Code.INTERNAL, 'protocol error: second WELCOME'));
    let remote: Protocol;
    let negotiated: Negotiated;
    try {
      const w = readWelcome(body, this.cache, this.endpoint, this.sentProtocol, this.maxProtocolBytes);
      if (w === 'NEED_PROTOCOL') return this.sendHello(true);
      remote = w.remote;
      negotiated = accepted(w.meta, this.framed.support);
    } catch (err) {
      // A server protocol over our limits: its calls fail with that code and message, not as "not avrpc".
      if (err instanceof RpcError && err.code === Code.RESOURCE_EXHAUSTED) {
        this.closeError = err;
        return this.framed.fail(err);
      }
      return this.framed.fail(new RpcError(Code.INTERNAL, `protocol error in handshake: ${(err as Error).message}`, { cause: err }));
    }
    this.codec = this.cache.codec(remote);
    this.framed.established(negotiated, this.maxFrameBytes);
    clearTimeout(this.connectTimer);
    this.observer?.connectionOpened?.(this.endpoint.key);
    if (this.state === 'connecting') this.transition('ready');
    for (const call of this.calls.unsent()) this.send(call);
    this.endIfDrained();
  }

  private endIfDrained(): void {
    if (this.state === 'draining' && this.calls.size === 0) this.framed.end();
  }

  private countFailure(): void {
    this.endpoint.consecutiveFailures++;
    this.onChange(this);
  }

  private onClose(error: RpcError): void {
    clearTimeout(this.connectTimer);
    const wasReady = this.codec !== undefined;
    if (wasReady) this.observer?.connectionClosed?.(this.endpoint.key, error.code === Code.UNAVAILABLE ? undefined : error);
    if (!wasReady && this.closeError === undefined) {
      const endpoint = `${this.host}:${this.port}`;
      // Closed by the peer soon after our HELLO: what a TLS server does to plaintext. An avrpc server closes
      // a handshake only after its handshakeTimeoutMs (or says why in a GOAWAY), which is not a suspect.
      const quickClose = this.prefaceSent && !this.connectTimedOut && performance.now() - this.helloAt < SUSPECT_CLOSE_MS;
      this.failure = connectFailureKind(error, quickClose);
      error =
        this.failure === 'permanent'
          ? permanentFailure(error, endpoint, this.firstBytes)
          : handshakeFailure(error, endpoint, this.prefaceSent);
    }
    this.closeError ??= error;
    if (this.logger !== undefined)
      logClose(this.logger, 'client', this.closeError, wasReady, this.state === 'draining', { endpoint: this.endpoint.key });
    if (this.state !== 'closed') this.transition('closed');
    if (!wasReady || this.calls.size > 0) this.countFailure();
    this.unwritten = [];
    const outcomes = wasReady ? this.endpoint.outcomes : undefined;
    for (const call of this.calls.drain()) {
      // Lost with the connection (not taken back after a graceful GOAWAY, which ran nothing of it).
      if (outcomes !== undefined && call.sent && !call.msg.oneWay && !this.afterGoaway(call.id)) outcomes.failed();
      call.conn = null;
      call.avoidEndpoint = this.endpoint.key;
      // A one-way call still here was never written in full, so the server cannot have run it.
      call.owner.attemptFailed(call, this.closeError, call.sent && !call.msg.oneWay && !this.afterGoaway(call.id));
    }
    for (const w of this.closeWaiters.splice(0)) w();
  }

  /** True when `id` was sent after the last request a graceful GOAWAY accepted (ids wrap at 2^32). */
  private afterGoaway(id: number): boolean {
    return this.goawayLastId >= 0 && idAfter(id, this.goawayLastId);
  }

  private transition(to: ClientConnectionState): void {
    if (!LEGAL[this.state].includes(to)) throw new Error(`ClientConnection: illegal transition ${this.state} -> ${to}`);
    this.state = to;
    this.onChange(this);
  }
}

function judgeTimedOut(conn: ClientConnection, id: number, index: number, budgetMs: number, lateMs: number): void {
  conn.timedOut(id, index, budgetMs, lateMs);
}

/** A fence that passes once both `a` and `b` have written what they were given. */
function bothWritten(a: WriteFence, b: WriteFence): WriteFence {
  return { afterWrites: (cb) => a.afterWrites(() => b.afterWrites(cb)) };
}
