import { encodeLimits } from '../framing/limits.js';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { writeGoaway } from '../framing/bodies.js';
import { FrameEncoder } from '../framing/frame-encoder.js';
import { FrameType } from '../framing/frame.js';
import { ResolverCache } from '../codec/resolver-cache.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { BodyWriter } from '../framing/frame-encoder.js';
import type { Registration, Registry } from '../discovery/registry.js';
import { intOption, invalid, knownOptions, msOption } from '../util/validate.js';
import { GatewayCalls } from './call-executor.js';
import { HttpGateway } from './http/http-gateway.js';
import { looksLikeHttp } from './http/http-status.js';
import { HandshakeGate, type HandshakeSlot } from './handshake-gate.js';
import { MemoryBudget } from './memory-budget.js';
import { ServerConnection, type ServerShared } from './server-connection.js';
import { OffloadPool } from './offload/offload-pool.js';
import { ParseBudget } from './parse-budget.js';
import { Readiness, type ReadinessState } from './readiness.js';
import { resolveServerOptions, type ServerOptions } from './server-options.js';
import { startGrpcBridge, type GrpcBridge } from './grpc/grpc-bridge.js';
import { loadGrpc } from './grpc/grpc-module.js';

/** Where to listen. */
export interface ListenOptions {
  /** Interface address. Default `127.0.0.1` (loopback: expose a server on purpose, not by default). */
  host?: string;
  /** TCP port; 0 picks a free one. Default 0. */
  port?: number;
  /** Register in a service registry once listening; deregistered first thing on `close`. */
  register?: RegisterOptions;
}

/** How a server announces itself in a registry. */
export interface RegisterOptions {
  registry: Registry;
  /** Service name. */
  name: string;
  /** Semver version of this server's protocol implementation. */
  version: string;
  /** Address clients should dial. Default: the bound address. */
  advertiseHost?: string;
  /** Balancing weight. Default 1. */
  weight?: number;
  /** Free-form string metadata. */
  metadata?: Record<string, string>;
}

/** Options of {@link Server.close}. */
export interface CloseOptions {
  /** How long in-flight calls may take to finish before their sockets are destroyed, in ms (at most 2^31-1). Default 5000. */
  graceMs?: number;
}

/** Option names of {@link ListenOptions}, {@link RegisterOptions} and {@link CloseOptions}; others are refused. */
const KNOWN_LISTEN_OPTIONS = { host: true, port: true, register: true } as const satisfies Record<keyof ListenOptions, true>;
const KNOWN_REGISTER_OPTIONS = {
  registry: true,
  name: true,
  version: true,
  advertiseHost: true,
  weight: true,
  metadata: true,
} as const satisfies Record<keyof RegisterOptions, true>;
const KNOWN_CLOSE_OPTIONS = { graceMs: true } as const satisfies Record<keyof CloseOptions, true>;

/** What {@link Server.listen} resolves with: the addresses actually bound. */
export interface ListenResult {
  host: string;
  port: number;
  /** HTTP's port, with the `http` option: the avrpc port itself unless `http.port` was given. */
  http?: { port: number };
  /** The gRPC bridge's port, with the `grpc` option. */
  grpc?: { port: number };
}

/** An avrpc server. Create it with {@link createServer}. */
export interface Server {
  /**
   * Starts listening; resolves with the bound address (the real port when `port` was 0). With
   * `workers`, first loads the worker module in a worker: rejects with INVALID_ARGUMENT if it does
   * not load or lacks a listed message's handler.
   */
  listen(options?: ListenOptions): Promise<ListenResult>;
  /**
   * Graceful shutdown: stops accepting connections, sends GOAWAY on every connection, lets running
   * calls finish, refuses new calls with UNAVAILABLE, and destroys what is left after `graceMs`.
   */
  close(options?: CloseOptions): Promise<void>;
  /** Open connections. */
  readonly connections: number;
  /**
   * Bytes the connections make this server hold now, as counted against `maxBufferedBytes`: partial
   * frames and messages, inflations, answers queued. 0 when no peer has anything in progress.
   */
  readonly bufferedBytes: number;
  /**
   * `starting` until `listen()` resolves, then `serving`; `draining` once `close()` is called, `closed`
   * when it resolved. What health checks answer (`checkHealth`, `avrpc health`).
   */
  readonly readiness: ReadinessState;
}

