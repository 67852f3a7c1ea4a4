import type { Socket } from 'node:net';
import { createHash } from 'node:crypto';
import type { PeerCodec } from '../codec/peer-codec.js';
import type { MessageDef, Protocol } from '../codec/protocol.js';
import type { ResolverCache } from '../codec/resolver-cache.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import {
  readErrorHead, readGoaway, requestFlags, writeRequest, type Metadata, type RequestDraft,
} from '../framing/bodies.js';
import { Flag, FrameType, PREFACE } from '../framing/frame.js';
import { helloType, readHandshake, welcomeType, writeHandshake, type Hello, type Welcome } from '../framing/handshake.js';
import { CallTable, PendingCall } from './call-table.js';
import { FramedSocket, type FramedSocketOptions } from './framed-socket.js';
import { decodeDeclared, decodeExact } from './payload.js';

/** Filled options of a {@link ClientConnection}. */
export interface ClientConnectionOptions extends Omit<FramedSocketOptions, 'expectPreface' | 'pauseReadsWhenBlocked'> {
  /** Time allowed for TCP connect plus handshake, in ms. */
  connectTimeoutMs: number;
  /** Opens the socket (plain TCP by default; TLS plugs in here). */
  dial: (host: string, port: number) => Socket;
}

/** What the client remembers about an endpoint across connections, to keep handshakes short. */
export interface EndpointMemory {
  serverFingerprint: Buffer | null;
  /** Set once a server asked for our protocol text: send it up front from then on. */
  sendProtocol: boolean;
}

/** Lifecycle: one string, moved only by `transition`. */
export type ClientConnectionState = 'connecting' | 'ready' | 'draining' | 'closed';

const LEGAL: Record<ClientConnectionState, readonly ClientConnectionState[]> = {
  connecting: ['ready', 'draining', 'closed'],
  ready: ['draining', 'closed'],
  draining: ['closed'],
  closed: [],
};

const writeHello = writeHandshake(helloType);

/**
 * One client socket: connects, handshakes, multiplexes calls by request id, and fails every pending
 * call in one place when it dies. A pool counts `inFlight` to balance.
 */
