import type { Socket } from 'node:net';
import { Protocol } from '../codec/protocol.js';
import type { Registry } from '../discovery/registry.js';
import { checkVersionRange } from '../discovery/select.js';
import { KNOWN_CLIENT_TLS_OPTIONS, dialer, type ClientTlsOptions } from '../security/tls.js';
import {
  KNOWN_TRANSPORT_OPTIONS,
  framedSocketOptions,
  resolveTransportOptions,
  transportDefaults,
  type ResolvedTransportOptions,
  type TransportOptions,
} from '../connection/transport-options.js';
import { MAX_TIMER_MS, intOption, invalid, knownOptions, msOption } from '../util/validate.js';
import { guarded, isLogger, type Logger, type RpcObserver } from '../observability/observer.js';
import type { ClientInterceptor } from './interceptor.js';
import { resolveTracing, type Tracing, type TracingOptions } from '../observability/tracing.js';
import type { RpcError } from '../errors/rpc-error.js';
import { DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import { balancers, type Balancer, type BalancerName } from './balancer.js';
import type { HedgeDelay } from './hedging.js';

const MiB = 1024 * 1024;

/** A server address. */
export interface Endpoint {
  host: string;
  port: number;
}

/** Where a client finds its servers when they come from a registry. */
export interface DiscoveryOptions {
  /** The registry to watch (static, etcd, DNS). */
  registry: Registry;
  /** Service name. */
  service: string;
  /** Semver range of acceptable versions, e.g. `'^2.1'`. Default: any. */
  version?: string;
}

/**
 * Options of `createClient`. `protocol` and one of `endpoints` or `discovery` are required. The
 * transport options (frame and message limits, fragments, compression, keepalive) are those of
 * {@link TransportOptions}, with the client's defaults ({@link CLIENT_TRANSPORT_DEFAULTS}).
 */
export interface ClientOptions extends TransportOptions {
  /** The protocol this client speaks (from `loadProtocol`). */
  protocol: Protocol;
  /** Fixed servers, as `'host:port'` strings or `{ host, port }`. */
  endpoints?: ReadonlyArray<string | Endpoint>;
  /** Servers from a registry, followed as they come and go. */
  discovery?: DiscoveryOptions;
  /** Default deadline of every call, in ms; a call's own `timeoutMs` wins. Default (and `Infinity`): none. */
  timeoutMs?: number;
  /** Sockets kept open per endpoint. Default 1. */
  connectionsPerEndpoint?: number;
  /**
   * How a call picks its socket: `'leastConnections'` (fewest calls in flight), `'roundRobin'`,
   * `'weighted'` (registry weights), `'powerOfTwoChoices'` (in-flight x latency), or your own
   * function over the snapshot of usable connections. Default `'leastConnections'`.
   */
  balancer?: BalancerName | Balancer;
  /** Messages safe to retry even after an attempt that may have run (also `@idempotent(true)` in IDL). */
  idempotent?: readonly string[];
  /** Attempts per call at most, the first included. Default 3. */
  maxAttempts?: number;
  /** Extra load retries may add, as a fraction of calls (token bucket). Default 0.2. */
  retryBudgetRatio?: number;
  /**
   * Retry tokens the budget saves up, and starts with: a burst of failures can retry this many calls
   * at once before retries are held to `retryBudgetRatio`; each retry spends one token. Default 100.
   */
  retryBudgetTokens?: number;
  /**
   * How long a call waits for a usable connection when none is ready, in ms: while connections are
   * being made, and with `waitForReady` also while every endpoint is down. Default 10000.
   */
  waitForReadyMs?: number;
  /**
   * Calls wait (up to `waitForReadyMs`) for a connection even when every endpoint is known down (its
   * last connection attempt failed: refused, timed out, handshake lost), instead of failing UNAVAILABLE at
   * once as gRPC does by default. Calls always wait while a first connection attempt, or the reconnect
   * after a lost connection, is in progress. A call's own `waitForReady` wins. Default false.
   */
  waitForReady?: boolean;
  /**
   * Hedged requests for idempotent unary messages (`idempotent`, `@idempotent(true)`): a call not answered
   * after this delay is sent again to another endpoint; the first answer wins, the other attempt is
   * cancelled. A number of ms, or `'p95'`: each message's observed 95th percentile latency (over its last
   * 1000 answers; no hedging before 100). Each hedge spends a retry-budget token. Never for other
   * messages, streams, or calls with `onHeader`/`onTrailer`. Default: no hedging.
   */
  hedgeDelayMs?: HedgeDelay;
  /** Calls that may wait for a connection at once; more are refused RESOURCE_EXHAUSTED. Default 10000. */
  maxQueuedCalls?: number;
  /** Reconnect backoff: first delay (default 100) and largest delay (default 5000), in ms. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Consecutive failed calls that eject an endpoint from balancing for a while. Default 5. */
  ejectAfterFailures?: number;
  /**
   * First ejection time, in ms. Doubles for repeat offenders, up to 10x; each further `ejectMs` an
   * endpoint stays in rotation undoes one doubling. Default 10000.
   */
  ejectMs?: number;
  /**
   * Outlier-detection interval, in ms: at the end of each, an endpoint whose calls in it failed more
   * than `ejectFailurePercent` of the time (at least `ejectMinCalls` calls) is ejected for `ejectMs`,
   * growing for repeat offenders as above. Failures: UNAVAILABLE or INTERNAL from the server, calls lost
   * with their connection, and calls that timed out there while other endpoints answered the same
   * message in less time than the call had (so deadlines too short for every server eject none).
   * 0 turns this off (consecutive failures still eject). Default 10000.
   */
  ejectIntervalMs?: number;
  /** Failed share of an endpoint's calls in one interval above which it is ejected, in percent (1-100). Default 50. */
  ejectFailurePercent?: number;
  /** Calls an endpoint must finish (answered or failed) in one interval to be judged by its failed share. Default 20. */
  ejectMinCalls?: number;
  /**
   * Endpoints ejected at once at most, in percent of the endpoints, by either rule: one is ejected only
   * while fewer than this share are (so with 2 endpoints, one). 0: never eject. Calls still go to ejected
   * endpoints when no other is left. Default 50.
   */
  maxEjectedPercent?: number;
  /** Time allowed for TCP connect plus handshake, in ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Connect with TLS (and a client certificate for mTLS). Default: plain TCP. */
  tls?: ClientTlsOptions;
  /** Token sent in every handshake: a string, or a function called per connection (rotating tokens). */
  credentials?: string | (() => string | Promise<string>);
  /** Middleware around every call, first outermost. Default none. */
  interceptors?: readonly ClientInterceptor[];
  /** Metrics hooks (see `createPrometheusObserver`). Default none. */
  observer?: RpcObserver;
  /**
   * OpenTelemetry tracing (`@opentelemetry/api`, an optional peer dependency): a CLIENT span per call
   * and per stream, its context sent in the call metadata (W3C `traceparent`/`tracestate`). `true`:
   * the global tracer provider and propagator; an object names them. Default off: nothing is loaded
   * and calls pay nothing. Without the package installed, calls fail FAILED_PRECONDITION naming it.
   */
  tracing?: boolean | TracingOptions;
  /**
   * A pino-compatible logger, told about connections and discovery, never about calls: `warn` connect
   * failed, protocol error or registry watch failed (retried), `info` connection lost, `error`
   * credentials refused or discovery stopped (registry closed, watch refused), `debug` orderly close.
   * Default: silent.
   */
  logger?: Logger;
}

/** Per-call options. */
export interface CallOptions {
  /** Deadline of this call, in ms from now; `Infinity`: none. Default: the client's `timeoutMs`, else none. */
  timeoutMs?: number;
  /** Aborting it cancels the call: the server is told, the call rejects CANCELLED. */
  signal?: AbortSignal;
  /** String metadata sent with the request; the handler reads it as `ctx.metadata`. */
  metadata?: Readonly<Record<string, string>>;
  /** Called once with the server's response headers ({} if it sent none), before the result. */
  onHeader?: (headers: Readonly<Record<string, string>>) => void;
  /** Called once with the server's trailers ({} if none), when the call ends, also on failure (then with its error). */
  onTrailer?: (trailers: Readonly<Record<string, string>>, error?: RpcError) => void;
  /** Wait for a connection even when every endpoint is known down. Default: the client's `waitForReady`. */
  waitForReady?: boolean;
}

/** {@link ClientOptions} with every default filled in. */
export interface ResolvedClientOptions extends ResolvedTransportOptions {
  protocol: Protocol;
  endpoints: Endpoint[];
  discovery: DiscoveryOptions | undefined;
  timeoutMs: number | undefined;
  connectionsPerEndpoint: number;
  balancer: Balancer;
  idempotent: Set<string>;
  maxAttempts: number;
  retryBudgetRatio: number;
  retryBudgetTokens: number;
  waitForReadyMs: number;
  waitForReady: boolean;
  hedgeDelayMs: HedgeDelay | undefined;
  maxQueuedCalls: number;
  backoff: BackoffOptions;
  ejectAfterFailures: number;
  ejectMs: number;
  ejectIntervalMs: number;
  ejectFailurePercent: number;
  ejectMinCalls: number;
  maxEjectedPercent: number;
  connectTimeoutMs: number;
  dial: (host: string, port: number) => Socket;
  credentials: (() => string | Promise<string>) | undefined;
  interceptors: readonly ClientInterceptor[];
  observer: RpcObserver | undefined;
  tracing: Tracing | undefined;
  logger: Logger;
}

/**
 * The client's transport defaults: the shared ones, with a larger `maxMessageBytes` and
 * `maxQueuedBytes` (its responses and its own queued requests are its caller's to bound) and a short
 * `keepaliveTimeoutMs` (a silent server is found within a call's deadline).
 */
export const CLIENT_TRANSPORT_DEFAULTS = transportDefaults({
  maxMessageBytes: 64 * MiB,
  maxQueuedBytes: 32 * MiB,
  keepaliveTimeoutMs: 2_000,
});

/**
 * The options of each of the client's connections (`ClientConnectionOptions`), taken from its filled
 * options: the transport ones through {@link framedSocketOptions}, and the handshake's.
 */
export function clientConnectionOptions(o: ResolvedClientOptions) {
  return {
    ...framedSocketOptions(o, { expectPreface: false, pauseReadsWhenBlocked: false, observer: o.observer }),
    connectTimeoutMs: o.connectTimeoutMs,
    maxProtocolBytes: o.maxProtocolBytes,
    dial: o.dial,
    credentials: o.credentials,
    logger: o.logger,
  };
}

/**
 * Every option name of {@link ClientOptions}: any other name is refused (a typo would leave its
 * default in force). The compiler keeps it in step with the interface: add new options here too.
 */
export const KNOWN_CLIENT_OPTIONS = {
  protocol: true,
  endpoints: true,
  discovery: true,
  timeoutMs: true,
  connectionsPerEndpoint: true,
  balancer: true,
  idempotent: true,
  maxAttempts: true,
  retryBudgetRatio: true,
  retryBudgetTokens: true,
  waitForReadyMs: true,
  waitForReady: true,
  hedgeDelayMs: true,
  maxQueuedCalls: true,
  backoff: true,
  ejectAfterFailures: true,
  ejectMs: true,
  ejectIntervalMs: true,
  ejectFailurePercent: true,
  ejectMinCalls: true,
  maxEjectedPercent: true,
  connectTimeoutMs: true,
  ...KNOWN_TRANSPORT_OPTIONS,
  tls: true,
  credentials: true,
  interceptors: true,
  observer: true,
  tracing: true,
  logger: true,
} as const satisfies Record<keyof ClientOptions, true>;

/** Every option name of {@link CallOptions}; others fail the call with INVALID_ARGUMENT. */
export const KNOWN_CALL_OPTIONS = {
  timeoutMs: true,
  signal: true,
  metadata: true,
  onHeader: true,
  onTrailer: true,
  waitForReady: true,
} as const satisfies Record<keyof CallOptions, true>;

const KNOWN_DISCOVERY_OPTIONS = { registry: true, service: true, version: true } as const satisfies Record<keyof DiscoveryOptions, true>;
const KNOWN_BACKOFF_OPTIONS = { initialMs: true, maxMs: true } as const satisfies Record<keyof NonNullable<ClientOptions['backoff']>, true>;

/** Parses `'host:port'` (IPv6 as `[::1]:port`). Throws INVALID_ARGUMENT naming `path`. */
export function parseEndpoint(path: string, value: string | Endpoint): Endpoint {
  if (typeof value === 'object' && value !== null) {
    if (typeof value.host !== 'string' || value.host === '') invalid(`${path}.host`, 'must be a non-empty string');
    return { host: value.host, port: intOption(`${path}.port`, value.port, 0, 1, 65535) };
  }
  const m = typeof value === 'string' ? /^\[?([^\]]+?)\]?:(\d+)$/.exec(value) : null;
  if (m === null) invalid(path, `must be 'host:port', got ${JSON.stringify(value)}`);
  return { host: m[1]!, port: intOption(path, Number(m[2]), 0, 1, 65535) };
}

