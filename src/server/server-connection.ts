import type { Socket } from 'node:net';
import { FramedSocket } from '../connection/framed-socket.js';
import { framedSocketOptions } from '../connection/transport-options.js';
import { Lifecycle } from '../connection/lifecycle.js';
import { Code } from '../errors/code.js';
import { unexpectedFrame } from '../errors/protocol-error.js';
import { RpcError } from '../errors/rpc-error.js';
import { writeGoaway } from '../framing/bodies.js';
import { Flag, FrameType } from '../framing/frame.js';
import { logClose } from '../observability/log-policy.js';
import { peerCertificate } from '../security/tls.js';
import type { PeerInfo } from './call-context.js';
import { CancelGuard } from './cancel-guard.js';
import { ConnectionTimers } from './connection-timers.js';
import type { HandshakeSlot } from './handshake-gate.js';
import type { ConnectionAccount } from './memory-budget.js';
import { Refusal, draining } from './request-admission.js';
import { ServerHandshake, type HandshakeOwner, type HandshakeResult } from './server-handshake.js';
import { ServerSession } from './server-session.js';
import type { ServerShared } from './server-shared.js';

export type { ServerShared } from './server-shared.js';

/** Lifecycle of a server connection. */
export type ServerConnectionState = 'handshaking' | 'ready' | 'draining' | 'closed';

const LEGAL: Record<ServerConnectionState, readonly ServerConnectionState[]> = {
  handshaking: ['ready', 'draining', 'closed'],
  ready: ['draining', 'closed'],
  draining: ['closed'],
  closed: [],
};

/**
 * A connection's phase, with what it holds: the handshake until WELCOME OK, then the session. One
 * that drains kept whichever it had (a drain may begin during the handshake, which may still complete).
 */
type Phase =
  | { readonly state: 'handshaking'; readonly handshake: ServerHandshake; readonly session: undefined }
  | { readonly state: 'ready'; readonly handshake: undefined; readonly session: ServerSession }
  | { readonly state: 'draining'; readonly handshake: ServerHandshake; readonly session: undefined }
  | { readonly state: 'draining'; readonly handshake: undefined; readonly session: ServerSession }
  | { readonly state: 'closed'; readonly handshake: undefined; readonly session: undefined };

const CLOSED: Phase = { state: 'closed', handshake: undefined, session: undefined };

/** Bytes of a REQUEST body before its metadata: u16 index, u32 timeout, and the map's first varints. */
const REQUEST_HEAD_BYTES = 32;

/**
 * One accepted socket: wires its `FramedSocket` to the handshake, then to the session that serves its
 * calls; handles the connection-level frames (GOAWAY, CANCEL's rapid-reset guard), the drain, its
 * timers, and the close.
 */
export class ServerConnection implements HandshakeOwner {
  private readonly framed: FramedSocket;
  private readonly lifecycle: Lifecycle<ServerConnectionState>;
  private phase: Phase;
  private readonly timers = new ConnectionTimers();
  /** Created at the first CANCEL: most connections never send one. */
  private cancelGuard: CancelGuard | undefined;
  /** The peer; gains its `principal` once authenticated. */
  peer: PeerInfo;
  /** This connection's share of the server's memory budget. */
  private readonly account: ConnectionAccount;
  /** Bound once: the session calls it after each call. */
  private readonly settled = (): void => this.endIfDrained();

