import { LIMITS_META_KEY, decodeLimits, type ServerLimits } from '../framing/limits.js';
import type { Socket } from 'node:net';
import { checkFingerprint } from '../codec/fingerprint.js';
import type { PeerCodec } from '../codec/peer-codec.js';
import type { Protocol } from '../codec/protocol.js';
import type { ResolverCache } from '../codec/resolver-cache.js';
import type { FramedSocket } from '../connection/framed-socket.js';
import { Code } from '../errors/code.js';
import { handshakeError, protocolError } from '../errors/protocol-error.js';
import { RpcError } from '../errors/rpc-error.js';
import { accepted, offer, type Negotiated } from '../framing/extensions.js';
import { FrameType } from '../framing/frame.js';
import { TOKEN_META_KEY } from '../security/auth.js';
import { readyEvent } from '../security/tls.js';
import { callHook } from '../util/call-hook.js';
import { connectFailureKind, permanentFailure, type ConnectFailure } from './connect-failure.js';
import {
  HELLO_FLOOR_BYTES,
  helloType,
  readHandshake,
  welcomeType,
  writeHandshake,
  type Hello,
  type Welcome,
} from '../framing/handshake.js';

/** What a client remembers of an endpoint's handshake, across its connections. */
export interface HandshakeMemory {
  /** The server's fingerprint once known: sent as `knownServerFingerprint`. */
  serverFingerprint: Buffer | null;
  /** Set once a server asked for our protocol text: send it up front from then on. */
  sendProtocol: boolean;
}

/** Writes a HELLO body (SPEC.md section 3). */
export const writeHello = writeHandshake(helloType);

/**
 * The client's HELLO: our fingerprint, our protocol text when the server is known to need it (or asked
 * for it), the server fingerprint we expect (so a server we know can skip its own text), and `meta`.
 */
export function hello(protocol: Protocol, endpoint: HandshakeMemory, withProtocol: boolean, meta: Record<string, Buffer>): Hello {
  return {
    fingerprint: protocol.fingerprint,
    protocol: withProtocol ? protocol.text : null,
    knownServerFingerprint: endpoint.serverFingerprint,
    meta,
  };
}

/**
 * True when a HELLO carrying our protocol text and `meta` stays within {@link HELLO_FLOOR_BYTES}, which
 * every server accepts before authenticating us. A longer text goes only in a second HELLO, after
 * NEED_PROTOCOL (the server has authenticated us by then), or not at all if the server knows it.
 */
export function helloFits(protocol: Protocol, meta: Record<string, Buffer>): boolean {
  // Fingerprints and union indexes: 34 bytes; each length prefix: at most 5.
  let n = 34 + 5 + Buffer.byteLength(protocol.text) + 1;
  for (const [k, v] of Object.entries(meta)) n += 10 + Buffer.byteLength(k) + v.length;
  return n <= HELLO_FLOOR_BYTES;
}

/** What a WELCOME OK gave: the server's protocol, and its `meta` (extensions it accepted). */
export interface WelcomeOk {
  remote: Protocol;
  meta: Record<string, Buffer>;
}

/**
 * Reads a WELCOME: `'NEED_PROTOCOL'` when the server asks for our protocol text (the endpoint then
 * sends it up front from now on), or the server's protocol, learned from the text it sent (checked
 * against its fingerprint) or known from the cache. Throws an `Error` saying what is wrong for a
 * WELCOME that breaks the handshake's rules; the caller turns it into a protocol error. A protocol text
 * longer than `maxProtocolBytes` (UTF-8) throws RESOURCE_EXHAUSTED before it is hashed or parsed, and
 * one beyond `PEER_PROTOCOL_LIMITS` RESOURCE_EXHAUSTED before any Avro type is built of it.
 */
