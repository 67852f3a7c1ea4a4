import { setTimeout as sleep } from 'node:timers/promises';
import type { MessageDef } from '../codec/protocol.js';
import { rawMessage } from '../codec/raw-message.js';
import { DEFAULT_RESOLVER_CACHE_BYTES, ResolverCache } from '../codec/resolver-cache.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { CallRunner } from './call-runner.js';
import {
  KNOWN_CALL_OPTIONS,
  clientConnectionOptions,
  resolveClientOptions,
  type CallOptions,
  type ClientOptions,
  type DiscoveryOptions,
} from './client-options.js';
import { Pool, type EndpointStats } from './pool.js';
import { chainCall, type OutgoingCall } from './interceptor.js';
import { describe, knownOptions } from '../util/validate.js';
import type { Logger } from '../observability/observer.js';

/** An avrpc client. Create it with {@link createClient}. */
export interface Client {
  /**
   * Calls `message` with its request record (parameters by name). Resolves with the response; one-way
   * messages resolve once the request is handed to the socket (UNAVAILABLE if it dies first). Rejects with an `RpcError`: the server's code, a
   * declared Avro error in `details`, DEADLINE_EXCEEDED, CANCELLED, UNAVAILABLE when no server can be reached.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  call<T = any>(message: string, request: object, options?: CallOptions): Promise<T>;
  /**
   * Like `call`, with the request already Avro-encoded (the request record, in this client's
   * protocol) and the response returned as its Avro bytes, undecoded: for pipelines that pass
   * payloads through. The server validates the request. Interceptors see `request` as the bytes.
   */
  callRaw(message: string, request: Uint8Array, options?: CallOptions): Promise<Buffer>;
  /** Stops taking calls, waits for calls in flight, and closes every socket. */
  close(): Promise<void>;
  /** The pool's state per endpoint right now: sockets, calls in flight, latency, ejection. */
  stats(): EndpointStats[];
}

/**
 * Creates a client over a pool of sockets: fixed `endpoints`, or `discovery` from a registry. Connects
 * on the first call. Throws INVALID_ARGUMENT on bad options.
 */
export function createClient(options: ClientOptions): Client {
  const o = resolveClientOptions(options);
  // The pool's callbacks reach the runner, which needs the pool: it is created right after.
  // eslint-disable-next-line prefer-const
  let runner: CallRunner | undefined;
  const pool = new Pool(
    {
      protocol: o.protocol,
      connection: clientConnectionOptions(o),
      connectionsPerEndpoint: o.connectionsPerEndpoint,
      balancer: o.balancer,
      backoff: o.backoff,
      ejectAfterFailures: o.ejectAfterFailures,
      ejectMs: o.ejectMs,
      ejectIntervalMs: o.ejectIntervalMs,
      ejectFailurePercent: o.ejectFailurePercent,
      ejectMinCalls: o.ejectMinCalls,
      maxEjectedPercent: o.maxEjectedPercent,
    },
    new ResolverCache(o.protocol, o.resolverCacheSize, Math.max(DEFAULT_RESOLVER_CACHE_BYTES, o.maxProtocolBytes + 1)),
    () => runner!.flushQueue(),
    (err) => runner!.failQueue(err),
  );
  runner = new CallRunner(pool, o);
  const detachObserver = o.observer?.poolAttached?.(() => pool.stats());
  pool.setEndpoints(o.endpoints);
  const stopWatching = new AbortController();
  const watching = o.discovery === undefined ? Promise.resolve() : follow(o.discovery, pool, stopWatching.signal, o.logger);
  const protocol = o.protocol;
  const defaultTimeout = o.timeoutMs;
  let closing: Promise<void> | undefined;

  const rawMessages = new Map<string, MessageDef>();
  const send = (message: string, request: object, callOptions: CallOptions | undefined): Promise<never> => {
    let msg = protocol.message(message);
    // A Uint8Array is never a request record: it comes from callRaw.
    if (msg !== undefined && request instanceof Uint8Array) {
      let raw = rawMessages.get(message);
      if (raw === undefined) rawMessages.set(message, (raw = rawMessage(msg)));
      msg = raw;
    }
    if (msg === undefined) {
      return Promise.reject(new RpcError(Code.UNIMPLEMENTED, `no message '${message}' in protocol ${protocol.name}`));
    }
    // A misspelt option (timeoutMS) would silently leave the call without its deadline. Per call, so
    // no allocation and plain compares (the names of KNOWN_CALL_OPTIONS, which the error message uses).
    if (callOptions !== undefined) {
      for (const k in callOptions) {
        if (k !== 'timeoutMs' && k !== 'metadata' && k !== 'signal' && Object.hasOwn(callOptions, k))
          return Promise.reject(unknownCallOption(callOptions));
      }
    }
    const timeoutMs = callOptions?.timeoutMs ?? defaultTimeout;
    const signal = callOptions?.signal;
    const metadata = callOptions?.metadata;
    if (
      (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs >= 0)) ||
      (signal !== undefined && !isAbortSignal(signal)) ||
      (metadata !== undefined && !isMetadata(metadata))
    ) {
      return Promise.reject(callOptionsError(timeoutMs, signal, metadata));
    }
    // Infinity: no deadline (also how one call opts out of the client's default timeoutMs).
    const deadline = timeoutMs === undefined || timeoutMs === Infinity ? -1 : performance.now() + timeoutMs;
    return runner!.run(msg, request, deadline, signal, metadata) as Promise<never>;
  };
  const chained = o.interceptors.length === 0 ? undefined : chainCall((c) => send(c.message, c.request, c.options), o.interceptors);
  // Whatever an interceptor throws, the caller gets an RpcError with a code.
  const intercepted =
    chained === undefined
      ? undefined
      : (c: OutgoingCall) =>
          new Promise<unknown>((resolve) => resolve(chained(c))).catch((err: unknown) => {
            throw RpcError.from(err);
          });

  return {
    call(message: string, request: object, callOptions?: CallOptions) {
      if (intercepted !== undefined) return intercepted({ message, request, options: callOptions ?? {} }) as Promise<never>;
      return send(message, request, callOptions);
    },
    callRaw(message: string, request: Uint8Array, callOptions?: CallOptions) {
      if (!(request instanceof Uint8Array))
        return Promise.reject(new RpcError(Code.INVALID_ARGUMENT, 'callRaw: request must be a Uint8Array of Avro bytes'));
      if (intercepted !== undefined) return intercepted({ message, request, options: callOptions ?? {} }) as Promise<never>;
      return send(message, request, callOptions);
    },
    stats() {
      return pool.stats();
    },
    close() {
      closing ??= (async () => {
        stopWatching.abort();
        runner!.close();
        await Promise.all([pool.close(), watching]);
        if (typeof detachObserver === 'function') detachObserver();
      })();
      return closing;
    },
  };
}