  constructor(
    socket: Socket,
    private readonly shared: ServerShared,
    private readonly onClosed: (conn: ServerConnection) => void,
    /** Its place among the connections in handshake, given back when it leaves the `handshaking` state. */
    private readonly handshakeSlot?: HandshakeSlot,
  ) {
    const o = shared.options;
    const certificate = peerCertificate(socket);
    this.peer = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0, ...(certificate ? { certificate } : {}) };
    this.account = shared.budget.account((e) => this.framed.fail(e));
    this.lifecycle = new Lifecycle<ServerConnectionState>(
      'handshaking',
      LEGAL,
      'closed',
      (prev) => {
        if (prev === 'handshaking') this.handshakeSlot?.release();
      },
      'ServerConnection',
    );
    this.framed = new FramedSocket(
      socket,
      framedSocketOptions(o, {
        account: this.account,
        stallTimeoutMs: o.stallTimeoutMs,
        headBytes: REQUEST_HEAD_BYTES + o.maxMetadataBytes,
        expectPreface: true,
        pauseReadsWhenBlocked: true,
        countUnsentFragments: true,
        observer: o.observer,
        // Compressed requests count like calls until they are inflated (each may grow to maxMessageBytes).
        maxInflations: o.maxConcurrentCalls,
      }),
      {
        onFrame: (t, f, id, body) => this.onFrame(t, f, id, body),
        onClose: (e) => this.onClose(e),
        onRefused: (t, f, id, e) => this.onRefused(t, f, id, e),
        checkHead: o.authorize === undefined ? undefined : (f, id, start) => this.phase.session?.checkHead(f, id, start) ?? true,
      },
    );
    // Until WELCOME OK, only a HELLO is expected: no reason to buffer and decode maxFrameBytes for a stranger.
    this.phase = { state: 'handshaking', handshake: new ServerHandshake(shared, this.framed, this), session: undefined };
    o.observer?.connectionOpened?.(`${this.peer.address}:${this.peer.port}`);
    this.timers.startHandshake(o.handshakeTimeoutMs, () =>
      this.framed.destroy(new RpcError(Code.DEADLINE_EXCEEDED, `handshake not completed within ${o.handshakeTimeoutMs} ms`)),
    );
  }

  /** Where the connection is in its life. */
  get state(): ServerConnectionState {
    return this.lifecycle.state;
  }

  /** Calls running on this connection. */
  get inFlight(): number {
    return this.phase.session?.inFlight ?? 0;
  }

  /**
   * Sends GOAWAY (code OK, with `message`) and stops accepting calls; closes once running calls finish
   * and no request is still arriving. Requests partly received by then (fragments still to come, or
   * inflating) are accepted (SPEC.md section 6): `lastId` covers them, and they run once whole.
   */
  drain(message = 'server shutting down'): void {
    const p = this.phase;
    if (p.state === 'closed' || p.state === 'draining') return;
    let lastId = 0;
    if (p.state === 'ready') {
      lastId = p.session.stopAccepting(this.framed.receiving > 0 ? this.framed.receivingIds() : undefined);
      this.enter({ state: 'draining', handshake: undefined, session: p.session });
    } else {
      this.enter({ state: 'draining', handshake: p.handshake, session: undefined });
    }
    this.framed.frame(FrameType.GOAWAY, 0, 0, { lastId, code: Code.OK, message }, writeGoaway);
    this.endIfDrained();
  }

  /** Closes at once; running handlers see their signal abort. */
  destroy(reason: RpcError): void {
    this.framed.destroy(reason);
  }

  /**
   * Draining: ends the connection once no call runs and no request is partly received. One that began
   * after GOAWAY is waited for too, so it gets its ERROR UNAVAILABLE (the client then knows it did not run).
   */
  private endIfDrained(): void {
    if (this.phase.state === 'draining' && this.inFlight === 0 && this.framed.receiving === 0) this.framed.end();
  }

  /** The one way the phase changes: a change of state goes through the lifecycle's table. */
  private enter(next: Phase): void {
    if (next.state !== this.lifecycle.state) this.lifecycle.transition(next.state);
    this.phase = next;
  }

  private onFrame(type: number, flags: number, id: number, body: Buffer): void {
    const t = type as FrameType;
    switch (t) {
      case FrameType.REQUEST: {
        const session = this.phase.session;
        if (session === undefined) return this.framed.fail(unexpectedFrame(type, 'before handshake'));
        return session.onRequest(flags, id, body);
      }
      case FrameType.CANCEL:
        return this.onCancel(id);
      case FrameType.DATA:
      case FrameType.END:
      case FrameType.CREDIT: {
        const session = this.phase.session;
        if (session === undefined) return this.framed.fail(unexpectedFrame(type, 'before handshake'));
        return session.onStreamFrame(type, id, body);
      }
      case FrameType.HELLO: {
        const handshake = this.phase.handshake;
        if (handshake === undefined) return this.framed.fail(unexpectedFrame(type, 'after handshake'));
        return handshake.onHello(body);
      }
      case FrameType.GOAWAY:
        return this.drain();
      // A server's frames; and PING, PONG, WINDOW and a negotiated CONTINUATION, which FramedSocket
      // handles, reach us only out of place.
      case FrameType.WELCOME:
      case FrameType.RESPONSE:
      case FrameType.ERROR:
      case FrameType.PING:
      case FrameType.PONG:
      case FrameType.CONTINUATION:
      case FrameType.WINDOW:
      case FrameType.HEADERS:
        return this.unexpected(type);
      default: {
        // Every FrameType is handled above: what remains is a type this version does not know.
        const unknown: never = t;
        return this.unexpected(unknown);
      }
    }
  }

  /** Fails the connection for a frame of a type not allowed from a client, or not in this phase. */
  private unexpected(type: number): void {
    this.framed.fail(unexpectedFrame(type, this.phase.session === undefined ? 'before handshake' : 'from a client'));
  }

  /** A REQUEST refused before delivery (too large, does not inflate): answered REFUSED. Anything else is a violation. */
  private onRefused(type: number, flags: number, id: number, error: RpcError): void {
    const session = this.phase.session;
    if (type === FrameType.DATA && session !== undefined) return session.refuseElement(id, error);
    if (type !== FrameType.REQUEST || session === undefined) return this.unexpected(type);
    session.refuse(id, (flags & Flag.ONE_WAY) !== 0, new Refusal(error.code, error.message));
  }

  private onCancel(id: number): void {
    this.framed.discard(id);
    const session = this.phase.session;
    // A client sends CANCEL when its deadline passes too: one for a running call at, or within a
    // second of, its deadline is a timeout, not a reset, and is not counted (an overloaded server must
    // not cut off its patient clients; a peer that sends short deadlines to waste handler starts can
    // do so without any CANCEL, and maxConcurrentCalls bounds it either way).
    const timedOut = session !== undefined && session.cancel(id);
    const limits = this.shared.options;
    if (!timedOut && limits.maxCancels > 0 && (this.cancelGuard ??= new CancelGuard(limits)).cancel(session?.completedCalls ?? 0)) {
      return this.framed.fail(new RpcError(Code.RESOURCE_EXHAUSTED, `too many cancelled calls: ${this.cancelGuard.describe()}`));
    }
    // A cancelled partial request is no longer awaited either.
    this.endIfDrained();
  }

  /** {@link HandshakeOwner}: the peer authenticated (or presented a certificate). */
  identified(principal: unknown): void {
    this.peer = { ...this.peer, principal };
  }

  /** {@link HandshakeOwner}: the principal authorizes this connection until `at` only. */
  expiresAt(at: number): boolean {
    return this.timers.armExpiry(at, () => this.expire());
  }

  /** {@link HandshakeOwner}: WELCOME OK went out; the connection takes calls from now on. */
  established(result: HandshakeResult): void {
    const o = this.shared.options;
    this.framed.established(result.negotiated, o.maxFrameBytes);
    this.timers.handshakeDone();
    this.account.handshakeDone();
    const drained = this.phase.state === 'draining';
    // A drain that began during the handshake holds: the session takes no request.
    const session = new ServerSession(
      this.shared,
      this.framed,
      result,
      this.peer,
      this.settled,
      drained ? draining(undefined) : undefined,
      this.account,
    );
    this.enter({ state: drained ? 'draining' : 'ready', handshake: undefined, session });
    const framed = this.framed;
    this.timers.watchIdle(o.idleTimeoutMs, {
      takeRequestCount: () => session.takeRequestCount(),
      get fragmentBytesReceived() {
        return framed.fragmentBytesReceived;
      },
      get inFlight() {
        return session.inFlight;
      },
      idle: () => (this.phase.state === 'draining' ? this.framed.end() : this.drain(`idle for ${o.idleTimeoutMs} ms`)),
    });
  }

  /**
   * The principal expired: requests from now on are refused UNAUTHENTICATED (flagged REFUSED, no
   * handler runs; partly received ones too, when they complete), GOAWAY UNAUTHENTICATED tells the
   * client to reconnect with fresh credentials, and the connection closes once running calls end.
   */
  private expire(): void {
    if (this.framed.isClosed) return;
    const p = this.phase;
    // Still in the NEED_PROTOCOL exchange: refuse the handshake itself.
    if (p.handshake !== undefined) return p.handshake.refuse(new RpcError(Code.UNAUTHENTICATED, 'credentials expired'));
    if (p.session === undefined) return;
    const lastId = p.session.expire();
    if (p.state === 'ready') {
      this.enter({ state: 'draining', handshake: undefined, session: p.session });
      this.framed.frame(FrameType.GOAWAY, 0, 0, { lastId, code: Code.UNAUTHENTICATED, message: 'credentials expired' }, writeGoaway);
    }
    this.endIfDrained();
  }

  private onClose(error: RpcError): void {
    this.timers.clear();
    this.account.close();
    const p = this.phase;
    const o = this.shared.options;
    o.observer?.connectionClosed?.(`${this.peer.address}:${this.peer.port}`, error.code === Code.UNAVAILABLE ? undefined : error);
    logClose(o.logger, 'server', error, p.session !== undefined, p.state === 'draining', { peer: this.peer });
    this.enter(CLOSED);
    p.session?.close(error);
    this.onClosed(this);
  }
}
