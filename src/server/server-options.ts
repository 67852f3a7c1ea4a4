import type { Protocol } from '../codec/protocol.js';
import { Protocol as ProtocolClass } from '../codec/protocol.js';
import { DEFAULT_RESOLVER_CACHE_BYTES } from '../codec/resolver-cache.js';
import { aclAuthorizer, allOf, type Acl, type Authenticator, type Authorizer } from '../security/auth.js';
import { KNOWN_SERVER_TLS_OPTIONS, type ServerTlsOptions } from '../security/tls.js';
import {
  KNOWN_TRANSPORT_OPTIONS,
  resolveTransportOptions,
  transportDefaults,
  type ResolvedTransportOptions,
  type TransportOptions,
} from '../connection/transport-options.js';
import { fnOption, intOption, invalid, knownOptions, msOption } from '../util/validate.js';
import { guarded, isLogger, type Logger, type RpcObserver } from '../observability/observer.js';
import { resolveTracing, type Tracing, type TracingOptions } from '../observability/tracing.js';
import { serverTracingInterceptor } from '../observability/server-tracing.js';
import { errorDraftFor } from './error-reply.js';
import type { CallContext } from './call-context.js';
import { resolveHttpOptions, type HttpOptions, type ResolvedHttpOptions } from './http/http-options.js';
import { chainHandler, type ServerInterceptor } from './interceptor.js';
import type { HandlersOf } from './typed-handlers.js';
import { defaultMaxBufferedBytes } from './memory-budget.js';
import { resolveWorkerOptions, type ResolvedWorkerOptions, type WorkerOptions } from './offload/worker-options.js';

/**
 * A message handler: gets the request record (parameters by name) and the call context; returns the
 * response (or a promise of it). Throwing an `RpcError` keeps its code; throwing a value of one of the
 * message's declared Avro errors sends it as a declared error; anything else becomes INTERNAL.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Handler = (request: any, ctx: CallContext) => unknown;

/**
 * Options of `createServer`. Everything but `protocol` and `handlers` is optional. The transport
 * options (frame and message limits, fragments, compression, keepalive) are those of
 * {@link TransportOptions}, with the server's defaults ({@link SERVER_TRANSPORT_DEFAULTS}). `Api`, a
 * generated API type, types `handlers`; without it they are untyped.
 */
