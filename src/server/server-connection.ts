import { checkFingerprint } from '../codec/fingerprint.js';
import type { Socket } from 'node:net';
import { describeInvalid } from '../codec/invalid-value.js';
import type { PeerCodec } from '../codec/peer-codec.js';
import type { MessageDef, Protocol } from '../codec/protocol.js';
import type { ResolverCache } from '../codec/resolver-cache.js';
import { decodeExact } from '../connection/payload.js';
import { idAfter } from '../framing/frame.js';
import { FramedSocket } from '../connection/framed-socket.js';
import { framedSocketOptions } from '../connection/transport-options.js';
import { IdMap } from '../connection/id-map.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { readRequestHead, writeGoaway } from '../framing/bodies.js';
import type { BodyWriter } from '../framing/frame-encoder.js';
import { Flag, FrameType } from '../framing/frame.js';
import { HELLO_FLOOR_BYTES, readHello, welcomeType, writeHandshake, type Hello, type Welcome } from '../framing/handshake.js';
import { logClose } from '../observability/log-policy.js';
import { accept as acceptExtensions, type Negotiated } from '../framing/extensions.js';
import { TOKEN_META_KEY, principalExpiry } from '../security/auth.js';
import { peerCertificate } from '../security/tls.js';
import { callScope, scopeWanted } from '../util/call-scope.js';
import { MAX_TIMER_MS } from '../util/validate.js';
import { CallContext, type PeerInfo } from './call-context.js';
import { CancelGuard } from './cancel-guard.js';
import { errorDraftFor, sendError } from './error-reply.js';
import type { HandshakeSlot } from './handshake-gate.js';
import type { ParseBudget } from './parse-budget.js';
import type { ConnectionAccount, MemoryBudget } from './memory-budget.js';
import type { ResolvedServerOptions } from './server-options.js';
import { OffloadedRequest, type OffloadPool } from './offload/offload-pool.js';
import { OffloadReply, ReplyKind, writeBytes } from './offload/offload-task.js';

/** What all connections of one server share. */
export interface ServerShared {
  readonly options: ResolvedServerOptions;
  readonly cache: ResolverCache;
  /** Response body writers by local message index. */
  readonly writers: readonly BodyWriter<unknown>[];
  /** Worker threads for the messages offloaded (`workers` option). */
  readonly offload?: OffloadPool | undefined;
  /** Time for parsing strangers' protocols (`protocolParseMsPerSecond`); undefined when unlimited. */
  readonly parseBudget?: ParseBudget | undefined;
  /** The server-wide memory budget (`maxBufferedBytes`); each connection reports to its own account. */
  readonly budget: MemoryBudget;
}

/** Lifecycle of a server connection. */
export type ServerConnectionState = 'handshaking' | 'ready' | 'draining' | 'closed';

const LEGAL: Record<ServerConnectionState, readonly ServerConnectionState[]> = {
  handshaking: ['ready', 'draining', 'closed'],
  ready: ['draining', 'closed'],
  draining: ['closed'],
  closed: [],
};

const writeWelcome = writeHandshake(welcomeType);

/** How close to its deadline a call's CANCEL reads as the client's timeout, for the rapid-reset guard, in ms. */
const DEADLINE_CANCEL_SLACK_MS = 1000;

/** Bytes of a REQUEST body before its metadata: u16 index, u32 timeout, and the map's first varints. */
const REQUEST_HEAD_BYTES = 32;

/**
 * Largest frame accepted before `authenticate` accepted the connection: a HELLO with a null protocol
 * (its meta within `maxHelloMetaBytes`), or any HELLO within the SPEC's floor; never above `maxHandshakeBytes`.
 */
function preAuthHelloBytes(o: ResolvedServerOptions): number {
  return Math.min(o.maxHandshakeBytes, Math.max(HELLO_FLOOR_BYTES, o.maxHelloMetaBytes + 1024));
}