/**
 * Creates a server for `options.protocol` with `options.handlers`. Throws INVALID_ARGUMENT on bad
 * options. With an API type from `avrpc gen` (`createServer<EchoApi>(...)`), `handlers` must be
 * exactly the protocol's messages, each typed by its request and response.
 */
export function createServer<Api = undefined>(options: ServerOptions<NoInfer<Api>>): Server {
  // The API type only shapes `handlers` at compile time; at run time they are checked by name.
  const resolved = resolveServerOptions(options as ServerOptions);
  // A handler of a `void` message may return nothing: undefined is its null response.
  const writers: BodyWriter<unknown>[] = resolved.protocol.messages.map((m) =>
    m.response.typeName === 'null'
      ? (v, buf, pos) => m.response.encode(v === undefined ? null : v, buf, pos)
      : (v, buf, pos) => m.response.encode(v, buf, pos),
  );
  const offload =
    resolved.workers === undefined
      ? undefined
      : new OffloadPool(resolved.workers, resolved.protocol, resolved.resolverCacheSize, resolved.propagateDeadlines, resolved.logger);
  const budget = new MemoryBudget(resolved.maxBufferedBytes);
  const readiness = new Readiness();
  const shared: ServerShared = {
    options: resolved,
    cache: new ResolverCache(resolved.protocol, resolved.resolverCacheSize, resolved.resolverCacheBytes),
    writers,
    offload,
    streamOffload: offload,
    budget,
    limits: encodeLimits(resolved),
    parseBudget: resolved.protocolParseMsPerSecond === 0 ? undefined : new ParseBudget(resolved.protocolParseMsPerSecond),
    gateway: new GatewayCalls(),
    readiness,
  };
  const gateway = shared.gateway!;
  const http = resolved.http === undefined ? undefined : new HttpGateway(shared, resolved.http, () => readiness.state);
  const samePortHttp = http !== undefined && resolved.http!.port === undefined ? http : undefined;
  const openConnections = (): number => conns.size + (http?.connections ?? 0) + (grpcBridge?.connections ?? 0);
  http?.server.on('connection', (socket: Socket) => {
    // Counted against maxConnections with avrpc's (this socket is counted already).
    if (closing !== undefined || openConnections() > resolved.maxConnections) socket.destroy();
  });
  const conns = new Set<ServerConnection>();
  let net: NetServer | undefined;
  let closing: Promise<void> | undefined;
  let registration: Registration | undefined;
  let grpcBridge: GrpcBridge | undefined;
  const idle: Array<() => void> = [];
  const handshakes = new HandshakeGate(resolved.maxHandshakingConnections, resolved.maxHandshakingPerAddress);
  /** TLS: slots taken at the TCP accept, by remote address and port, until the TLS socket arrives in `accept`. */
  const tlsSlots = new Map<string, HandshakeSlot>();
  const peerKey = (s: Socket): string => `${s.remoteAddress}|${s.remotePort}`;

  const onClosed = (conn: ServerConnection): void => {
    conns.delete(conn);
    if (conns.size === 0) for (const resolve of idle.splice(0)) resolve();
  };
  const accept = (socket: Socket): void => {
    if (closing !== undefined) return void socket.destroy();
    if (openConnections() >= resolved.maxConnections)
      return refuseSocket(socket, Code.RESOURCE_EXHAUSTED, `server is at maxConnections (${resolved.maxConnections})`);
    let slot: HandshakeSlot | string | undefined;
    if (resolved.tls === undefined) slot = handshakes.enter(socket.remoteAddress ?? '');
    else {
      slot = tlsSlots.get(peerKey(socket));
      tlsSlots.delete(peerKey(socket));
    }
    // A passing overload (a reconnecting herd, strangers' sockets): UNAVAILABLE, so clients back off and retry.
    if (typeof slot === 'string') return refuseSocket(socket, Code.UNAVAILABLE, slot);
    if (samePortHttp === undefined) return void conns.add(new ServerConnection(socket, shared, onClosed, slot));
    // One port for both: the first bytes tell an HTTP request from an avrpc preface.
    const taken = slot;
    const timer = setTimeout(() => socket.destroy(), resolved.handshakeTimeoutMs);
    const early = (): void => {
      clearTimeout(timer);
      taken?.release();
    };
    socket.once('close', early);
    socket.once('data', (first: Buffer) => {
      clearTimeout(timer);
      socket.removeListener('close', early);
      socket.pause();
      if (closing !== undefined) return void socket.destroy();
      if (looksLikeHttp(first)) {
        taken?.release();
        samePortHttp.adopt(socket, first);
      } else {
        socket.unshift(first);
        conns.add(new ServerConnection(socket, shared, onClosed, taken));
      }
      socket.resume();
    });
  };
  /** TLS: a TCP connection beyond the handshake caps is closed before any TLS work (no frame can precede TLS). */
  const acceptTcpForTls = (raw: Socket): void => {
    const slot = handshakes.enter(raw.remoteAddress ?? '');
    if (typeof slot === 'string') return void raw.destroy();
    const key = peerKey(raw);
    tlsSlots.set(key, slot);
    raw.once('close', () => {
      slot.release();
      if (tlsSlots.get(key) === slot) tlsSlots.delete(key);
    });
  };

  return {
    get connections() {
      return conns.size;
    },
    get bufferedBytes() {
      return budget.bufferedBytes;
    },
    get readiness() {
      return readiness.state;
    },
    async listen(opts: ListenOptions = {}) {
      if (net !== undefined) throw new RpcError(Code.FAILED_PRECONDITION, 'server.listen: already listening');
      if (opts === null || typeof opts !== 'object') invalid('server.listen: options', 'must be an object');
      knownOptions('server.listen: options', opts, KNOWN_LISTEN_OPTIONS);
      if (opts.register !== undefined) {
        if (opts.register === null || typeof opts.register !== 'object') invalid('server.listen: options.register', 'must be an object');
        knownOptions('server.listen: options.register', opts.register, KNOWN_REGISTER_OPTIONS);
      }
      const host = opts.host ?? '127.0.0.1';
      if (typeof host !== 'string') invalid('server.listen: options.host', 'must be a string');
      const port = intOption('server.listen: options.port', opts.port, 0, 0, 65535);
      // Tracing asked for: @opentelemetry/api loads before any call, or listen says it is missing.
      if (resolved.tracing !== undefined) await resolved.tracing.ready();
      // Likewise @grpc/grpc-js for the gRPC bridge: a missing package fails listen before anything binds.
      if (resolved.grpc !== undefined) await loadGrpc();
      const server =
        resolved.tls === undefined
          ? createNetServer({ noDelay: true }, accept)
          : // The TLS handshake comes before the connection exists for us: bound it with the same timeout.
            createTlsServer({ handshakeTimeout: resolved.handshakeTimeoutMs, ...resolved.tls, noDelay: true }, accept);
      // TLS handshakes in progress are connections too (the costly part of one): count every TCP socket,
      // refusing beyond the limit at accept, before any TLS work. No frame is possible before TLS.
      if (resolved.tls !== undefined) {
        server.maxConnections = resolved.maxConnections;
        server.on('connection', acceptTcpForTls);
      }
      // Node reports a TLS handshake timeout (or failure) here but leaves the socket open: close it.
      server.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
      net = server;
      // A failed TLS handshake never becomes a ServerConnection: this is the one place to hear of it.
      server.on('tlsClientError', (err: Error, socket: Socket) => {
        const e = RpcError.from(err);
        resolved.logger.warn(
          { err: e, code: e.codeName, peer: { address: socket.remoteAddress, port: socket.remotePort } },
          'TLS handshake failed',
        );
      });
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', (err) => reject(RpcError.from(err)));
          server.listen(port, host, () => resolve());
        });
        const addr = server.address();
        if (addr === null || typeof addr === 'string') throw new RpcError(Code.INTERNAL, 'server.listen: no TCP address');
        // Workers once listen succeeded (a failed listen leaves no threads behind), and before anyone is
        // told of us: a worker module that does not load, or lacks a handler, fails listen, not every call.
        if (offload !== undefined) await offload.warmUp();
        if (resolved.grpc !== undefined) grpcBridge = await startGrpcBridge(shared, host, resolved.grpc.port, openConnections, handshakes);
        const r = opts.register;
        if (r !== undefined) {
          registration = await r.registry.register({
            name: r.name,
            version: r.version,
            host: r.advertiseHost ?? addr.address,
            port: addr.port,
            ...(r.weight === undefined ? {} : { weight: r.weight }),
            ...(r.metadata === undefined ? {} : { metadata: r.metadata }),
          });
        }
        let httpPort = samePortHttp === undefined ? undefined : addr.port;
        if (http !== undefined && samePortHttp === undefined) {
          const own = http.server;
          await new Promise<void>((resolve, reject) => {
            own.once('error', (err) => reject(RpcError.from(err)));
            own.listen(resolved.http!.port, host, () => resolve());
          });
          httpPort = (own.address() as { port: number }).port;
        }
        // Ready only now: workers loaded and the registry told; a probe before this hears NOT_SERVING.
        readiness.set('serving');
        return {
          host: addr.address,
          port: addr.port,
          ...(httpPort === undefined ? {} : { http: { port: httpPort } }),
          ...(grpcBridge === undefined ? {} : { grpc: { port: grpcBridge.port } }),
        };
      } catch (err) {
        // A listen that failed leaves nothing bound (a registry that refused us would leave the port
        // taken, and accepting, with no one to close it) and may be tried again.
        net = undefined;
        if (http?.server.listening === true) await new Promise<void>((resolve) => http.server.close(() => resolve()));
        readiness.reset();
        await grpcBridge?.close(0);
        grpcBridge = undefined;
        for (const conn of conns) conn.destroy(new RpcError(Code.UNAVAILABLE, 'server.listen failed'));
        await new Promise<void>((resolve) => server.close(() => resolve()));
        throw err;
      }
    },
    close(opts: CloseOptions = {}) {
      if (closing !== undefined) return closing;
      if (opts === null || typeof opts !== 'object') invalid('server.close: options', 'must be an object');
      knownOptions('server.close: options', opts, KNOWN_CLOSE_OPTIONS);
      const graceMs = msOption('server.close: options.graceMs', opts.graceMs, 5000, 0);
      readiness.set('draining');
      const grpcClosed = grpcBridge?.close(graceMs);
      // Leave the registry first so that clients stop choosing this server while it drains.
      const deregistered = registration === undefined ? Promise.resolve() : registration.deregister().catch(() => undefined);
      const stopped = net === undefined ? Promise.resolve() : new Promise<void>((resolve) => net!.close(() => resolve()));
      // Calls of other transports (HTTP, gRPC) are refused from now on; those running are waited for.
      http?.drain();
      const gatewayDrained = gateway.drain().then(() => http?.drain());
      const httpStopped =
        http === undefined || samePortHttp !== undefined || !http.server.listening
          ? Promise.resolve()
          : new Promise<void>((resolve) => http.server.close(() => resolve()));
      const connsDrained = new Promise<void>((resolve) => {
        if (conns.size === 0) return resolve();
        idle.push(resolve);
        for (const conn of conns) conn.drain();
      });
      const drained = Promise.all([connsDrained, gatewayDrained]).then(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      const forced = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          const reason = new RpcError(Code.UNAVAILABLE, `server closed: grace period of ${graceMs} ms over`);
          for (const conn of conns) conn.destroy(reason);
          http?.destroy();
          resolve();
        }, graceMs);
      });
      closing = Promise.race([drained, forced])
        .then(() => (conns.size === 0 ? undefined : new Promise<void>((resolve) => idle.push(resolve))))
        .then(() => Promise.all([stopped, httpStopped, deregistered, grpcClosed, offload?.close()]))
        .then(() => readiness.set('closed'))
        .finally(() => clearTimeout(timer));
      return closing;
    },
  };
}

/**
 * Over maxConnections (RESOURCE_EXHAUSTED) or a handshake cap (UNAVAILABLE: retry later): tell the
 * client why in a GOAWAY, then close.
 */
function refuseSocket(socket: Socket, code: Code, message: string): void {
  const enc = new FrameEncoder();
  enc.frame(FrameType.GOAWAY, 0, 0, { lastId: 0, code, message }, writeGoaway);
  socket.on('error', () => socket.destroy());
  // Read (and drop) what the client sends: a socket never read never sees the client's FIN, so it would
  // linger, and keep server.close() waiting, until the timer below.
  socket.resume();
  for (const b of enc.take()) socket.write(b);
  socket.end();
  setTimeout(() => socket.destroy(), 1000).unref();
}