export interface ServerOptions<Api = undefined> extends TransportOptions {
  /** The protocol served (from `loadProtocol`). */
  protocol: Protocol;
  /**
   * Handlers by message name. A message without a handler answers UNIMPLEMENTED. Typed by an API
   * type from `avrpc gen` (`createServer<EchoApi>`), exactly one per message with its types.
   */
  handlers: [Api] extends [undefined] ? Record<string, Handler> : HandlersOf<Api>;
  /**
   * Calls one connection may have running at once; beyond it RESOURCE_EXHAUSTED. Compressed requests
   * count too until inflated (and at most 4 inflate at once per connection). Default 16384.
   */
  maxConcurrentCalls?: number;
  /**
   * Streams (SPEC.md section 13) one connection may have running at once; beyond it RESOURCE_EXHAUSTED
   * (flagged REFUSED). Each also counts as a call for `maxConcurrentCalls`. Default 1000.
   */
  maxConcurrentStreams?: number;
  /**
   * A stream with no frame either way (no element, end or credit) for this long, in ms, is ended with
   * ERROR CANCELLED and its handler's signal aborted (checked once per period: after one to two
   * periods of silence); 0 turns it off. Default 600000 (10 min).
   */
  streamIdleTimeoutMs?: number;
  /**
   * Rapid-reset guard (SPEC.md section 6): CANCELs a connection may send within `cancelWindowMs` (the
   * count halves every window) before `maxCancelRatio` is looked at; past both, the client gets GOAWAY
   * RESOURCE_EXHAUSTED and is closed. 0 turns the guard off. Default 500.
   */
  maxCancels?: number;
  /**
   * CANCELs allowed per completed call (one a handler answered, whatever its outcome) within the same
   * window, once `maxCancels` is reached. Default 4 (a client may cancel four calls in five).
   */
  maxCancelRatio?: number;
  /** Window of the rapid-reset guard, in ms: the CANCEL and completed-call counts halve every window. Default 10000. */
  cancelWindowMs?: number;
  /** Time a new connection has to complete its handshake, in ms. Default 10000. */
  handshakeTimeoutMs?: number;
  /** Protocol text the resolver cache keeps at most, in UTF-8 bytes (a parsed protocol takes tens of times its text). Default 4 MiB. */
  resolverCacheBytes?: number;
  /**
   * Event-loop time spent building protocols that unknown peers sent (not authenticated, by
   * `authenticate` or a verified client certificate, and not yet in the resolver cache), in ms per
   * second, server-wide: a token bucket holding one second's worth, each parse drawing what it took.
   * While it is spent, such handshakes get GOAWAY UNAVAILABLE (a passing refusal: clients back off
   * and retry), so a stream of connections each carrying a new protocol cannot take the event loop.
   * 0 turns the budget off. Default 250.
   */
  protocolParseMsPerSecond?: number;
  /**
   * Largest frame body accepted before the handshake completes (WELCOME OK), in bytes: a HELLO carries
   * at most the protocol text and meta, so an unauthenticated peer cannot make the server buffer and
   * decode `maxFrameBytes`. A longer frame gets GOAWAY RESOURCE_EXHAUSTED. Never above `maxFrameBytes`.
   * Default `maxProtocolBytes` + `maxHelloMetaBytes` + 1024 (room for any HELLO within both limits).
   */
  maxHandshakeBytes?: number;
  /**
   * Largest HELLO `meta` map (credentials, extension offers), in bytes as encoded; a longer one, or one
   * with more than 64 entries, gets GOAWAY RESOURCE_EXHAUSTED before it is decoded or `authenticate`
   * runs. Default 16384.
   */
  maxHelloMetaBytes?: number;
  /** Serve TLS (mTLS with `requestCert` and `ca`). Default: plain TCP. */
  tls?: ServerTlsOptions;
  /**
   * Decides who a new connection is, from its handshake; throwing refuses it (UNAUTHENTICATED). A
   * principal with a numeric `expiresAt` (epoch ms) authorizes the connection until then only (see
   * `Authenticator`). Default: everyone, principal = the mTLS certificate if any.
   */
  authenticate?: Authenticator;
  /** Decides per call; false refuses it with PERMISSION_DENIED before the handler runs. */
  authorize?: Authorizer;
  /** Declarative per-message access list (checked with `authorize` when both are given). */
  acl?: Acl;
  /**
   * Open connections at most; more are refused with RESOURCE_EXHAUSTED. With `tls`, TLS handshakes in
   * progress count too, and a connection beyond the limit is closed before its TLS handshake. Default 10000.
   */
  maxConnections?: number;
  /**
   * Connections still in their handshake (no WELCOME OK sent yet; with `tls`, from the TCP accept on,
   * TLS handshake included), server-wide; one more is refused with GOAWAY UNAVAILABLE, then close (with
   * `tls`, closed before any TLS byte), so a client backs off and retries. Silent or slow sockets so
   * hold at most this many of the `maxConnections` slots. At most `maxConnections`. Default 1000.
   */
  maxHandshakingConnections?: number;
  /**
   * Connections in handshake from one source address (IPv6: one /64), refused the same way beyond it:
   * one host cannot take every handshake slot. Default 100.
   */
  maxHandshakingPerAddress?: number;
  /** A connection with no call for this long is closed gracefully, in ms; 0 disables. Default 600000. */
  idleTimeoutMs?: number;
  /** Largest request metadata, in bytes as sent; larger gets RESOURCE_EXHAUSTED. Default 8192. */
  maxMetadataBytes?: number;
  /**
   * Memory all connections together may make the server hold, in bytes: partial frames and messages
   * (handshakes and uploads in progress), inflations, and answers queued for clients. New work beyond
   * it (a fragmented upload, an inflation, a large frame) is refused RESOURCE_EXHAUSTED; when it is
   * crossed anyway, the connections holding the most are closed (GOAWAY RESOURCE_EXHAUSTED) until the
   * rest holds three quarters of it. Connections still in their handshake may hold an eighth of it
   * together. `server.bufferedBytes` tells what is held. Default an eighth of
   * V8's heap limit (`v8.getHeapStatistics().heap_size_limit`), at least 64 MiB.
   */
  maxBufferedBytes?: number;
  /**
   * A request arriving in fragments that gets no byte for this long is refused RESOURCE_EXHAUSTED and
   * its buffer freed (the connection stays); a fragmented answer whose client acknowledges nothing
   * (no WINDOW) for this long ends the connection (GOAWAY RESOURCE_EXHAUSTED). Detected after one to
   * two periods, in ms; 0 disables. Default 5000.
   */
  stallTimeoutMs?: number;
  /**
   * Middleware around every handler, first outermost. Default none. Refused together with `workers`
   * (they need the decoded request, which offloaded calls never have here): use `authorize`/`acl`.
   */
  interceptors?: readonly ServerInterceptor[];
  /** Metrics hooks (see `createPrometheusObserver`). Default none. */
  observer?: RpcObserver;
  /**
   * OpenTelemetry tracing (`@opentelemetry/api`, an optional peer dependency): a SERVER span per
   * handled call and stream, continuing the caller's trace from the call metadata (W3C `traceparent`),
   * the handler run in its context (its calls are its children). `true`: the global tracer provider
   * and propagator; an object names them. Default off: nothing is loaded, calls pay nothing. Without
   * the package installed, `listen` fails FAILED_PRECONDITION naming it. Calls refused before a
   * handler is chosen, and calls run in `workers`, get no span.
   */
  tracing?: boolean | TracingOptions;
  /**
   * A pino-compatible logger; nothing is logged per successful call. `error`: a handler threw something
   * other than an RpcError it chose (INTERNAL) or returned an invalid response; `warn`: a connection
   * closed by a protocol error, a limit, a handshake timeout or refused credentials; `debug`: orderly
   * closes. Default: silent.
   */
  logger?: Logger;
  /**
   * Run handlers inside an AsyncLocalStorage scope so that calls they make inherit their deadline and
   * cancellation. Default true. The scope is entered only once the thread has created a client (a
   * handler's calls come from one; create it before serving): a process that only serves does not
   * pay for the promise hook an AsyncLocalStorage in use puts on every promise.
   */
  propagateDeadlines?: boolean;
  /** Handlers that run on worker threads, fed request bytes (see {@link WorkerOptions}). Default none. */
  workers?: WorkerOptions;
  /**
   * Serve HTTP/JSON too (see {@link HttpOptions}): `{}` answers HTTP/1.1 on the avrpc port, `{ port }`
   * on a port of its own. The same handlers, interceptors, `authenticate` (Bearer tokens), `authorize`,
   * limits, observer and drain apply. Default off.
   */
  http?: HttpOptions;
}

