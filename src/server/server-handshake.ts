import { LIMITS_META_KEY } from '../framing/limits.js';
import { checkFingerprint } from '../codec/fingerprint.js';
import type { PeerCodec } from '../codec/peer-codec.js';
import type { Protocol } from '../codec/protocol.js';
import type { ResolverCache } from '../codec/resolver-cache.js';
import type { FramedSocket } from '../connection/framed-socket.js';
import { Code } from '../errors/code.js';
import { handshakeError, protocolError } from '../errors/protocol-error.js';
import { RpcError } from '../errors/rpc-error.js';
import { accept as acceptExtensions, type Negotiated } from '../framing/extensions.js';
import { FrameType } from '../framing/frame.js';
import { HEALTH_META_KEY, encodeHealth } from '../framing/health.js';
import { HELLO_FLOOR_BYTES, readHello, welcomeType, writeHandshake, type Hello, type Welcome } from '../framing/handshake.js';
import { TOKEN_META_KEY, principalExpiry } from '../security/auth.js';
import { callHook } from '../util/call-hook.js';
import type { PeerInfo } from './call-context.js';
import { sendError } from './error-reply.js';
import type { ParseBudget } from './parse-budget.js';
import type { Readiness } from './readiness.js';
import type { ResolvedServerOptions } from './server-options.js';

const writeWelcome = writeHandshake(welcomeType);

/** What the handshake writes with: a `FramedSocket` in production, a fake in unit tests. */
export type HandshakeWriter = Pick<FramedSocket, 'frame' | 'fail' | 'end' | 'limitFrames' | 'support' | 'isClosed'>;

/** What the handshake needs of the server. */
export interface HandshakeShared {
  readonly options: ResolvedServerOptions;
  readonly cache: ResolverCache;
  readonly parseBudget?: ParseBudget | undefined;
  /** The `avrpc.limits` value a WELCOME OK carries (SPEC.md section 11.4); undefined: none. */
  readonly limits?: Buffer | undefined;
  /** What a health HELLO hears (SPEC.md section 14); undefined reads as serving. */
  readonly readiness?: Readiness | undefined;
}

/** What a completed handshake yields: all a session needs to serve calls. */
export interface HandshakeResult {
  /** The peer's protocol. */
  readonly remote: Protocol;
  /** The resolution of the peer's protocol against ours. */
  readonly codec: PeerCodec;
  /** What `authenticate` returned (the TLS certificate without it), undefined for none. */
  readonly principal: unknown;
  /** The extensions both sides use (SPEC.md section 12.1). */
  readonly negotiated: Negotiated;
  /**
   * The peer's protocol while it is this connection's alone: parsed from a stranger's HELLO, it joins
   * the shared resolver cache only once the peer proves to be a client (a first call completed), so
   * strangers cannot fill or churn that cache. Undefined when it was shared at once.
   */
  readonly unadmitted: Protocol | undefined;
}

/** What the handshake tells its connection. */
export interface HandshakeOwner {
  /** The peer, as the connection knows it (`authenticate` sees it). */
  readonly peer: PeerInfo;
  /** The peer is identified: record its principal (defined). */
  identified(principal: unknown): void;
  /** `authenticate` gave a principal with an `expiresAt` (epoch ms): arm its expiry; false when already past. */
  expiresAt(at: number): boolean;
  /** WELCOME OK went out: build the session. */
  established(result: HandshakeResult): void;
}

/**
 * Largest frame accepted before `authenticate` accepted the connection: a HELLO with a null protocol
 * (its meta within `maxHelloMetaBytes`), or any HELLO within the SPEC's floor; never above `maxHandshakeBytes`.
 */
export function preAuthHelloBytes(o: ResolvedServerOptions): number {
  return Math.min(o.maxHandshakeBytes, Math.max(HELLO_FLOOR_BYTES, o.maxHelloMetaBytes + 1024));
}

/** Accepts frames up to `maxHandshakeBytes` (a HELLO carrying protocol text), naming the smaller limit. */
export function limitToHandshake(writer: Pick<FramedSocket, 'limitFrames'>, o: ResolvedServerOptions): void {
  writer.limitFrames(o.maxHandshakeBytes, o.maxHandshakeBytes < o.maxFrameBytes ? 'maxHandshakeBytes' : 'maxFrameBytes');
}

