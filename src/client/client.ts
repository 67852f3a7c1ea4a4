import { ResolverCache } from '../codec/resolver-cache.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { resolveClientOptions, type CallOptions, type ClientOptions } from './client-options.js';
import { EndpointPool } from './endpoint-pool.js';

/** An avrpc client. Create it with {@link createClient}. */
export interface Client {
  /**
   * Calls `message` with its request record (parameters by name). Resolves with the response; one-way
   * messages resolve once the request is written. Rejects with an `RpcError`: the server's code, a
   * declared Avro error in `details`, DEADLINE_EXCEEDED, CANCELLED, UNAVAILABLE when the connection fails.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  call<T = any>(message: string, request: object, options?: CallOptions): Promise<T>;
  /** Stops taking calls, waits for calls in flight, and closes every socket. */
  close(): Promise<void>;
}

/** Creates a client. Connects lazily, on the first call. Throws INVALID_ARGUMENT on bad options. */
export function createClient(options: ClientOptions): Client {
  const o = resolveClientOptions(options);
  const pool = new EndpointPool(o, new ResolverCache(o.protocol, o.resolverCacheSize));
  const protocol = o.protocol;
  const defaultTimeout = o.timeoutMs;

  return {
    call(message: string, request: object, callOptions?: CallOptions) {
      const msg = protocol.message(message);
      if (msg === undefined) {
        return Promise.reject(new RpcError(Code.UNIMPLEMENTED, `no message '${message}' in protocol ${protocol.name}`));
      }
      const timeoutMs = callOptions?.timeoutMs ?? defaultTimeout;
      if (timeoutMs !== undefined && !(timeoutMs >= 0)) {
        return Promise.reject(new RpcError(Code.INVALID_ARGUMENT, `call: options.timeoutMs must be >= 0, got ${timeoutMs}`));
      }
      const deadline = timeoutMs === undefined ? -1 : performance.now() + timeoutMs;
      try {
        return pool.pick().call(msg, request, deadline, callOptions?.signal, callOptions?.metadata) as Promise<never>;
      } catch (err) {
        return Promise.reject(RpcError.from(err));
      }
    },
    close() {
      return pool.close();
    },
  };
}