export function readWelcome(
  body: Buffer,
  cache: ResolverCache,
  endpoint: HandshakeMemory,
  sentProtocol: boolean,
  maxProtocolBytes: number,
): WelcomeOk | 'NEED_PROTOCOL' {
  const w = readHandshake<Welcome>(welcomeType, body);
  const id = w.fingerprint.toString('hex');
  let remote: Protocol | undefined;
  if (w.protocol !== null) {
    // Parsing a protocol costs far more than its bytes: a hostile server must not make us parse megabytes.
    const bytes = Buffer.byteLength(w.protocol);
    if (bytes > maxProtocolBytes) {
      throw new RpcError(Code.RESOURCE_EXHAUSTED, `server protocol text of ${bytes} bytes exceeds maxProtocolBytes (${maxProtocolBytes})`);
    }
    checkFingerprint(w.protocol, id, 'server');
    remote = cache.learn(w.protocol, id);
  } else {
    remote = cache.protocol(id);
  }
  if (w.status === 'NEED_PROTOCOL') {
    if (sentProtocol) throw new Error('server asked twice for the client protocol');
    endpoint.sendProtocol = true;
    if (remote !== undefined) endpoint.serverFingerprint = w.fingerprint;
    return 'NEED_PROTOCOL';
  }
  if (remote === undefined) throw new Error('server omitted a protocol this client does not know');
  endpoint.serverFingerprint = w.fingerprint;
  return { remote, meta: w.meta };
}

/**
 * What to tell callers when a connection closed before its handshake completed: a close right after
 * our HELLO usually means a TLS server spoken to in plaintext, and bytes we could not parse mean the
 * endpoint is not (yet) an avrpc server; both are UNAVAILABLE, so the pool tries elsewhere.
 */
export function handshakeFailure(error: RpcError, endpoint: string, helloSent: boolean): RpcError {
  if (error.code === Code.UNAVAILABLE && error.cause === undefined && helloSent) {
    return new RpcError(
      Code.UNAVAILABLE,
      `${endpoint} closed the connection during the handshake ` +
        `(${error.message}); a TLS server spoken to in plaintext, or not an avrpc server?`,
      { cause: error },
    );
  }
  if (!error.isRemote && (error.code === Code.INTERNAL || error.code === Code.RESOURCE_EXHAUSTED)) {
    return new RpcError(Code.UNAVAILABLE, `${endpoint} is not an avrpc v1 server (${error.message})`, { cause: error });
  }
  return error;
}

/** Room a WELCOME needs beyond its protocol text: fingerprint, union indexes, the server's meta (extensions). */
const WELCOME_OVERHEAD_BYTES = 64 * 1024;
/** A close by the peer this soon after our HELLO, without a byte, is a `suspect` connect failure (connect-failure.ts). */
const SUSPECT_CLOSE_MS = 1000;

/** What a {@link ClientHandshake} needs of the client's options. */
export interface ClientHandshakeOptions {
  /** Time allowed for TCP connect plus handshake, in ms. */
  connectTimeoutMs: number;
  /** Largest server protocol text accepted in a WELCOME, in UTF-8 bytes. */
  maxProtocolBytes: number;
  /** Largest frame once the handshake completed, in bytes. */
  maxFrameBytes: number;
  /** Token for the handshake, fetched per connection. */
  credentials: (() => string | Promise<string>) | undefined;
}

/** What a completed handshake yields: the server's protocol, the codec to talk to it, the extensions both sides use. */
export interface Established {
  readonly remote: Protocol;
  readonly codec: PeerCodec;
  readonly negotiated: Negotiated;
  /** The limits the server advertised (SPEC.md section 11.4), or undefined when it advertised none. */
  readonly limits: ServerLimits | undefined;
}

/** Why a connection that never completed its handshake closed: the error for its calls, and its kind for the pool. */
export interface ConnectFailed {
  readonly error: RpcError;
  readonly failure: ConnectFailure;
}

/**
 * The client's side of one connection's handshake (SPEC.md section 3): fetches credentials, sends the
 * preface and HELLO once the socket is up (again with our protocol text after NEED_PROTOCOL), reads
 * the WELCOME, and gives up after `connectTimeoutMs`. It keeps what tells a failed attempt's kind
 * (the first bytes the peer sent, how soon it closed). Only once it yields {@link Established} does the
 * connection build the session that serves calls.
 */
export class ClientHandshake {
  /** An error the server's WELCOME earned that is not "not avrpc" (a protocol over our limits): the calls' error. */
  refusal: RpcError | undefined;
  private readonly timer: NodeJS.Timeout;
  private meta: Record<string, Buffer> = {};
  private sentProtocol = false;
  private prefaceSent = false;
  /** When our first HELLO was queued (`performance.now()`). */
  private helloAt = 0;
  /** We gave up (a silent or stopped server, transient), rather than the peer closing. */
  private timedOut = false;
  /** The first bytes the server sent: they tell an HTTP or TLS server from an avrpc one. */
  private firstBytes: Buffer | undefined;