/**
 * The server's side of the handshake (SPEC.md section 3): reads at most two HELLOs, authenticates the
 * first (before it parses any protocol text the peer sent), asks for the peer's protocol text when its
 * fingerprint is unknown (WELCOME NEED_PROTOCOL), and sends WELCOME OK, handing a
 * {@link HandshakeResult} to its owner; or fails the connection.
 */
export class ServerHandshake {
  private step: 'hello' | 'authenticating' | 'done' = 'hello';
  /** HELLOs seen: a handshake needs at most two (the second after NEED_PROTOCOL). */
  private hellos = 0;
  /** What `authenticate` accepted, once it did: a second HELLO is not authenticated again. */
  private accepted: { readonly principal: unknown } | undefined;

  constructor(
    private readonly shared: HandshakeShared,
    private readonly writer: HandshakeWriter,
    private readonly owner: HandshakeOwner,
  ) {
    // Until `authenticate` accepted the peer, no more than a small HELLO: its protocol text follows NEED_PROTOCOL.
    const o = shared.options;
    if (o.authenticate !== undefined)
      writer.limitFrames(preAuthHelloBytes(o), 'the HELLO limit before authentication (maxHelloMetaBytes + 1024)');
    else limitToHandshake(writer, o);
  }

  /** True once WELCOME OK went out. */
  get done(): boolean {
    return this.step === 'done';
  }

  /** A HELLO frame's body arrived. */
  onHello(body: Buffer): void {
    if (this.step === 'done') return this.writer.fail(protocolError('HELLO after the handshake'));
    if (this.step === 'authenticating') return this.writer.fail(protocolError('HELLO during authentication'));
    // Each HELLO may cost a protocol parse and a WELCOME carrying our whole protocol text: allow no loop.
    if (++this.hellos > 2) return this.writer.fail(protocolError('more than two HELLOs'));
    let hello: Hello;
    try {
      // Meta is checked for size before it is decoded, and before authenticate sees it.
      hello = readHello(body, this.shared.options.maxHelloMetaBytes);
    } catch (err) {
      return this.writer.fail(handshakeError(err));
    }
    const health = hello.meta[HEALTH_META_KEY];
    if (health !== undefined) return this.answerHealth(health);
    const authenticate = this.shared.options.authenticate;
    if (authenticate === undefined) return this.answer(hello, this.owner.peer.certificate);
    if (this.accepted !== undefined) return this.answer(hello, this.accepted.principal);
    // Authenticate first: a peer that is refused never makes us parse the protocol text it sent.
    this.step = 'authenticating';
    const token = hello.meta[TOKEN_META_KEY]?.toString('utf8');
    callHook(() => authenticate({ token, meta: hello.meta }, this.owner.peer)).then(
      (principal) => {
        this.step = 'hello';
        if (this.writer.isClosed) return;
        const expiresAt = principalExpiry(principal);
        if (expiresAt !== undefined && !this.owner.expiresAt(expiresAt))
          return this.refuse(new RpcError(Code.UNAUTHENTICATED, 'credentials expired'));
        this.accepted = { principal };
        // Authenticated: a second HELLO may now carry a protocol text up to maxProtocolBytes.
        limitToHandshake(this.writer, this.shared.options);
        this.answer(hello, principal);
      },
      (err: unknown) => this.refuse(err),
    );
  }

  /**
   * Refuses the connection (authentication failed, or the credentials expired before the handshake
   * completed): an ERROR with id 0, then the connection closes.
   */
  refuse(err: unknown): void {
    this.step = 'hello';
    // The hook's own error stays the cause, for the server's log; the client gets the message only.
    const e =
      err instanceof RpcError && (err.code === Code.PERMISSION_DENIED || err.code === Code.UNAUTHENTICATED)
        ? err
        : new RpcError(Code.UNAUTHENTICATED, err instanceof Error ? err.message : 'authentication failed', { cause: err });
    sendError(this.writer, 0, { code: e.code, message: e.message, metadata: undefined, declared: undefined });
    this.writer.end(e);
  }

  /**
   * Answers a health HELLO (SPEC.md section 14) and closes: before `authenticate`, as an HTTP probe is
   * (readiness is no secret, and a load balancer holds no token), and without reading its protocol.
   */
  private answerHealth(service: Buffer): void {
    const local = this.shared.options.protocol;
    const name = service.toString('utf8');
    const serving = this.shared.readiness?.serving ?? true;
    const status = name !== '' && name !== local.name ? 'SERVICE_UNKNOWN' : serving ? 'SERVING' : 'NOT_SERVING';
    const welcome: Welcome = {
      status: 'OK',
      fingerprint: local.fingerprint,
      protocol: null,
      meta: { [HEALTH_META_KEY]: encodeHealth(status) },
    };
    this.writer.frame(FrameType.WELCOME, 0, 0, welcome, writeWelcome);
    this.writer.end();
  }