function resolveBalancer(path: string, value: unknown): Balancer {
  if (value === undefined) return balancers.leastConnections();
  if (typeof value === 'function') return value as Balancer;
  if (typeof value === 'string' && Object.hasOwn(balancers, value)) return balancers[value as BalancerName]();
  return invalid(path, `must be one of ${Object.keys(balancers).join(', ')} or a function`);
}

/** Validates and fills client options once; throws INVALID_ARGUMENT naming the bad option. */
export function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  const at = 'createClient: options';
  if (options === null || typeof options !== 'object') invalid(at, 'must be an object');
  knownOptions(at, options, KNOWN_CLIENT_OPTIONS);
  if (!(options.protocol instanceof Protocol)) invalid(`${at}.protocol`, 'must be a Protocol from loadProtocol()');
  const { endpoints, discovery } = options;
  if ((endpoints === undefined) === (discovery === undefined)) invalid(at, 'needs exactly one of endpoints and discovery');
  if (endpoints !== undefined && (!Array.isArray(endpoints) || endpoints.length === 0))
    invalid(`${at}.endpoints`, 'must be a non-empty array');
  if (discovery !== undefined) {
    if (discovery === null || typeof discovery !== 'object') invalid(`${at}.discovery`, 'must be an object');
    knownOptions(`${at}.discovery`, discovery, KNOWN_DISCOVERY_OPTIONS);
    if (typeof discovery.registry?.watch !== 'function') invalid(`${at}.discovery.registry`, 'must be a Registry');
    if (typeof discovery.service !== 'string' || discovery.service === '') invalid(`${at}.discovery.service`, 'must be a non-empty string');
    // A range semver cannot parse would match no server, and the watch would refuse it only later.
    checkVersionRange(discovery.version, `${at}.discovery.version`);
  }
  const idempotent = options.idempotent ?? [];
  if (!Array.isArray(idempotent)) invalid(`${at}.idempotent`, 'must be an array of message names');
  for (const name of idempotent) {
    if (options.protocol.message(name) === undefined)
      invalid(`${at}.idempotent`, `names no message of the protocol: ${JSON.stringify(name)}`);
  }
  const ratio = options.retryBudgetRatio ?? 0.2;
  if (typeof ratio !== 'number' || !(ratio >= 0 && ratio <= 1)) invalid(`${at}.retryBudgetRatio`, 'must be a number from 0 to 1');
  if (options.backoff !== undefined) {
    if (options.backoff === null || typeof options.backoff !== 'object') invalid(`${at}.backoff`, 'must be an object');
    knownOptions(`${at}.backoff`, options.backoff, KNOWN_BACKOFF_OPTIONS);
  }
  const initialMs = msOption(`${at}.backoff.initialMs`, options.backoff?.initialMs, DEFAULT_BACKOFF.initialMs, 1);
  return {
    protocol: options.protocol,
    endpoints: (endpoints ?? []).map((e, i) => parseEndpoint(`${at}.endpoints[${i}]`, e)),
    discovery,
    timeoutMs:
      options.timeoutMs === undefined || options.timeoutMs === Infinity ? undefined : intOption(`${at}.timeoutMs`, options.timeoutMs, 0, 0),
    connectionsPerEndpoint: intOption(`${at}.connectionsPerEndpoint`, options.connectionsPerEndpoint, 1, 1, 1024),
    balancer: resolveBalancer(`${at}.balancer`, options.balancer),
    idempotent: new Set(idempotent),
    maxAttempts: intOption(`${at}.maxAttempts`, options.maxAttempts, 3, 1, 100),
    retryBudgetRatio: ratio,
    retryBudgetTokens: intOption(`${at}.retryBudgetTokens`, options.retryBudgetTokens, 100, 1, 1_000_000),
    waitForReadyMs: msOption(`${at}.waitForReadyMs`, options.waitForReadyMs, 10_000, 0),
    waitForReady: boolOption(`${at}.waitForReady`, options.waitForReady),
    hedgeDelayMs:
      options.hedgeDelayMs === 'p95'
        ? 'p95'
        : options.hedgeDelayMs === undefined
          ? undefined
          : hedgeDelay(`${at}.hedgeDelayMs`, options.hedgeDelayMs),
    maxQueuedCalls: intOption(`${at}.maxQueuedCalls`, options.maxQueuedCalls, 10_000, 0),
    backoff: {
      ...DEFAULT_BACKOFF,
      initialMs,
      maxMs: msOption(`${at}.backoff.maxMs`, options.backoff?.maxMs, DEFAULT_BACKOFF.maxMs, initialMs),
    },
    ejectAfterFailures: intOption(`${at}.ejectAfterFailures`, options.ejectAfterFailures, 5, 1),
    ejectMs: msOption(`${at}.ejectMs`, options.ejectMs, 10_000, 0, Math.floor(MAX_TIMER_MS / 10)),
    ejectIntervalMs: msOption(`${at}.ejectIntervalMs`, options.ejectIntervalMs, 10_000, 0),
    ejectFailurePercent: intOption(`${at}.ejectFailurePercent`, options.ejectFailurePercent, 50, 1, 100),
    ejectMinCalls: intOption(`${at}.ejectMinCalls`, options.ejectMinCalls, 20, 1),
    maxEjectedPercent: intOption(`${at}.maxEjectedPercent`, options.maxEjectedPercent, 50, 0, 100),
    connectTimeoutMs: msOption(`${at}.connectTimeoutMs`, options.connectTimeoutMs, 10_000, 1),
    ...resolveTransportOptions(at, options, CLIENT_TRANSPORT_DEFAULTS),
    dial: dialer(resolveTls(`${at}.tls`, options.tls)),
    credentials: resolveCredentials(`${at}.credentials`, options.credentials),
    interceptors: resolveInterceptors(`${at}.interceptors`, options.interceptors),
    tracing: resolveTracing(`${at}.tracing`, options.tracing, options.protocol.name),
    ...guarded(
      options.observer,
      options.logger === undefined || isLogger(options.logger)
        ? options.logger
        : invalid(`${at}.logger`, 'must have debug, info, warn and error methods'),
    ),
  };
}

function boolOption(path: string, value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') invalid(path, 'must be a boolean');
  return value;
}

function hedgeDelay(path: string, value: unknown): number {
  if (typeof value !== 'number') invalid(path, "must be a number of ms or 'p95'");
  return msOption(path, value, 0, 0);
}

function resolveInterceptors(path: string, list: unknown): readonly ClientInterceptor[] {
  if (list === undefined) return [];
  if (!Array.isArray(list) || list.some((i) => typeof i !== 'function')) invalid(path, 'must be an array of functions');
  return list as ClientInterceptor[];
}

function resolveTls(path: string, tls: ClientTlsOptions | undefined): ClientTlsOptions | undefined {
  if (tls !== undefined && (tls === null || typeof tls !== 'object')) invalid(path, 'must be an object');
  if (tls !== undefined) knownOptions(path, tls, KNOWN_CLIENT_TLS_OPTIONS);
  return tls;
}

function resolveCredentials(path: string, c: ClientOptions['credentials']): ResolvedClientOptions['credentials'] {
  if (c === undefined) return undefined;
  if (typeof c === 'string') return () => c;
  if (typeof c === 'function') return c;
  return invalid(path, 'must be a string or a function returning one');
}