/** {@link ServerOptions} with every default filled in. */
export interface ResolvedServerOptions extends ResolvedTransportOptions {
  protocol: Protocol;
  /** Handlers indexed by local message index (undefined: UNIMPLEMENTED). */
  handlers: (Handler | undefined)[];
  maxConcurrentCalls: number;
  maxConcurrentStreams: number;
  streamIdleTimeoutMs: number;
  maxCancels: number;
  maxCancelRatio: number;
  cancelWindowMs: number;
  handshakeTimeoutMs: number;
  resolverCacheBytes: number;
  protocolParseMsPerSecond: number;
  /** Already at most `maxFrameBytes`. */
  maxHandshakeBytes: number;
  maxHelloMetaBytes: number;
  tls: ServerTlsOptions | undefined;
  authenticate: Authenticator | undefined;
  authorize: Authorizer | undefined;
  maxConnections: number;
  maxHandshakingConnections: number;
  maxHandshakingPerAddress: number;
  idleTimeoutMs: number;
  maxMetadataBytes: number;
  maxBufferedBytes: number;
  stallTimeoutMs: number;
  observer: RpcObserver | undefined;
  tracing: Tracing | undefined;
  logger: Logger;
  propagateDeadlines: boolean;
  workers: ResolvedWorkerOptions | undefined;
  http: ResolvedHttpOptions | undefined;
}

const MiB = 1024 * 1024;

/**
 * The server's transport defaults: the shared ones, with `maxMessageBytes` and `maxQueuedBytes` of
 * 16 MiB (what one client can make the server hold, SPEC.md section 11.3) and a `keepaliveTimeoutMs`
 * of 10 s (a client is probed only when idle).
 */
export const SERVER_TRANSPORT_DEFAULTS = transportDefaults({
  maxMessageBytes: 16 * MiB,
  maxQueuedBytes: 16 * MiB,
  keepaliveTimeoutMs: 10_000,
});

/**
 * Every option name of {@link ServerOptions}: any other name is refused (a typo would leave its
 * default in force). The compiler keeps it in step with the interface: add new options here too.
 */