  /** Answers a HELLO: NEED_PROTOCOL when its fingerprint is unknown to us, else WELCOME OK. */
  private answer(hello: Hello, principal: unknown): void {
    let remote: Protocol | undefined;
    let unadmitted: Protocol | undefined;
    try {
      const id = hello.fingerprint.toString('hex');
      remote = this.shared.cache.protocol(id);
      if (hello.protocol !== null && remote === undefined) {
        const learnt = this.learn(hello.protocol, id);
        if (learnt instanceof RpcError) return this.writer.fail(learnt);
        remote = learnt.remote;
        unadmitted = learnt.unadmitted;
      } else if (hello.protocol !== null) {
        this.checkText(hello.protocol, id);
      }
    } catch (err) {
      // A protocol beyond PEER_PROTOCOL_LIMITS keeps its code (RESOURCE_EXHAUSTED).
      return this.writer.fail(
        err instanceof RpcError && err.code === Code.RESOURCE_EXHAUSTED
          ? err
          : protocolError(`in handshake: ${err instanceof Error ? err.message : String(err)}`, err),
      );
    }
    const local = this.shared.options.protocol;
    const clientKnowsUs =
      hello.fingerprint.equals(local.fingerprint) ||
      (hello.knownServerFingerprint !== null && hello.knownServerFingerprint.equals(local.fingerprint));
    const welcome: Welcome = {
      status: 'NEED_PROTOCOL',
      fingerprint: local.fingerprint,
      protocol: clientKnowsUs ? null : local.text,
      meta: {},
    };
    if (principal !== undefined) this.owner.identified(principal);
    if (remote === undefined) return this.writer.frame(FrameType.WELCOME, 0, 0, welcome, writeWelcome);
    welcome.status = 'OK';
    const extensions = acceptExtensions(hello.meta, this.writer.support);
    // The limits this server holds requests to (SPEC.md section 11.4), so a client can refuse locally what breaks them.
    welcome.meta = this.shared.limits === undefined ? extensions.meta : { ...extensions.meta, [LIMITS_META_KEY]: this.shared.limits };
    this.writer.frame(FrameType.WELCOME, 0, 0, welcome, writeWelcome);
    this.step = 'done';
    this.owner.established({ remote, codec: this.shared.cache.codec(remote), principal, negotiated: extensions.negotiated, unadmitted });
  }

  /** Throws unless a protocol text is within `maxProtocolBytes` and matches its fingerprint. */
  private checkText(text: string, id: string): void {
    // Parsing costs far more than the bytes: cap what an unauthenticated peer can make us parse.
    const bytes = Buffer.byteLength(text);
    const max = this.shared.options.maxProtocolBytes;
    if (bytes > max) throw new RpcError(Code.RESOURCE_EXHAUSTED, `protocol text of ${bytes} bytes exceeds maxProtocolBytes (${max})`);
    checkFingerprint(text, id, 'client');
  }

  /**
   * Parses a protocol text we had not seen. A peer `authenticate` accepted, or whose certificate TLS
   * verified, is known: its protocol is shared at once. A stranger's waits on the parse budget, and
   * serves its connection only (`unadmitted`). Returns the error that fails the connection when the
   * budget is spent.
   */
  private learn(text: string, id: string): { remote: Protocol; unadmitted: Protocol | undefined } | RpcError {
    this.checkText(text, id);
    const cache = this.shared.cache;
    const known = this.accepted !== undefined || this.owner.peer.certificate !== undefined;
    const budget = this.shared.parseBudget;
    let remote: Protocol;
    if (known || budget === undefined) remote = cache.parse(text);
    else if (budget.available()) remote = budget.spend(() => cache.parse(text));
    else {
      // UNAVAILABLE, not RESOURCE_EXHAUSTED: passing, so clients back off and retry (by then a
      // client of the same protocol has often completed a call, and the protocol is shared).
      return new RpcError(
        Code.UNAVAILABLE,
        'server busy: its protocolParseMsPerSecond ' +
          `(${this.shared.options.protocolParseMsPerSecond}) is spent on protocols of unauthenticated peers; retry later`,
      );
    }
    if (!known) return { remote, unadmitted: remote };
    cache.admit(remote);
    return { remote, unadmitted: undefined };
  }
}
