import { setTimeout as sleep } from 'node:timers/promises';
import type { MessageDef } from '../codec/protocol.js';
import { rawMessage } from '../codec/raw-message.js';
import { DEFAULT_RESOLVER_CACHE_BYTES, ResolverCache } from '../codec/resolver-cache.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { CallRunner } from './call-runner.js';
import { checkCallOptions, timeoutOf } from './call-options-check.js';
import {
  clientConnectionOptions,
  resolveClientOptions,
  type CallOptions,
  type ClientOptions,
  type DiscoveryOptions,
} from './client-options.js';
import { Pool, type EndpointStats } from './pool.js';
import { chainCall, type CallKind, type OutgoingCall } from './interceptor.js';
import { CallHooks } from './call-hooks.js';
import { ClientStream, type ResponseStream } from './client-stream.js';
import { deferredStream, failedStream, kindError } from './stream-calls.js';
import { isElementSource, type ElementSource } from '../connection/element-pump.js';
import type { StreamKind } from '../codec/protocol.js';
import type { Logger } from '../observability/observer.js';
import { clientTracingInterceptor } from '../observability/client-tracing.js';
import type { TypedClient } from './typed-client.js';

export type { ResponseStream } from './client-stream.js';
export type { CallKind } from './interceptor.js';

/**
 * An avrpc client. Create it with {@link createClient}. `Api`, an API type from `avrpc gen`, types
 * it ({@link TypedClient}); without it, {@link UntypedClient}.
 */
export type Client<Api = undefined> = [Api] extends [undefined] ? UntypedClient : TypedClient<Api>;

/** A client without an API type: message names are strings, requests objects, results `any` (or `T`). */
export interface UntypedClient {
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
  /**
   * Opens a server stream (`@stream("server")`): one request, the responses as they come. Starts at
   * once; iterate the result once. Breaking out of `for await` cancels it on the server. A failure
   * mid-stream: the iterator yields the elements received, then throws the `RpcError`.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  serverStream<T = any>(message: string, request: object, options?: CallOptions): ResponseStream<T>;
  /**
   * Opens a client stream (`@stream("client")`): sends `requests` as the server takes them (its credit),
   * then resolves with the one response. The server may answer before the requests ran out: the rest
   * are not pulled (the iterable is closed).
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  clientStream<T = any>(message: string, requests: AsyncIterable<object> | Iterable<object>, options?: CallOptions): Promise<T>;
  /** Opens a bidi stream (`@stream("bidi")`): `requests` go out as the server takes them, the responses come as a server stream's. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  bidiStream<T = any>(message: string, requests: AsyncIterable<object> | Iterable<object>, options?: CallOptions): ResponseStream<T>;
  /** Stops taking calls, waits for calls in flight, and closes every socket. */
  close(): Promise<void>;
  /** The pool's state per endpoint right now: sockets, calls in flight, latency, ejection. */
  stats(): EndpointStats[];
}

/**
 * Creates a client over a pool of sockets: fixed `endpoints`, or `discovery` from a registry. Connects
 * on the first call. Throws INVALID_ARGUMENT on bad options. `createClient<EchoApi>(...)`, with an
 * API type from `avrpc gen`, returns a client typed by it.
 */
export function createClient<Api = undefined>(options: ClientOptions): Client<Api> {
  return createUntypedClient(options) as Client<Api>;
}