/** One accepted socket: handshake, dispatch of requests to handlers, cancellation, graceful drain. */
export class ServerConnection {
  state: ServerConnectionState = 'handshaking';
  private readonly framed: FramedSocket;
  private codec: PeerCodec | undefined;
  private readonly running = new IdMap<CallContext>();
  /** One-way calls running, apart from `running`: their ids are free once read (no answer tells the client when they end). */
  private readonly oneWays = new Set<CallContext>();
  /**
   * Calls the client cancelled whose handlers still run: their ids are the client's again (SPEC.md
   * section 6), but each holds its slot of `maxConcurrentCalls` until its handler settles, or a client
   * could run any number of handlers at once by cancelling each call as soon as it is sent.
   */
  private readonly orphans = new Set<CallContext>();
  /** Calls a handler completed (answered, a one-way call done, or run to its deadline), for the rapid-reset guard. */
  private completedCalls = 0;
  /** Created at the first CANCEL: most connections never send one. */
  private cancelGuard: CancelGuard | undefined;
  private lastId = 0;
  /** Ids of the requests partly received when GOAWAY went out: accepted, they run once whole. */
  private admitted: Set<number> | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private requestsSinceIdleCheck = 0;
  private authenticating = false;
  /** `authenticate` accepted this connection (its principal is in `peer`). */
  private authenticated = false;
  /** The principal's `expiresAt` passed: the connection drains, and every request is refused UNAUTHENTICATED. */
  private expired = false;
  /** Fires at the principal's `expiresAt` (one per connection, re-armed in steps beyond MAX_TIMER_MS). */
  private expiryTimer: NodeJS.Timeout | undefined;
  /** HELLOs seen: a handshake needs at most two (the second after NEED_PROTOCOL). */
  private hellos = 0;
  /**
   * The peer's protocol while it is this connection's alone: parsed from a stranger's HELLO, it joins
   * the shared resolver cache only once the peer proves to be a client (authenticated, by `authenticate`
   * or a verified mTLS certificate, or else a first call completed), so strangers cannot fill or churn
   * that cache.
   */
  private unadmitted: Protocol | undefined;
  /** The peer; gains its `principal` once authenticated. */
  peer: PeerInfo;
  /** This connection's share of the server's memory budget. */
  private readonly account: ConnectionAccount;
  /**
   * Requests judged from their start while their body still arrives (see {@link checkHead}): true
   * (allowed), or the pending `authorize` verdict; the whole request then uses it, not a second call.
   */
  private readonly heads = new Map<number, true | Promise<boolean>>();

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
        onRefused: (t, f, id, e) =>
          t === FrameType.REQUEST
            ? this.refuse(id, (f & Flag.ONE_WAY) !== 0, e.code, e.message)
            : this.framed.fail(new RpcError(Code.INTERNAL, `protocol error: unexpected frame type ${t}`)),
        checkHead: o.authorize === undefined ? undefined : (f, id, start) => this.checkHead(f, id, start),
      },
    );
    // Until WELCOME OK, only a HELLO is expected: no reason to buffer and decode maxFrameBytes for a stranger,
    // and until `authenticate` accepted it, no more than a small HELLO (its protocol text follows NEED_PROTOCOL).
    if (o.authenticate !== undefined)
      this.framed.limitFrames(preAuthHelloBytes(o), 'the HELLO limit before authentication (maxHelloMetaBytes + 1024)');
    else this.framed.limitFrames(o.maxHandshakeBytes, o.maxHandshakeBytes < o.maxFrameBytes ? 'maxHandshakeBytes' : 'maxFrameBytes');
    o.observer?.connectionOpened?.(`${this.peer.address}:${this.peer.port}`);
    this.handshakeTimer = setTimeout(
      () => this.framed.destroy(new RpcError(Code.DEADLINE_EXCEEDED, `handshake not completed within ${o.handshakeTimeoutMs} ms`)),
      o.handshakeTimeoutMs,
    );
  }

  /** Calls running on this connection. */
  get inFlight(): number {
    return this.running.size + this.oneWays.size + this.orphans.size;
  }

  /**
   * Sends GOAWAY (code OK, with `message`) and stops accepting calls; closes once running calls finish
   * and no request is still arriving. Requests partly received by then (fragments still to come, or
   * inflating) are accepted (SPEC.md section 6): `lastId` covers them, and they run once whole.
   */
  drain(message = 'server shutting down'): void {
    if (this.state === 'closed' || this.state === 'draining') return;
    this.transition('draining');
    let lastId = this.lastId;
    if (this.framed.receiving > 0) {
      this.admitted = new Set(this.framed.receivingIds());
      for (const id of this.admitted) if (idAfter(id, lastId)) lastId = id;
    }
    this.framed.frame(FrameType.GOAWAY, 0, 0, { lastId, code: Code.OK, message }, writeGoaway);
    this.endIfDrained();
  }

  /**
   * Draining: ends the connection once no call runs and no request is partly received. One that began
   * after GOAWAY is waited for too, so it gets its ERROR UNAVAILABLE (the client then knows it did not run).
   */
  private endIfDrained(): void {
    if (this.state === 'draining' && this.inFlight === 0 && this.framed.receiving === 0) this.framed.end();
  }

  /** Closes at once; running handlers see their signal abort. */
  destroy(reason: RpcError): void {
    this.framed.destroy(reason);
  }

  private onFrame(type: number, flags: number, id: number, body: Buffer): void {
    if (type === FrameType.REQUEST && this.codec !== undefined) return this.onRequest(flags, id, body);
    if (type === FrameType.CANCEL) return this.onCancel(id);
    if (type === FrameType.HELLO && this.codec === undefined) return this.onHello(body);
    if (type === FrameType.GOAWAY) return this.drain();
    this.framed.fail(
      new RpcError(Code.INTERNAL, `protocol error: unexpected frame type ${type} ${this.codec === undefined ? 'before handshake' : ''}`),
    );
  }

  private onHello(body: Buffer): void {
    if (this.authenticating) return this.framed.fail(new RpcError(Code.INTERNAL, 'protocol error: HELLO during authentication'));
    // Each HELLO may cost a protocol parse and a WELCOME carrying our whole protocol text: allow no loop.
    if (++this.hellos > 2) return this.framed.fail(new RpcError(Code.INTERNAL, 'protocol error: more than two HELLOs'));
    let hello: Hello;
    try {
      // Meta is checked for size before it is decoded, and before authenticate sees it.
      hello = readHello(body, this.shared.options.maxHelloMetaBytes);
    } catch (err) {
      return this.framed.fail(
        err instanceof RpcError
          ? err
          : new RpcError(Code.INTERNAL, `protocol error in handshake: ${(err as Error).message}`, { cause: err }),
      );
    }
    const authenticate = this.shared.options.authenticate;
    if (authenticate === undefined) return this.answerHello(hello, this.peer.certificate);
    if (this.authenticated) return this.answerHello(hello, this.peer.principal);
    // Authenticate first: a peer that is refused never makes us parse the protocol text it sent.
    this.authenticating = true;
    const token = hello.meta[TOKEN_META_KEY]?.toString('utf8');
    new Promise((resolve) => resolve(authenticate({ token, meta: hello.meta }, this.peer))).then(
      (principal) => {
        this.authenticating = false;
        if (this.framed.isClosed) return;
        const expiresAt = principalExpiry(principal);
        if (expiresAt !== undefined && !this.armExpiry(expiresAt))
          return this.refuseConnection(new RpcError(Code.UNAUTHENTICATED, 'credentials expired'));
        this.authenticated = true;
        // Authenticated: a second HELLO may now carry a protocol text up to maxProtocolBytes.
        const o = this.shared.options;
        this.framed.limitFrames(o.maxHandshakeBytes, o.maxHandshakeBytes < o.maxFrameBytes ? 'maxHandshakeBytes' : 'maxFrameBytes');
        this.answerHello(hello, principal);
      },
      (err: unknown) => this.refuseConnection(err),
    );
  }

  /** Answers a HELLO: NEED_PROTOCOL when its fingerprint is unknown to us, else WELCOME OK. */
  private answerHello(hello: Hello, principal: unknown): void {
    const local = this.shared.options.protocol;
    let remote: Protocol | undefined;
    try {
      const id = hello.fingerprint.toString('hex');
      if (hello.protocol !== null) {
        // Parsing costs far more than the bytes: cap what an unauthenticated peer can make us parse.
        const bytes = Buffer.byteLength(hello.protocol);
        const max = this.shared.options.maxProtocolBytes;
        if (bytes > max) {
          return this.framed.fail(
            new RpcError(Code.RESOURCE_EXHAUSTED, `protocol text of ${bytes} bytes exceeds maxProtocolBytes (${max})`),
          );
        }
        checkFingerprint(hello.protocol, id, 'client');
        remote = this.shared.cache.protocol(id);
        if (remote === undefined) {
          // A peer `authenticate` accepted, or whose certificate TLS verified, is known: its protocol is
          // shared at once. A stranger's waits on the parse budget, and serves its connection only.
          const known = this.authenticated || this.peer.certificate !== undefined;
          const text = hello.protocol;
          const budget = this.shared.parseBudget;
          if (known || budget === undefined) remote = this.shared.cache.parse(text);
          else if (budget.available()) remote = budget.spend(() => this.shared.cache.parse(text));
          else {
            // UNAVAILABLE, not RESOURCE_EXHAUSTED: passing, so clients back off and retry (by then a
            // client of the same protocol has often completed a call, and the protocol is shared).
            return this.framed.fail(
              new RpcError(
                Code.UNAVAILABLE,
                'server busy: its protocolParseMsPerSecond ' +
                  `(${this.shared.options.protocolParseMsPerSecond}) is spent on protocols of unauthenticated peers; retry later`,
              ),
            );
          }
          if (known) this.shared.cache.admit(remote);
          else this.unadmitted = remote;
        }
      } else {
        remote = this.shared.cache.protocol(id);
      }
    } catch (err) {
      // A protocol beyond PEER_PROTOCOL_LIMITS keeps its code (RESOURCE_EXHAUSTED).
      return this.framed.fail(
        err instanceof RpcError && err.code === Code.RESOURCE_EXHAUSTED
          ? err
          : new RpcError(Code.INTERNAL, `protocol error in handshake: ${(err as Error).message}`, { cause: err }),
      );
    }
    const clientKnowsUs =
      hello.fingerprint.equals(local.fingerprint) ||
      (hello.knownServerFingerprint !== null && hello.knownServerFingerprint.equals(local.fingerprint));
    const welcome: Welcome = {
      status: 'NEED_PROTOCOL',
      fingerprint: local.fingerprint,
      protocol: clientKnowsUs ? null : local.text,
      meta: {},
    };
    if (principal !== undefined) this.peer = { ...this.peer, principal };
    if (remote === undefined) {
      this.framed.frame(FrameType.WELCOME, 0, 0, welcome, writeWelcome);
      return;
    }
    welcome.status = 'OK';
    const extensions = acceptExtensions(hello.meta, this.framed.support);
    welcome.meta = extensions.meta;
    this.accept(remote, welcome, extensions.negotiated);
  }

  /** The handshake succeeded: the connection takes calls from now on. */
  private accept(remote: Protocol, welcome: Welcome, negotiated: Negotiated): void {
    this.framed.frame(FrameType.WELCOME, 0, 0, welcome, writeWelcome);
    this.framed.established(negotiated, this.shared.options.maxFrameBytes);
    this.codec = this.shared.cache.codec(remote);
    clearTimeout(this.handshakeTimer);
    this.account.handshakeDone();
    if (this.state === 'handshaking') this.transition('ready');
    this.armIdleCheck();
  }

  /**
   * Arms the timer that ends this connection's authorization at `expiresAt` (epoch ms); false when
   * that is already past. A timer, not a clock read per call: requests only look at `state`.
   */
  private armExpiry(expiresAt: number): boolean {
    const left = expiresAt - Date.now();
    if (!(left > 0)) return false;
    // Beyond setTimeout's limit Node would fire at once: wait in steps, checking the clock each time.
    this.expiryTimer = setTimeout(() => (this.armExpiry(expiresAt) ? undefined : this.expire()), Math.min(left, MAX_TIMER_MS));
    this.expiryTimer.unref();
    return true;
  }

  /**
   * The principal expired: requests from now on are refused UNAUTHENTICATED (flagged REFUSED, no
   * handler runs; partly received ones too, when they complete), GOAWAY UNAUTHENTICATED tells the
   * client to reconnect with fresh credentials, and the connection closes once running calls end.
   */
  private expire(): void {
    if (this.framed.isClosed) return;
    this.expired = true;
    // Still in the NEED_PROTOCOL exchange: refuse the handshake itself.
    if (this.codec === undefined) return this.refuseConnection(new RpcError(Code.UNAUTHENTICATED, 'credentials expired'));
    this.admitted = undefined;
    if (this.state === 'ready') {
      this.transition('draining');
      this.framed.frame(
        FrameType.GOAWAY,
        0,
        0,
        { lastId: this.lastId, code: Code.UNAUTHENTICATED, message: 'credentials expired' },
        writeGoaway,
      );
    }
    this.endIfDrained();
  }

  /** Authentication failed: an ERROR with id 0, then the connection closes. */
  private refuseConnection(err: unknown): void {
    this.authenticating = false;
    // The hook's own error stays the cause, for the server's log; the client gets the message only.
    const e =
      err instanceof RpcError && (err.code === Code.PERMISSION_DENIED || err.code === Code.UNAUTHENTICATED)
        ? err
        : new RpcError(Code.UNAUTHENTICATED, err instanceof Error ? err.message : 'authentication failed', { cause: err });
    sendError(this.framed, 0, { code: e.code, message: e.message, metadata: undefined, declared: undefined });
    this.framed.end(e);
  }

  /**
   * Every `idleTimeoutMs`: a connection with no call running and nothing received of a request (whole,
   * or fragments of one) during the period is drained; one already draining whose partly received
   * requests made no progress is closed, since a stalled upload must not hold it open forever.
   */
  private armIdleCheck(): void {
    const ms = this.shared.options.idleTimeoutMs;
    if (ms === 0) return;
    let fragmentBytes = 0;
    this.idleTimer = setInterval(() => {
      const received = this.framed.fragmentBytesReceived;
      const quiet = this.requestsSinceIdleCheck === 0 && received === fragmentBytes;
      this.requestsSinceIdleCheck = 0;
      fragmentBytes = received;
      if (!quiet || this.inFlight > 0) return;
      if (this.state === 'draining') this.framed.end();
      else this.drain(`idle for ${ms} ms`);
    }, ms);
    this.idleTimer.unref();
  }

  private onRequest(flags: number, id: number, body: Buffer): void {
    // Id 0 is for connection-level frames: an ERROR for it would read as the connection failing.
    if (id === 0) return this.framed.fail(new RpcError(Code.INTERNAL, 'protocol error: REQUEST with id 0'));
    const oneWay = (flags & Flag.ONE_WAY) !== 0;
    const o = this.shared.options;
    this.requestsSinceIdleCheck++;
    if (this.state !== 'ready' && this.admitted?.delete(id) !== true) {
      return this.expired
        ? this.refuse(id, oneWay, Code.UNAUTHENTICATED, 'credentials expired')
        : this.refuse(id, oneWay, Code.UNAVAILABLE, 'server is shutting down');
    }
    if (this.inFlight >= o.maxConcurrentCalls) {
      return this.refuse(id, oneWay, Code.RESOURCE_EXHAUSTED, `too many concurrent calls (max ${o.maxConcurrentCalls})`);
    }
    if (this.running.has(id)) return this.framed.fail(new RpcError(Code.INTERNAL, `protocol error: request id ${id} already in use`));
    let msg: MessageDef;
    let request: unknown;
    let ctx: CallContext;
    try {
      // Bounded: an oversized map is refused having read no more than the limit of it.
      const head = readRequestHead(flags, body, o.maxMetadataBytes);
      if (head.metadataBytes > o.maxMetadataBytes) {
        return this.refuse(id, oneWay, Code.RESOURCE_EXHAUSTED, `request metadata exceeds maxMetadataBytes (${o.maxMetadataBytes})`);
      }
      if (body.length - head.offset > o.maxMessageBytes) {
        return this.refuse(
          id,
          oneWay,
          Code.RESOURCE_EXHAUSTED,
          `request of ${body.length - head.offset} bytes exceeds maxMessageBytes (${o.maxMessageBytes})`,
        );
      }
      const incoming = this.codec!.requests[head.index];
      if (incoming === undefined) return this.refuse(id, oneWay, Code.UNIMPLEMENTED, `unknown message index ${head.index}`);
      const offload = this.shared.offload;
      if (incoming.local === null || (o.handlers[incoming.local.index] === undefined && offload?.serves(incoming.local.index) !== true)) {
        return this.refuse(id, oneWay, Code.UNIMPLEMENTED, `unknown message ${incoming.name}`);
      }
      if (incoming.incompatible !== undefined) {
        return this.refuse(
          id,
          oneWay,
          Code.FAILED_PRECONDITION,
          `message ${incoming.name}: incompatible schemas: ${incoming.incompatible}`,
        );
      }
      msg = incoming.local;
      // Offloaded calls keep their payload as bytes: a worker decodes it.
      request =
        offload?.takes(msg.index, body.length - head.offset) === true
          ? new OffloadedRequest(this.codec!.remote, head.index, body, head.offset)
          : decodeExact(msg.request, body, head.offset, incoming.resolver);
      ctx = new CallContext(msg.name, head.metadata, head.timeoutMs < 0 ? Infinity : Date.now() + head.timeoutMs, this.peer);
    } catch (err) {
      return this.refuse(id, oneWay, Code.INVALID_ARGUMENT, `cannot decode request: ${(err as Error).message}`);
    }
    this.lastId = id;
    if (oneWay) this.oneWays.add(ctx);
    else this.running.set(id, ctx);
    if (o.observer !== undefined) {
      ctx.startedAt = performance.now();
      o.observer.callStarted?.(msg.name);
    }
    const authorize = o.authorize;
    if (authorize === undefined) return this.invoke(id, msg, request, ctx, oneWay);
    // Judged already from its start (checkHead): not asked twice.
    const head = this.heads.size > 0 ? this.heads.get(id) : undefined;
    if (head !== undefined) this.heads.delete(id);
    if (head === true) return this.invoke(id, msg, request, ctx, oneWay);
    (head ?? new Promise<boolean>((resolve) => resolve(authorize(this.peer.principal, msg.name, ctx.metadata)))).then(
      (allowed) => (allowed === true ? this.invoke(id, msg, request, ctx, oneWay) : this.deny(id, ctx, oneWay, msg.name)),
      () => this.deny(id, ctx, oneWay, msg.name),
    );
  }

  private invoke(id: number, msg: MessageDef, request: unknown, ctx: CallContext, oneWay: boolean): void {
    if (!this.tracks(id, ctx, oneWay)) return this.release(ctx);
    let result: unknown;
    const o = this.shared.options;
    try {
      const handler = o.handlers[msg.index]!;
      if (request instanceof OffloadedRequest) result = this.shared.offload!.run(msg.index, request, ctx);
      else result = o.propagateDeadlines && scopeWanted.value ? callScope.run(ctx, handler, request, ctx) : handler(request, ctx);
    } catch (err) {
      return this.complete(id, msg, ctx, oneWay, err, true);
    }
    if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') {
      (result as Promise<unknown>).then(
        (value) => this.complete(id, msg, ctx, oneWay, value, false),
        (err: unknown) => this.complete(id, msg, ctx, oneWay, err, true),
      );
    } else {
      this.complete(id, msg, ctx, oneWay, result, false);
    }
  }

  private deny(id: number, ctx: CallContext, oneWay: boolean, name: string): void {
    if (!this.tracks(id, ctx, oneWay)) return this.release(ctx);
    this.untrack(id, ctx, oneWay);
    // Counted under its message: callStarted was reported for it.
    this.shared.options.observer?.callEnded?.(name, Code.PERMISSION_DENIED, performance.now() - ctx.startedAt);
    if (!oneWay) {
      sendError(
        this.framed,
        id,
        { code: Code.PERMISSION_DENIED, message: `not allowed to call ${name}`, metadata: undefined, declared: undefined },
        Flag.REFUSED,
      );
    }
    this.endIfDrained();
  }

  private complete(id: number, msg: MessageDef, ctx: CallContext, oneWay: boolean, outcome: unknown, failed: boolean): void {
    ctx.finish();
    const observer = this.shared.options.observer;
    if (ctx.cancelled || !this.tracks(id, ctx, oneWay)) {
      // A call past its deadline stays in `running` until its handler returns; free its id now. A
      // cancelled one frees its slot.
      this.untrack(id, ctx, oneWay);
      this.orphans.delete(ctx);
      // A call that ran to its deadline completed as far as the rapid-reset guard is concerned: the
      // client's CANCEL for it may arrive just after, for an id no longer running.
      if (ctx.cancelCode === Code.DEADLINE_EXCEEDED) this.completedCalls++;
      observer?.callEnded?.(msg.name, ctx.cancelled ? ctx.cancelCode : Code.CANCELLED, performance.now() - ctx.startedAt);
      this.endIfDrained();
      return;
    }
    this.untrack(id, ctx, oneWay);
    this.completedCalls++;
    let code: Code = Code.OK;
    if (!oneWay && !this.framed.isClosed) {
      if (outcome instanceof OffloadReply) {
        code = outcome.code as Code;
        // The worker's error, stack included, goes to our log only; the client got its message.
        if (code === Code.INTERNAL)
          this.shared.options.logger.error({ err: outcome.cause, message: msg.name, peer: this.peer }, 'handler failed in a worker');
        // A worker's RESPONSE bytes go out like any response: fragmented or compressed when large.
        if (outcome.kind === ReplyKind.RESPONSE) this.framed.messageBytes(FrameType.RESPONSE, outcome.flags, id, outcome.body);
        else this.framed.frame(FrameType.ERROR, outcome.flags, id, outcome.body, writeBytes);
      } else if (failed) {
        const draft = errorDraftFor(msg, outcome);
        code = draft.code as Code;
        if (code === Code.INTERNAL)
          this.shared.options.logger.error({ err: outcome, message: msg.name, peer: this.peer }, 'handler failed');
        sendError(this.framed, id, draft);
      } else {
        try {
          this.framed.message(FrameType.RESPONSE, 0, id, outcome, this.shared.writers[msg.index]!);
        } catch (err) {
          const invalid = new RpcError(
            Code.INTERNAL,
            `handler of ${msg.name} returned an invalid response: ${describeInvalid(msg.response, outcome, 'response') ?? (err as Error).message}`,
            { cause: err },
          );
          code = Code.INTERNAL;
          this.shared.options.logger.error({ err: invalid, message: msg.name, peer: this.peer }, 'handler returned an invalid response');
          sendError(this.framed, id, errorDraftFor(msg, invalid));
        }
      }
    }
    if (this.unadmitted !== undefined && code === Code.OK && !failed) this.admitProtocol();
    observer?.callEnded?.(msg.name, code, performance.now() - ctx.startedAt);
    this.endIfDrained();
  }

  /** Whether `ctx` is still a running call (not cancelled away, not replaced). */
  private tracks(id: number, ctx: CallContext, oneWay: boolean): boolean {
    return oneWay ? this.oneWays.has(ctx) : this.running.get(id) === ctx;
  }

  private untrack(id: number, ctx: CallContext, oneWay: boolean): void {
    if (oneWay) this.oneWays.delete(ctx);
    else if (this.running.get(id) === ctx) this.running.delete(id);
  }

  /** A call completed: the peer is a client, its protocol (and resolvers) may join the shared cache. */
  private admitProtocol(): void {
    this.shared.cache.admit(this.unadmitted!, this.codec);
    this.unadmitted = undefined;
  }

  /** A call cancelled before its handler ran (authorization still pending): its slot is free. */
  private release(ctx: CallContext): void {
    if (this.orphans.delete(ctx)) this.endIfDrained();
  }

  /** Answers a request that no handler will see: flagged REFUSED, so a client may send it elsewhere. */
  private refuse(id: number, oneWay: boolean, code: Code, message: string): void {
    this.shared.options.observer?.callEnded?.('(refused)', code, 0);
    this.admitted?.delete(id);
    if (this.heads.size > 0) this.heads.delete(id);
    if (!oneWay) {
      sendError(this.framed, id, { code, message, metadata: undefined, declared: undefined }, Flag.REFUSED);
    }
    // The last request still arriving may have been this one.
    this.endIfDrained();
  }

  /**
   * Judges a request from its start (index, metadata) while its body still arrives in fragments or
   * inflates: a call `authorize` refuses, for an unknown message, or with metadata over the limit is
   * answered at once (REFUSED) and the rest of it is discarded unbuffered. Anything else, including a
   * start that does not parse yet, is left to {@link onRequest} once the request is whole.
   */
  private checkHead(flags: number, id: number, start: Buffer): boolean {
    const authorize = this.shared.options.authorize;
    if (this.codec === undefined || this.state !== 'ready' || authorize === undefined || id === 0) return true;
    const oneWay = (flags & Flag.ONE_WAY) !== 0;
    const o = this.shared.options;
    let name: string;
    let metadata;
    try {
      const head = readRequestHead(flags, start, o.maxMetadataBytes);
      if (head.metadataBytes > o.maxMetadataBytes) {
        this.refuse(id, oneWay, Code.RESOURCE_EXHAUSTED, `request metadata exceeds maxMetadataBytes (${o.maxMetadataBytes})`);
        return false;
      }
      const local = this.codec.requests[head.index]?.local;
      if (local === undefined || local === null) {
        this.refuse(id, oneWay, Code.UNIMPLEMENTED, `unknown message index ${head.index}`);
        return false;
      }
      name = local.name;
      metadata = head.metadata;
    } catch {
      return true;
    }
    let verdict: unknown;
    try {
      verdict = authorize(this.peer.principal, name, metadata);
    } catch {
      verdict = false;
    }
    if (verdict === true) {
      this.heads.set(id, true);
      return true;
    }
    const thenable = verdict !== null && typeof verdict === 'object' && typeof (verdict as Promise<unknown>).then === 'function';
    if (!thenable) {
      this.refuse(id, oneWay, Code.PERMISSION_DENIED, `not allowed to call ${name}`);
      return false;
    }
    const pending = Promise.resolve(verdict).then(
      (v) => v === true,
      () => false,
    );
    this.heads.set(id, pending);
    void pending.then((allowed) => {
      // Still ours (the request is not whole yet, nor cancelled): refuse it and drop what arrived.
      if (allowed || this.heads.get(id) !== pending) return;
      this.framed.discard(id);
      this.refuse(id, oneWay, Code.PERMISSION_DENIED, `not allowed to call ${name}`);
    });
    return true;
  }

  private onCancel(id: number): void {
    this.framed.discard(id);
    this.admitted?.delete(id);
    if (this.heads.size > 0) this.heads.delete(id);
    const ctx = this.running.get(id);
    if (ctx !== undefined) {
      this.running.delete(id);
      this.orphans.add(ctx);
      ctx.cancel(new RpcError(Code.CANCELLED, 'call cancelled by the client'));
    }
    // A client sends CANCEL when its deadline passes too: one for a running call at, or within
    // DEADLINE_CANCEL_SLACK_MS of, its deadline is a timeout, not a reset, and is not counted (an
    // overloaded server must not cut off its patient clients; a peer that sends short deadlines to
    // waste handler starts can do so without any CANCEL, and maxConcurrentCalls bounds it either way).
    const timedOut = ctx !== undefined && ctx.deadline - Date.now() < DEADLINE_CANCEL_SLACK_MS;
    const limits = this.shared.options;
    if (!timedOut && limits.maxCancels > 0 && (this.cancelGuard ??= new CancelGuard(limits)).cancel(this.completedCalls)) {
      return this.framed.fail(new RpcError(Code.RESOURCE_EXHAUSTED, `too many cancelled calls: ${this.cancelGuard.describe()}`));
    }
    // A cancelled partial request is no longer awaited either.
    this.endIfDrained();
  }

  private onClose(error: RpcError): void {
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.expiryTimer);
    clearInterval(this.idleTimer);
    this.account.close();
    this.heads.clear();
    const o = this.shared.options;
    o.observer?.connectionClosed?.(`${this.peer.address}:${this.peer.port}`, error.code === Code.UNAVAILABLE ? undefined : error);
    logClose(o.logger, 'server', error, this.codec !== undefined, this.state === 'draining', { peer: this.peer });
    if (this.state !== 'closed') this.transition('closed');
    const reason = new RpcError(Code.CANCELLED, `connection closed: ${error.message}`, { cause: error });
    for (const ctx of this.running.values()) ctx.cancel(reason);
    for (const ctx of this.oneWays) ctx.cancel(reason);
    this.running.clear();
    this.oneWays.clear();
    this.orphans.clear();
    this.onClosed(this);
  }

  private transition(to: ServerConnectionState): void {
    if (!LEGAL[this.state].includes(to)) throw new Error(`ServerConnection: illegal transition ${this.state} -> ${to}`);
    if (this.state === 'handshaking') this.handshakeSlot?.release();
    this.state = to;
  }
}