const isAbortSignal = (s: unknown): s is AbortSignal =>
  typeof s === 'object' &&
  s !== null &&
  typeof (s as AbortSignal).aborted === 'boolean' &&
  typeof (s as AbortSignal).addEventListener === 'function';

/** String keys to string values: what a METADATA map can carry. */
function isMetadata(m: unknown): boolean {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return false;
  for (const k in m) if (typeof (m as Record<string, unknown>)[k] !== 'string') return false;
  return true;
}

/** The INVALID_ARGUMENT for a call option of an unknown name, naming it and the closest known one. */
function unknownCallOption(options: object): RpcError {
  try {
    if (options === null || typeof options !== 'object') return new RpcError(Code.INVALID_ARGUMENT, 'call: options must be an object');
    knownOptions('call: options', options, KNOWN_CALL_OPTIONS);
  } catch (err) {
    return RpcError.from(err);
  }
  return new RpcError(Code.INVALID_ARGUMENT, 'call: options has an unknown property');
}

/** The INVALID_ARGUMENT for call options `send` found wrong, naming the option. */
function callOptionsError(timeoutMs: unknown, signal: unknown, metadata: unknown): RpcError {
  let problem = `options.timeoutMs must be a number >= 0, got ${describe(timeoutMs)}`;
  if (signal !== undefined && !isAbortSignal(signal)) {
    problem = `options.signal must be an AbortSignal, got ${describe(signal)}`;
  } else if (metadata !== undefined && !isMetadata(metadata)) {
    const entries = typeof metadata === 'object' && metadata !== null && !Array.isArray(metadata) ? Object.entries(metadata) : [];
    const bad = entries.find(([, v]) => typeof v !== 'string');
    problem =
      bad === undefined
        ? `options.metadata must be an object of string values, got ${describe(metadata)}`
        : `options.metadata.${bad[0]} must be a string, got ${describe(bad[1])}`;
  }
  return new RpcError(Code.INVALID_ARGUMENT, `call: ${problem}`);
}

/**
 * Feeds registry snapshots to the pool until `signal` aborts. A watch that fails (registry unreachable)
 * is reported to the logger and restarted with backoff, keeping the endpoints we have; one that fails
 * for a reason retrying cannot fix (INVALID_ARGUMENT, FAILED_PRECONDITION: the registry is closed)
 * stops following. The retry timer never keeps the process alive on its own.
 */
async function follow(discovery: DiscoveryOptions, pool: Pool, signal: AbortSignal, logger: Logger): Promise<void> {
  let delayMs = 100;
  while (!signal.aborted) {
    try {
      const options = discovery.version === undefined ? { signal } : { signal, version: discovery.version };
      for await (const instances of discovery.registry.watch(discovery.service, options)) {
        delayMs = 100;
        pool.setEndpoints(instances.map((i) => ({ host: i.host, port: i.port, weight: i.weight })));
      }
    } catch (err) {
      if (signal.aborted) break;
      const e = RpcError.from(err, Code.UNAVAILABLE);
      if (e.code === Code.INVALID_ARGUMENT || e.code === Code.FAILED_PRECONDITION) {
        logger.error({ err: e, code: e.codeName, service: discovery.service }, 'discovery stopped: the registry refused the watch');
        return;
      }
      logger.warn({ err: e, code: e.codeName, service: discovery.service, retryInMs: delayMs }, 'registry watch failed; retrying');
    }
    if (signal.aborted) break;
    await sleep(delayMs, undefined, { signal, ref: false }).catch(() => undefined);
    delayMs = Math.min(delayMs * 2, 5000);
  }
}