function createUntypedClient(options: ClientOptions): UntypedClient {
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
    {},
    (err) => runner!.failDown(err),
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
    if (msg === undefined) return Promise.reject(noMessage(message));
    if (msg.stream !== undefined) return Promise.reject(kindError(msg, 'unary'));
    const problem = checkCallOptions(callOptions, defaultTimeout);
    if (problem !== undefined) return Promise.reject(problem);
    const onHeader = callOptions?.onHeader;
    const onTrailer = callOptions?.onTrailer;
    const hooks = onHeader === undefined && onTrailer === undefined ? undefined : new CallHooks(onHeader, onTrailer);
    return runner!.run(
      msg,
      request,
      timeoutOf(callOptions, defaultTimeout),
      callOptions?.signal,
      callOptions?.metadata,
      hooks,
      callOptions?.waitForReady,
    ) as Promise<never>;
  };
  const noMessage = (message: string): RpcError => new RpcError(Code.UNIMPLEMENTED, `no message '${message}' in protocol ${protocol.name}`);

  /** Starts a stream of `kind`: a client stream's promise, or the responses of the others. */
  const openStream = (
    kind: StreamKind,
    message: string,
    request: unknown,
    callOptions: CallOptions | undefined,
  ): Promise<unknown> | ResponseStream<unknown> => {
    const fail = (error: RpcError): Promise<never> | ResponseStream<unknown> =>
      kind === 'client' ? Promise.reject(error) : failedStream(error);
    const msg = protocol.message(message);
    if (msg === undefined) return fail(noMessage(message));
    if (msg.stream !== kind) return fail(kindError(msg, kind));
    const problem = checkCallOptions(callOptions, defaultTimeout);
    if (problem !== undefined) return fail(problem);
    if (kind !== 'server' && !isElementSource(request)) {
      return fail(new RpcError(Code.INVALID_ARGUMENT, `${msg.name}: requests must be an iterable or an async iterable of request records`));
    }
    const requests = kind === 'server' ? undefined : (request as ElementSource<object>);
    const stream = new ClientStream(msg, kind, requests, o.maxBufferedElements, o.observer, callOptions?.onHeader, callOptions?.onTrailer);
    const done = runner!.run(
      msg,
      request,
      timeoutOf(callOptions, defaultTimeout),
      callOptions?.signal,
      callOptions?.metadata,
      stream,
      callOptions?.waitForReady,
    );
    if (kind === 'client') return done;
    // The stream's iterator reports the outcome; the call's promise is not the caller's.
    done.catch(noop);
    return stream.responses();
  };
  const direct = (
    kind: CallKind,
    message: string,
    request: object,
    callOptions: CallOptions | undefined,
  ): Promise<unknown> | ResponseStream<unknown> =>
    kind === 'unary' || kind === 'oneWay' ? send(message, request, callOptions) : openStream(kind, message, request, callOptions);
  // Tracing, when on, is the first interceptor: the user's run inside its span.
  const interceptors = o.tracing === undefined ? o.interceptors : [clientTracingInterceptor<OutgoingCall>(o.tracing), ...o.interceptors];
  const chained =
    interceptors.length === 0
      ? undefined
      : chainCall((c) => Promise.resolve(direct(c.kind, c.message, c.request, c.options)), interceptors);
  // Whatever an interceptor throws, the caller gets an RpcError with a code.
  const intercepted =
    chained === undefined
      ? undefined
      : (c: OutgoingCall) =>
          new Promise<unknown>((resolve) => resolve(chained(c))).catch((err: unknown) => {
            throw RpcError.from(err);
          });

  /** The kind of a call to `message` for interceptors (only read when there are some). */
  const callKind = (message: string): CallKind => (protocol.message(message)?.oneWay === true ? 'oneWay' : 'unary');
  const stream = (kind: StreamKind, message: string, request: object, callOptions: CallOptions | undefined): unknown => {
    if (intercepted === undefined) return direct(kind, message, request, callOptions);
    const result = intercepted({ message, request, options: callOptions ?? {}, kind });
    return kind === 'client' ? result : deferredStream(result);
  };

  return {
    call(message: string, request: object, callOptions?: CallOptions) {
      if (intercepted !== undefined)
        return intercepted({ message, request, options: callOptions ?? {}, kind: callKind(message) }) as Promise<never>;
      return send(message, request, callOptions);
    },
    callRaw(message: string, request: Uint8Array, callOptions?: CallOptions) {
      if (!(request instanceof Uint8Array))
        return Promise.reject(new RpcError(Code.INVALID_ARGUMENT, 'callRaw: request must be a Uint8Array of Avro bytes'));
      if (intercepted !== undefined)
        return intercepted({ message, request, options: callOptions ?? {}, kind: callKind(message) }) as Promise<never>;
      return send(message, request, callOptions);
    },
    serverStream(message: string, request: object, callOptions?: CallOptions) {
      return stream('server', message, request, callOptions) as ResponseStream<never>;
    },
    clientStream(message: string, requests: AsyncIterable<object> | Iterable<object>, callOptions?: CallOptions) {
      return stream('client', message, requests, callOptions) as Promise<never>;
    },
    bidiStream(message: string, requests: AsyncIterable<object> | Iterable<object>, callOptions?: CallOptions) {
      return stream('bidi', message, requests, callOptions) as ResponseStream<never>;
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

function noop(): void {}

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
