/**
 * The gRPC bridge: serves the protocol's handlers to gRPC clients through @grpc/grpc-js's server, on
 * its own port. Method `/<protocol full name>/<message>`; messages are the Avro binary encoding of the
 * request record and of the response (whatever the `application/grpc` content subtype, `+avro` or
 * none); status codes are avrpc's, which are gRPC's. Unary and one-way messages, and server, client
 * and bidi streams (grpc-calls.ts). A declared error travels in trailing metadata: `avrpc-error-type`
 * names its schema and `avrpc-error-bin` holds its Avro binary encoding by that schema. Calls run
 * through the shared call executor: the same authenticate, authorize, interceptors, workers and
 * limits as avrpc calls. `grpc.health.v1.Health/Check` answers from the server's readiness.
 *
 * The bridge accepts TCP connections itself and injects them into grpc-js (its connection injector),
 * so it can count them against `maxConnections` (one beyond is closed at accept, before any HTTP/2 or
 * TLS byte) and keep each connection's principals (grpc-connections.ts).
 */
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import type { ServerShared } from '../server-shared.js';
import { handlerFor, type BridgeEnv } from './grpc-calls.js';
import { GrpcConnections } from './grpc-connections.js';
import { loadGrpc } from './grpc-module.js';
import { grpcCredentials } from './grpc-tls.js';
import { HEALTH_CHECK_PATH, decodeHealthRequest, encodeHealthResponse, healthStatus } from './health-service.js';

export { ERROR_BIN_KEY, ERROR_TYPE_KEY } from './grpc-calls.js';

/** A running bridge. */
export interface GrpcBridge {
  /** The port bound (the real one when 0 was asked). */
  readonly port: number;
  /** Open gRPC connections, counted against the server's `maxConnections`. */
  readonly connections: number;
  /** Stops taking calls, lets running ones finish for up to `graceMs`, then ends the rest. */
  close(graceMs: number): Promise<void>;
}

/** Passes the bytes through: the executor decodes them, so a bad request is INVALID_ARGUMENT, not INTERNAL. */
const identity = (b: Buffer): Buffer => b;

/**
 * Starts a grpc-js server for `shared`'s protocol on `host:port`. `openConnections` counts the
 * server's connections of every transport, this bridge's included. Rejects FAILED_PRECONDITION when
 * @grpc/grpc-js is not installed, or with the bind error.
 */
export async function startGrpcBridge(
  shared: ServerShared,
  host: string,
  port: number,
  openConnections: () => number = () => 0,
): Promise<GrpcBridge> {
  const g = await loadGrpc();
  const o = shared.options;
  const server = new g.Server({
    'grpc.max_receive_message_length': o.maxMessageBytes,
    'grpc.max_send_message_length': o.maxMessageBytes,
    'grpc.max_concurrent_streams': o.maxConcurrentCalls,
    // As avrpc connections: one with no call for idleTimeoutMs is closed gracefully (GOAWAY).
    ...(o.idleTimeoutMs > 0 ? { 'grpc.max_connection_idle_ms': o.idleTimeoutMs } : {}),
  });
  const env: BridgeEnv = { g, shared, connections: new GrpcConnections() };
  const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const msg of o.protocol.messages) {
    definition[msg.name] = method(
      `/${o.protocol.name}/${msg.name}`,
      msg.stream === 'client' || msg.stream === 'bidi',
      msg.stream === 'server' || msg.stream === 'bidi',
    );
    implementation[msg.name] = handlerFor(env, msg);
  }
  server.addService(definition, implementation);
  server.addService(
    { Check: method(HEALTH_CHECK_PATH, false, false) },
    {
      Check: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        try {
          const status = healthStatus(decodeHealthRequest(call.request), o.protocol.name, shared.readiness.serving);
          callback(null, encodeHealthResponse(status));
        } catch (err) {
          const e = RpcError.from(err);
          callback({ code: e.code, details: e.message });
        }
      },
    },
  );
  const injector = server.createConnectionInjector(grpcCredentials(g, o.tls));
  let closing = false;
  const listener: NetServer = createNetServer({ noDelay: true }, (socket: Socket) => {
    // This socket is one of openConnections() already once tracked: refused beyond the limit, before any byte.
    if (closing || openConnections() >= o.maxConnections) return void socket.destroy();
    env.connections.add(socket);
    socket.on('error', () => socket.destroy());
    injector.injectConnection(socket);
  });
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const bound = await new Promise<number>((resolve, reject) => {
    listener.once('error', (err) => reject(new RpcError(Code.UNAVAILABLE, `grpc: cannot bind ${address}: ${err.message}`, { cause: err })));
    listener.listen(port, host, () => resolve((listener.address() as { port: number }).port));
  });
  return {
    port: bound,
    get connections() {
      return env.connections.size;
    },
    close(graceMs) {
      closing = true;
      const stopped = new Promise<void>((resolve) => listener.close(() => resolve()));
      const drained = new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return Promise.all([stopped, drained]).then(() => undefined);
    },
  };
}

/** A method at `path` of the given kind whose messages are bytes as they are. */
function method(path: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}