  constructor(
    private readonly framed: FramedSocket,
    socket: Socket,
    private readonly protocol: Protocol,
    private readonly cache: ResolverCache,
    private readonly memory: HandshakeMemory,
    private readonly options: ClientHandshakeOptions,
    /** `host:port`, for messages. */
    private readonly endpoint: string,
  ) {
    // Until WELCOME OK only a WELCOME (or a GOAWAY or ERROR) may come, and its protocol text is capped:
    // a hostile server cannot make us buffer maxFrameBytes before that cap is checked.
    const { maxFrameBytes, maxProtocolBytes } = options;
    const handshakeBytes = Math.min(maxFrameBytes, maxProtocolBytes + WELCOME_OVERHEAD_BYTES);
    framed.limitFrames(handshakeBytes, `the handshake limit (maxProtocolBytes ${maxProtocolBytes} + 64 KiB)`);
    this.timer = setTimeout(() => {
      this.timedOut = true;
      framed.destroy(new RpcError(Code.UNAVAILABLE, `connect to ${endpoint} timed out after ${options.connectTimeoutMs} ms`));
    }, options.connectTimeoutMs);
    socket.once(readyEvent(socket), () => this.authenticateThenHello());
    socket.once('data', (chunk: Buffer) => {
      this.firstBytes = Buffer.from(chunk.subarray(0, 32));
    });
  }

  /**
   * Reads a WELCOME: the handshake's result once it is OK; undefined when the server asked for our
   * protocol (a second HELLO went) or the WELCOME broke the rules (the connection is failed).
   */
  onWelcome(body: Buffer): Established | undefined {
    let remote: Protocol;
    let negotiated: Negotiated;
    let limits: ServerLimits | undefined;
    try {
      const w = readWelcome(body, this.cache, this.memory, this.sentProtocol, this.options.maxProtocolBytes);
      if (w === 'NEED_PROTOCOL') {
        this.sendHello(true);
        return undefined;
      }
      remote = w.remote;
      negotiated = accepted(w.meta, this.framed.support);
      // Invalid or absent: assume nothing (the server still refuses what breaks its limits).
      limits = decodeLimits(w.meta[LIMITS_META_KEY]);
    } catch (err) {
      // A server protocol over our limits: its calls fail with that code and message, not as "not avrpc".
      if (err instanceof RpcError && err.code === Code.RESOURCE_EXHAUSTED) this.refusal = err;
      const error =
        err instanceof RpcError && err.code !== Code.RESOURCE_EXHAUSTED
          ? protocolError(`in handshake: ${err.message}`, err)
          : handshakeError(err);
      this.framed.fail(error);
      return undefined;
    }
    clearTimeout(this.timer);
    this.framed.established(negotiated, this.options.maxFrameBytes, limits);
    return { remote, codec: this.cache.codec(remote), negotiated, limits };
  }

  /** Stops the connect timer (the connection closed). */
  stop(): void {
    clearTimeout(this.timer);
  }

  /** Classifies a close before the handshake completed (`error` as the socket reported it), and says what to tell callers. */
  failed(error: RpcError): ConnectFailed {
    // Closed by the peer soon after our HELLO: what a TLS server does to plaintext. An avrpc server closes
    // a handshake only after its handshakeTimeoutMs (or says why in a GOAWAY), which is not a suspect.
    const quickClose = this.prefaceSent && !this.timedOut && performance.now() - this.helloAt < SUSPECT_CLOSE_MS;
    const failure = connectFailureKind(error, quickClose);
    return {
      failure,
      error:
        failure === 'permanent'
          ? permanentFailure(error, this.endpoint, this.firstBytes)
          : handshakeFailure(error, this.endpoint, this.prefaceSent),
    };
  }

  private authenticateThenHello(): void {
    const credentials = this.options.credentials;
    if (credentials === undefined) return this.sendHello();
    callHook(credentials)
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

  private sendHello(withProtocol = this.memory.sendProtocol): void {
    const meta = { ...this.meta, ...offer(this.framed.support) };
    // A first HELLO stays within what every server takes before authenticating (SPEC.md section 3).
    if (withProtocol && !this.prefaceSent && !helloFits(this.protocol, meta)) withProtocol = false;
    this.sentProtocol = withProtocol;
    if (!this.prefaceSent) {
      this.framed.preface();
      this.helloAt = performance.now();
    }
    this.prefaceSent = true;
    this.framed.frame(FrameType.HELLO, 0, 0, hello(this.protocol, this.memory, withProtocol, meta), writeHello);
  }
}
