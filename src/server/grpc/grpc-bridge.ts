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
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { ServerTlsOptions } from '../../security/tls.js';
import { HandshakeGate, type HandshakeSlot } from '../handshake-gate.js';
import type * as grpc from '@grpc/grpc-js';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import type { ServerShared } from '../server-shared.js';
import { handlerFor, type BridgeEnv } from './grpc-calls.js';
import { GrpcConnections } from './grpc-connections.js';
import { loadGrpc } from './grpc-module.js';
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
  handshakes: HandshakeGate = new HandshakeGate(Infinity, Infinity),
): Promise<GrpcBridge> {
  const g = await loadGrpc();
  const o = shared.options;
  const server = new g.Server({
    'grpc.max_receive_message_length': o.maxMessageBytes,
    'grpc.max_send_message_length': o.maxMessageBytes,
    'grpc.max_concurrent_streams': o.maxConcurrentCalls,
    // As avrpc connections: one with no call for idleTimeoutMs is closed gracefully (GOAWAY).
    ...(o.idleTimeoutMs > 0 ? { 'grpc.max_connection_idle_ms': o.idleTimeoutMs } : {}),
    // HTTP/2 buffers of one connection (in MB) within the server's memory budget: beyond it, Node
    // refuses new streams (ENHANCE_YOUR_CALM) instead of buffering more. grpc-js would set no bound.
    'grpc-node.max_session_memory': Math.max(1, Math.ceil(o.maxBufferedBytes / (1024 * 1024))),
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
  // TLS is ours (a tls.Server that never listens, given each TCP socket): its handshake is bounded
  // by handshakeTimeoutMs and counted by the handshake caps, as on the avrpc port; grpc-js then
  // gets the TLS socket (its auth context reads the verified certificate off it).
  const injector = server.createConnectionInjector(g.ServerCredentials.createInsecure());
  let closing = false;
  /** Slots of the TLS handshakes in progress, by remote address and port (a TLS socket reads its TCP socket's). */
  const handshaking = new Map<string, HandshakeSlot>();
  const tlsKey = (s: Socket): string => `${s.remoteAddress}|${s.remotePort}`;
  const tls =
    o.tls === undefined
      ? undefined
      : tlsFront(o.tls, o.handshakeTimeoutMs, (socket) => {
          const key = tlsKey(socket);
          handshaking.get(key)?.release();
          handshaking.delete(key);
          // An error on the TLS socket closes it, as on its TCP socket (no listener would throw).
          socket.on('error', () => socket.destroy());
          if (closing) return void socket.destroy();
          injector.injectConnection(socket);
        });
  /**
   * Cleartext HTTP/2: the connection's first bytes (its preface) end its handshake; none within
   * handshakeTimeoutMs closes it (grpc-js would keep a silent socket open for good). The bytes are
   * put back for grpc-js, which reads what the socket has buffered.
   */
  const plaintext = (socket: Socket, slot: HandshakeSlot): void => {
    const timer = setTimeout(() => socket.destroy(), o.handshakeTimeoutMs);
    const early = (): void => {
      clearTimeout(timer);
      slot.release();
    };
    socket.once('close', early);
    socket.once('data', (first: Buffer) => {
      socket.removeListener('close', early);
      early();
      socket.pause();
      socket.unshift(first);
      if (!closing) injector.injectConnection(socket);
      else socket.destroy();
    });
  };
  const listener: NetServer = createNetServer({ noDelay: true }, (socket: Socket) => {
    // This socket is one of openConnections() already once tracked: refused beyond the limit, before any byte.
    if (closing || openConnections() >= o.maxConnections) return void socket.destroy();
    env.connections.add(socket);
    socket.on('error', () => socket.destroy());
    // A handshake in progress holds a slot (server-wide and per address) until it completes.
    const slot = handshakes.enter(socket.remoteAddress ?? '');
    if (typeof slot === 'string') return void socket.destroy();
    if (tls === undefined) return plaintext(socket, slot);
    const key = tlsKey(socket);
    handshaking.set(key, slot);
    socket.once('close', () => {
      slot.release();
      if (handshaking.get(key) === slot) handshaking.delete(key);
    });
    tls.emit('connection', socket);
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

/**
 * A tls.Server that takes TCP sockets by `emit('connection')` (it never listens): the server's TLS
 * options, ALPN `h2` (gRPC over TLS requires it), and its handshake closed after `handshakeTimeoutMs`
 * or on failure. Each secured socket goes to `secured`.
 */
function tlsFront(options: ServerTlsOptions, handshakeTimeoutMs: number, secured: (socket: TLSSocket) => void): TlsServer {
  const front = createTlsServer({ ...options, ALPNProtocols: ['h2'], handshakeTimeout: handshakeTimeoutMs }, secured);
  // Node reports a handshake timeout or failure here but leaves the socket open: close it.
  front.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
  return front;
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