export class ClientConnection {
  state: ClientConnectionState = 'connecting';
  private readonly calls = new CallTable();
  private readonly framed: FramedSocket;
  private codec: PeerCodec | undefined;
  private sentProtocol = false;
  private prefaceSent = false;
  private connectTimer: NodeJS.Timeout | undefined;
  private closeWaiters: Array<() => void> = [];
  private readonly draft: RequestDraft = { index: 0, timeoutMs: -1, metadata: undefined, type: null!, value: null };
  /** Why the connection closed, once it has. */
  closeError: RpcError | undefined;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly protocol: Protocol,
    private readonly cache: ResolverCache,
    private readonly memory: EndpointMemory,
    options: ClientConnectionOptions,
    /** Told when the state changes (the pool listens). */
    private readonly onState: (conn: ClientConnection) => void = () => {},
  ) {
    const socket = options.dial(host, port);
    this.framed = new FramedSocket(socket, { ...options, expectPreface: false, pauseReadsWhenBlocked: false }, {
      onFrame: (type, flags, id, body) => this.onFrame(type, flags, id, body),
      onClose: (error) => this.onClose(error),
    });
    this.connectTimer = setTimeout(() => this.framed.destroy(
      new RpcError(Code.UNAVAILABLE, `connect to ${host}:${port} timed out after ${options.connectTimeoutMs} ms`),
    ), options.connectTimeoutMs);
    socket.once('connect', () => this.sendHello());
  }

  /** Calls in flight on this socket, including ones waiting for the handshake. */
  get inFlight(): number {
    return this.calls.size;
  }

  /**
   * Starts a call. `deadline` is absolute on the `performance.now()` clock, or -1.
   * The returned promise settles with the decoded response or an `RpcError`.
   */
  call(msg: MessageDef, request: unknown, deadline: number, signal: AbortSignal | undefined, metadata: Metadata | undefined): Promise<unknown> {
    if (this.state === 'closed' || this.state === 'draining') {
      return Promise.reject(new RpcError(Code.UNAVAILABLE, `connection to ${this.host}:${this.port} is ${this.state}`));
    }
    if (signal?.aborted) return Promise.reject(new RpcError(Code.CANCELLED, 'call cancelled before it started'));
    if (deadline >= 0 && deadline <= performance.now()) {
      return Promise.reject(new RpcError(Code.DEADLINE_EXCEEDED, `deadline exceeded for ${msg.name} before it was sent`));
    }
    return new Promise((resolve, reject) => {
      const call = new PendingCall(this.calls.nextId(), msg, request, metadata, deadline, resolve, reject);
      if (deadline >= 0) {
        call.timer = setTimeout(onDeadline, Math.max(0, deadline - performance.now()), this, call);
      }
      if (signal !== undefined) {
        call.signal = signal;
        call.onAbort = () => this.abandon(call, new RpcError(Code.CANCELLED, 'call cancelled by the caller'));
        signal.addEventListener('abort', call.onAbort, { once: true });
      }
      this.calls.add(call);
      if (this.state === 'ready') this.send(call);
    });
  }

  /** Stops taking calls, lets in-flight calls finish, then closes. */
  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    if (this.state !== 'draining') this.transition('draining');
    const done = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    if (this.calls.size === 0) this.framed.end();
    return done;
  }

  /** Closes at once, failing pending calls with `error`. */
  destroy(error: RpcError): void {
    this.framed.destroy(error);
  }

  /** Settles a call locally (deadline, cancel) and tells the server to stop working on it. */
  abandon(call: PendingCall, error: RpcError): void {
    if (this.calls.take(call.id) === undefined) return;
    if (call.sent && !this.framed.isClosed) {
      this.framed.encoder.raw(FrameType.CANCEL, 0, call.id, null);
      this.framed.flushSoon();
    }
    call.reject(error);
    this.endIfDrained();
  }

  private send(call: PendingCall): void {
    const d = this.draft;
    const msg = call.msg;
    d.index = msg.index;
    d.timeoutMs = call.deadline < 0 ? -1 : Math.max(1, Math.ceil(call.deadline - performance.now()));
    d.metadata = call.metadata;
    d.type = msg.request;
    d.value = call.request;
    try {
      this.framed.encoder.frame(FrameType.REQUEST, requestFlags(d) | (msg.oneWay ? Flag.ONE_WAY : 0), call.id, d, writeRequest);
    } catch (err) {
      this.calls.take(call.id);
      call.reject(new RpcError(Code.INVALID_ARGUMENT, `invalid request for ${msg.name}: ${(err as Error).message}`, { cause: err }));
      return;
    } finally {
      d.value = null;
    }
    call.sent = true;
    call.request = undefined;
    this.framed.flushSoon();
    if (msg.oneWay) {
      this.calls.take(call.id);
      call.resolve(undefined);
    }
  }

  private onFrame(type: number, flags: number, id: number, body: Buffer): void {
    switch (type) {
      case FrameType.RESPONSE: return this.onResponse(id, body);
      case FrameType.ERROR: return this.onError(flags, id, body);
      case FrameType.WELCOME: return this.onWelcome(body);
      case FrameType.GOAWAY: return this.onGoaway(body);
      default:
        this.framed.fail(new RpcError(Code.INTERNAL, `protocol error: unexpected frame type ${type} from server`));
    }
  }

  private onResponse(id: number, body: Buffer): void {
    const call = this.calls.take(id);
    if (call === undefined) return;
    const resolver = this.codec!.responses[call.msg.index]!.response;
    try {
      call.resolve(decodeExact(call.msg.response, body, 0, resolver));
    } catch (err) {
      call.reject(new RpcError(Code.INTERNAL, `cannot decode response of ${call.msg.name}: ${(err as Error).message}`, { cause: err }));
    }
    this.endIfDrained();
  }

  private onError(flags: number, id: number, body: Buffer): void {
    let error: RpcError;
    const call = id === 0 ? undefined : this.calls.take(id);
    if (id !== 0 && call === undefined) return;
    try {
      const head = readErrorHead(flags, body);
      let details: unknown;
      if (call !== undefined && (flags & Flag.DECLARED) !== 0) {
        details = decodeDeclared(call.msg.errors, body, head.offset, this.codec!.responses[call.msg.index]!.errors);
      }
      error = new RpcError(head.code as Code, head.message, { isRemote: true, metadata: head.metadata, details });
    } catch (err) {
      error = new RpcError(Code.INTERNAL, `cannot decode error frame: ${(err as Error).message}`, { cause: err });
    }
    if (call === undefined) return this.framed.destroy(error);
    call.reject(error);
    this.endIfDrained();
  }

  private onGoaway(body: Buffer): void {
    try {
      const g = readGoaway(body);
      if (g.code !== Code.OK) this.closeError = new RpcError(g.code as Code, g.message, { isRemote: true });
    } catch {
      // A malformed GOAWAY still means "go away".
    }
    if (this.state === 'ready' || this.state === 'connecting') this.transition('draining');
    this.endIfDrained();
  }

  private sendHello(withProtocol = this.memory.sendProtocol): void {
    const hello: Hello = {
      fingerprint: this.protocol.fingerprint,
      protocol: withProtocol ? this.protocol.text : null,
      knownServerFingerprint: this.memory.serverFingerprint,
      meta: {},
    };
    this.sentProtocol = withProtocol;
    if (!this.prefaceSent) this.framed.encoder.bytes(PREFACE);
    this.prefaceSent = true;
    this.framed.encoder.frame(FrameType.HELLO, 0, 0, hello, writeHello);
    this.framed.flushSoon();
  }

  private onWelcome(body: Buffer): void {
    if (this.codec !== undefined) return this.framed.fail(new RpcError(Code.INTERNAL, 'protocol error: second WELCOME'));
    let remote: Protocol | undefined;
    try {
      const w = readHandshake<Welcome>(welcomeType, body);
      const id = w.fingerprint.toString('hex');
      if (w.protocol !== null) {
        if (createHash('md5').update(w.protocol).digest('hex') !== id) throw new Error('server protocol does not match its fingerprint');
        remote = this.cache.learn(w.protocol);
      } else {
        remote = this.cache.protocol(id);
      }
      if (w.status === 'NEED_PROTOCOL') {
        if (this.sentProtocol) throw new Error('server asked twice for the client protocol');
        this.memory.sendProtocol = true;
        if (remote !== undefined) this.memory.serverFingerprint = w.fingerprint;
        return this.sendHello(true);
      }
      if (remote === undefined) throw new Error('server omitted a protocol this client does not know');
      this.memory.serverFingerprint = w.fingerprint;
    } catch (err) {
      return this.framed.fail(new RpcError(Code.INTERNAL, `protocol error in handshake: ${(err as Error).message}`, { cause: err }));
    }
    this.codec = this.cache.codec(remote);
    clearTimeout(this.connectTimer);
    if (this.state === 'connecting') this.transition('ready');
    for (const call of this.calls.unsent()) this.send(call);
    this.endIfDrained();
  }

  private endIfDrained(): void {
    if (this.state === 'draining' && this.calls.size === 0) this.framed.end();
  }

  private onClose(error: RpcError): void {
    clearTimeout(this.connectTimer);
    this.closeError ??= error;
    if (this.state !== 'closed') this.transition('closed');
    this.calls.failAll(this.closeError);
    for (const w of this.closeWaiters.splice(0)) w();
  }

  private transition(to: ClientConnectionState): void {
    if (!LEGAL[this.state].includes(to)) throw new Error(`ClientConnection: illegal transition ${this.state} -> ${to}`);
    this.state = to;
    this.onState(this);
  }
}

function onDeadline(conn: ClientConnection, call: PendingCall): void {
  conn.abandon(call, new RpcError(Code.DEADLINE_EXCEEDED, `deadline exceeded for ${call.msg.name}`));
}