export const KNOWN_SERVER_OPTIONS = {
  protocol: true,
  handlers: true,
  ...KNOWN_TRANSPORT_OPTIONS,
  maxConcurrentCalls: true,
  maxConcurrentStreams: true,
  streamIdleTimeoutMs: true,
  handshakeTimeoutMs: true,
  maxHandshakeBytes: true,
  maxHelloMetaBytes: true,
  tls: true,
  authenticate: true,
  authorize: true,
  acl: true,
  maxConnections: true,
  idleTimeoutMs: true,
  maxMetadataBytes: true,
  interceptors: true,
  observer: true,
  tracing: true,
  logger: true,
  propagateDeadlines: true,
  workers: true,
  http: true,
  maxCancels: true,
  maxCancelRatio: true,
  cancelWindowMs: true,
  resolverCacheBytes: true,
  protocolParseMsPerSecond: true,
  maxHandshakingConnections: true,
  maxHandshakingPerAddress: true,
  maxBufferedBytes: true,
  stallTimeoutMs: true,
} as const satisfies Record<keyof ServerOptions, true>;

/** Validates and fills server options once; throws INVALID_ARGUMENT naming the bad option. */
export function resolveServerOptions(options: ServerOptions): ResolvedServerOptions {
  const at = 'createServer: options';
  if (options === null || typeof options !== 'object') invalid(at, 'must be an object');
  knownOptions(at, options, KNOWN_SERVER_OPTIONS);
  if (!(options.protocol instanceof ProtocolClass)) invalid(`${at}.protocol`, 'must be a Protocol from loadProtocol()');
  const protocol = options.protocol;
  if (options.handlers === null || typeof options.handlers !== 'object') invalid(`${at}.handlers`, 'must be an object of functions');
  const handlers: (Handler | undefined)[] = protocol.messages.map(() => undefined);
  for (const [name, fn] of Object.entries(options.handlers)) {
    const msg = protocol.message(name);
    if (msg === undefined) invalid(`${at}.handlers.${name}`, `names no message of protocol ${protocol.name}`);
    if (typeof fn !== 'function') invalid(`${at}.handlers.${name}`, 'must be a function');
    handlers[msg.index] = fn;
  }
  const interceptors = options.interceptors ?? [];
  if (!Array.isArray(interceptors) || interceptors.some((i) => typeof i !== 'function'))
    invalid(`${at}.interceptors`, 'must be an array of functions');
  // Interceptors take the decoded request, which worker-offloaded calls never have on the main thread:
  // they would silently skip those calls (an auth interceptor bypassed by a large request).
  if (interceptors.length > 0 && options.workers !== undefined) {
    invalid(
      `${at}.interceptors`,
      'cannot be combined with options.workers: interceptors would not run for worker-offloaded calls; check access with options.authorize or options.acl, which apply to every call',
    );
  }
  const tracing = resolveTracing(`${at}.tracing`, options.tracing, protocol.name);
  const chain = tracing === undefined ? interceptors : [tracedHandlers(tracing, protocol), ...interceptors];
  if (chain.length > 0) for (let i = 0; i < handlers.length; i++) if (handlers[i]) handlers[i] = chainHandler(handlers[i]!, chain);
  if (options.logger !== undefined && !isLogger(options.logger)) invalid(`${at}.logger`, 'must have debug, info, warn and error methods');
  if (options.observer !== undefined && (options.observer === null || typeof options.observer !== 'object'))
    invalid(`${at}.observer`, 'must be an object');
  const transport = resolveTransportOptions(at, options, SERVER_TRANSPORT_DEFAULTS);
  const { maxFrameBytes, maxProtocolBytes } = transport;
  const maxHelloMetaBytes = intOption(`${at}.maxHelloMetaBytes`, options.maxHelloMetaBytes, 16 * 1024, 1, 0xffffffff);
  // The rest of a HELLO (fingerprints, union indexes, the text's length) is under 50 bytes.
  const maxConnections = intOption(`${at}.maxConnections`, options.maxConnections, 10_000, 1);
  const maxHandshakeBytes = intOption(
    `${at}.maxHandshakeBytes`,
    options.maxHandshakeBytes,
    maxProtocolBytes + maxHelloMetaBytes + 1024,
    64,
  );
  return {
    ...transport,
    protocol,
    handlers,
    maxConcurrentCalls: intOption(`${at}.maxConcurrentCalls`, options.maxConcurrentCalls, 16384, 1),
    maxConcurrentStreams: intOption(`${at}.maxConcurrentStreams`, options.maxConcurrentStreams, 1000, 1),
    streamIdleTimeoutMs: msOption(`${at}.streamIdleTimeoutMs`, options.streamIdleTimeoutMs, 600_000, 0),
    maxCancels: intOption(`${at}.maxCancels`, options.maxCancels, 500, 0),
    maxCancelRatio: intOption(`${at}.maxCancelRatio`, options.maxCancelRatio, 4, 0),
    cancelWindowMs: msOption(`${at}.cancelWindowMs`, options.cancelWindowMs, 10_000, 1),
    handshakeTimeoutMs: msOption(`${at}.handshakeTimeoutMs`, options.handshakeTimeoutMs, 10_000, 1),
    resolverCacheBytes: intOption(`${at}.resolverCacheBytes`, options.resolverCacheBytes, DEFAULT_RESOLVER_CACHE_BYTES, 1),
    protocolParseMsPerSecond: intOption(`${at}.protocolParseMsPerSecond`, options.protocolParseMsPerSecond, 250, 0, 1000),
    maxHandshakeBytes: Math.min(maxHandshakeBytes, maxFrameBytes),
    maxHelloMetaBytes,
    tls: resolveTls(`${at}.tls`, options.tls),
    authenticate: fnOption<Authenticator>(`${at}.authenticate`, options.authenticate, true),
    authorize: allOf([
      ...(options.authorize === undefined ? [] : [fnOption<Authorizer>(`${at}.authorize`, options.authorize, false)!]),
      ...(options.acl === undefined ? [] : [aclAuthorizer(resolveAcl(`${at}.acl`, options.acl, protocol), `${at}.acl`)]),
    ]),
    maxConnections,
    maxHandshakingConnections: Math.min(
      maxConnections,
      intOption(`${at}.maxHandshakingConnections`, options.maxHandshakingConnections, 1000, 1),
    ),
    maxHandshakingPerAddress: intOption(`${at}.maxHandshakingPerAddress`, options.maxHandshakingPerAddress, 100, 1),
    idleTimeoutMs: msOption(`${at}.idleTimeoutMs`, options.idleTimeoutMs, 600_000, 0),
    maxMetadataBytes: intOption(`${at}.maxMetadataBytes`, options.maxMetadataBytes, 8192, 0),
    maxBufferedBytes: intOption(`${at}.maxBufferedBytes`, options.maxBufferedBytes, defaultMaxBufferedBytes(), 1024),
    stallTimeoutMs: msOption(`${at}.stallTimeoutMs`, options.stallTimeoutMs, 5000, 0),
    ...guarded(options.observer, options.logger),
    tracing,
    propagateDeadlines: options.propagateDeadlines ?? true,
    workers: resolveWorkerOptions(`${at}.workers`, options.workers, protocol, (i) => handlers[i] !== undefined),
    http: resolveHttpOptions(`${at}.http`, options.http),
  };
}

/** The tracing interceptor, first of the chain: a span per handled call, ended with the code the server sends. */
function tracedHandlers(tracing: Tracing, protocol: Protocol): ServerInterceptor {
  const streams = new Set(protocol.messages.filter((m) => m.stream === 'server' || m.stream === 'bidi').map((m) => m.name));
  return serverTracingInterceptor(tracing, streams, (message, thrown) => errorDraftFor(protocol.message(message)!, thrown));
}

function resolveTls(path: string, tls: ServerTlsOptions | undefined): ServerTlsOptions | undefined {
  if (tls === undefined) return undefined;
  if (tls === null || typeof tls !== 'object') invalid(path, 'must be an object');
  knownOptions(path, tls, KNOWN_SERVER_TLS_OPTIONS);
  if (tls.cert === undefined || tls.key === undefined) invalid(path, 'needs cert and key');
  return tls;
}

function resolveAcl(path: string, acl: Acl, protocol: Protocol): Acl {
  if (acl === null || typeof acl !== 'object') invalid(path, 'must be an object of message name to entry list');
  // Entries are checked by aclAuthorizer.
  for (const name of Object.keys(acl)) {
    if (name !== '*' && protocol.message(name) === undefined) invalid(`${path}.${name}`, `names no message of protocol ${protocol.name}`);
  }
  return acl;
}
