import type avro from 'avsc';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { toAvroJson, type JsonMessage } from '../../codec/avro-json.js';
import type { BytesMode } from '../../codec/json-input.js';
import type { MessageDef } from '../../codec/protocol.js';
import { Code, codeName } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import { callHook } from '../../util/call-hook.js';
import { CallContext, type PeerInfo } from '../call-context.js';
import { executeCall, executeServerStream, runCall } from '../call-executor.js';
import type { ServerShared } from '../server-shared.js';
import type { ReadinessState } from '../readiness.js';
import type { ResolvedHttpOptions } from './http-options.js';
import { httpStatus } from './http-status.js';
import { deadlineOf, metadataOf } from './http-headers.js';
import { Cors, beforeHead } from './http-cors.js';
import { HttpRoutes, type HttpRoute } from './http-route.js';
import { existingState, readBody, socketState, type HttpSocketState } from './http-socket.js';

/**
 * The HTTP/JSON gateway of one server: a node:http server (its parser, its timeouts) whose requests
 * call the server's handlers through {@link executeCall}: `POST /<protocol>/<message>` with the
 * request record as Avro JSON; `GET /` and `GET /<protocol>` describe the protocol; `GET /healthz`
 * and `GET /readyz` answer probes. Sockets come from the avrpc port (first bytes sniffed) or its own.
 */
export class HttpGateway {
  readonly server: HttpServer;
  private readonly routes: HttpRoutes;
  private readonly cors: Cors | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly prefix: string;

  constructor(
    private readonly shared: ServerShared,
    options: ResolvedHttpOptions,
    private readonly readiness: () => ReadinessState,
  ) {
    const o = shared.options;
    this.routes = new HttpRoutes(o.protocol);
    this.cors = options.cors === undefined ? undefined : new Cors(options.cors);
    this.prefix = `/${o.protocol.name}/`;
    this.server = createHttpServer(
      {
        headersTimeout: options.headersTimeoutMs,
        requestTimeout: options.requestTimeoutMs,
        keepAliveTimeout: options.keepAliveTimeoutMs,
        maxHeaderSize: Math.max(16 * 1024, o.maxMetadataBytes + 8 * 1024),
        noDelay: true,
      },
      (req, res) => this.handle(req, res),
    );
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.server.on('clientError', (_err, socket: Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.destroy();
    });
  }

  /** Open HTTP connections, counted with avrpc's against `maxConnections`. */
  get connections(): number {
    return this.sockets.size;
  }

  /** A socket of the avrpc port that starts with an HTTP request: `first` is what was read of it. */
  adopt(socket: Socket, first: Buffer): void {
    socket.unshift(first);
    this.server.emit('connection', socket);
  }

  /** The server drains: idle keep-alive connections close now, busy ones once their response is sent. */
  drain(): void {
    this.server.closeIdleConnections();
    for (const socket of this.sockets) if (existingState(socket)?.busy !== true) socket.destroy();
  }

  /** The grace period is over: every HTTP connection is closed. */
  destroy(): void {
    this.server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const state = socketState(req.socket, this.shared.budget);
    state.last = res;
    // Draining: tell keep-alive clients to go (the server closes once this response is sent).
    const readiness = this.readiness();
    if (readiness === 'draining' || readiness === 'closed') res.shouldKeepAlive = false;
    const cors = this.cors;
    if (cors !== undefined && req.headers.origin !== undefined) {
      if (cors.preflight(req, res)) return;
      beforeHead(res, () => cors.decorate(req, res));
    }
    const url = req.url ?? '/';
    if (req.method === 'POST') {
      // The common case, a message's own path as it is: one lookup, no URL parsing.
      const direct = this.routes.atPath(url, req.headers['avrpc-bytes'] === 'base64' ? 'base64' : 'latin1');
      if (direct !== undefined) return this.post(req, res, state, direct);
    }
    const q = url.indexOf('?');
    const path = pathOf(q < 0 ? url : url.slice(0, q));
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (path === '/healthz') return text(res, 200, 'ok\n');
      if (path === '/readyz') return readiness === 'serving' ? text(res, 200, 'serving\n') : text(res, 503, `${readiness}\n`);
      if (path === '/' || path === `/${this.shared.options.protocol.name}`)
        return send(res, 200, 'application/json', this.shared.options.protocol.text);
      return this.fail(res, new RpcError(Code.NOT_FOUND, `no such path: ${path}`));
    }
    if (req.method !== 'POST') {
      res.setHeader('allow', 'GET, HEAD, POST');
      return send(res, 405, 'application/json', errorBody(Code.UNIMPLEMENTED, `method ${req.method} not allowed`));
    }
    const bytes: BytesMode =
      (q >= 0 && bytesParam(url.slice(q + 1)) === 'base64') || req.headers['avrpc-bytes'] === 'base64' ? 'base64' : 'latin1';
    const route = path.startsWith(this.prefix) ? this.routes.get(messageName(path.slice(this.prefix.length)), bytes) : undefined;
    if (route === undefined) return this.fail(res, new RpcError(Code.NOT_FOUND, `no such message: ${path}`));
    this.post(req, res, state, route);
  }

  /** A POST to `route`: its body read, its caller authenticated, then the call. */
  private post(req: IncomingMessage, res: ServerResponse, state: HttpSocketState, route: HttpRoute): void {
    // The body counts against the server's memory budget (maxBufferedBytes) while it is read and decoded.
    readBody(req, this.shared.options.maxMessageBytes, state.account, (err, body, release) => {
      if (err !== undefined) return this.fail(res, err);
      const peer = this.shared.options.authenticate === undefined ? undefined : this.peerOf(req);
      if (peer === undefined) return this.call(req, res, state, route, body, release, state.peer);
      peer.then(
        (p) => this.call(req, res, state, route, body, release, p),
        (e: unknown) => {
          release();
          this.fail(res, RpcError.from(e));
        },
      );
    });
  }

  private call(
    req: IncomingMessage,
    res: ServerResponse,
    state: HttpSocketState,
    route: HttpRoute,
    body: string,
    release: () => void,
    peer: PeerInfo,
  ): void {
    const msg = route.msg;
    let request: unknown;
    let ctx: CallContext;
    try {
      if (msg.stream !== undefined && msg.stream !== 'server')
        throw new RpcError(Code.UNIMPLEMENTED, `${msg.name} is a ${msg.stream} stream: not served over HTTP`);
      const metadata = metadataOf(req.headers, this.shared.options.maxMetadataBytes);
      const deadline = deadlineOf(req.headers);
      request = route.request(body);
      ctx = new CallContext(msg.name, metadata, deadline, peer);
    } catch (err) {
      return this.fail(res, RpcError.from(err));
    } finally {
      release();
    }
    if (msg.oneWay) {
      // One-way: accepted, not waited for (as an avrpc client does not wait), and not cancelled when
      // the client then goes away.
      send(res, 202, 'application/json', '{}');
      void executeCall(this.shared, msg, request, ctx);
      return;
    }
    // The client went away (its connection closed): the call is cancelled, its handler's signal aborts.
    if (req.socket.destroyed) ctx.cancel(new RpcError(Code.CANCELLED, 'HTTP client closed the connection'));
    else state.running.add(ctx);
    if (msg.stream === 'server') {
      void this.stream(res, route, request, ctx).finally(() => state.running.delete(ctx));
      return;
    }
    runCall(this.shared, msg, request, ctx, (outcome) => {
      state.running.delete(ctx);
      if (res.destroyed) return;
      setMetadataHeaders(res, ctx);
      if (!outcome.ok) return this.fail(res, outcome.error, msg, route.json);
      let json: Buffer;
      try {
        json = route.response(outcome.value);
      } catch (err) {
        return this.fail(res, new RpcError(Code.INTERNAL, `cannot write the response as JSON: ${(err as Error).message}`));
      }
      send(res, 200, 'application/json', json);
    });
  }

  /**
   * A server stream as NDJSON: one response per line, sent as the handler yields it (each waits for
   * the socket to drain). An error before the first response is an ordinary error answer; after it,
   * a last line `{"error": {code, message, ...}}` ends the stream.
   */
  private async stream(res: ServerResponse, route: HttpRoute, request: unknown, ctx: CallContext): Promise<void> {
    const { msg, json: jsonMsg } = route;
    const sink = (element: unknown): Promise<void> | void => {
      if (!res.headersSent) {
        setMetadataHeaders(res, ctx, false);
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      }
      if (res.write(route.response(element, true))) return;
      return new Promise<void>((resolve) => {
        const done = (): void => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    };
    const outcome = await executeServerStream(this.shared, msg, request, ctx, sink);
    if (res.destroyed) return;
    if (!res.headersSent) {
      setMetadataHeaders(res, ctx);
      if (!outcome.ok) return this.fail(res, outcome.error, msg, jsonMsg);
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      return void res.end();
    }
    if (!outcome.ok) {
      const e = outcome.error;
      res.write(`{"error":${errorBody(e.code, e.message, declaredJson(e, msg, jsonMsg))}}\n`);
    }
    res.end();
  }

  /** The peer of a request, with the principal `authenticate` (set) gives its Bearer token. */
  private async peerOf(req: IncomingMessage): Promise<PeerInfo> {
    const { address, port } = existingState(req.socket)!.peer;
    const authenticate = this.shared.options.authenticate!;
    const auth = req.headers.authorization;
    const token = auth !== undefined && /^bearer /i.test(auth) ? auth.slice(7).trim() : undefined;
    let principal: unknown;
    try {
      principal = await callHook(() => authenticate({ token, meta: {} }, { address, port }));
    } catch (err) {
      throw new RpcError(Code.UNAUTHENTICATED, `authentication failed: ${(err as Error)?.message ?? String(err)}`);
    }
    return { address, port, principal };
  }

  private fail(res: ServerResponse, error: RpcError, msg?: MessageDef, jsonMsg?: JsonMessage): void {
    if (res.headersSent) return void res.destroy();
    if (error.code === Code.UNAUTHENTICATED) res.setHeader('www-authenticate', 'Bearer');
    send(res, httpStatus(error.code), 'application/json', errorBody(error.code, error.message, declaredJson(error, msg, jsonMsg)));
  }
}

/** The declared error of a failed call as Avro JSON of its record (`errorType` names it), if it has one. */
function declaredJson(
  error: RpcError,
  msg: MessageDef | undefined,
  jsonMsg: JsonMessage | undefined,
): { type: string; json: string } | undefined {
  if (msg === undefined || jsonMsg === undefined || error.details === undefined || error.errorType === undefined) return undefined;
  const branch = unionBranches(msg.errors).find((b) => b.name === error.errorType);
  const jsonBranch = unionBranches(jsonMsg.errors).find((b) => b.name === error.errorType);
  if (branch === undefined || jsonBranch === undefined) return undefined;
  try {
    return { type: error.errorType, json: toAvroJson(jsonBranch, jsonBranch.fromBuffer(branch.toBuffer(error.details)), 0, jsonMsg.bytes) };
  } catch {
    return undefined;
  }
}

function unionBranches(type: avro.Type): avro.Type[] {
  return (type as unknown as { types?: avro.Type[] }).types ?? [type];
}

/** `{ "code": "NOT_FOUND", "message": ..., "errorType"?: ..., "details"?: ... }`. */
function errorBody(code: number, message: string, declared?: { type: string; json: string }): string {
  const head = `{"code":${JSON.stringify(codeName(code))},"message":${JSON.stringify(message)}`;
  return declared === undefined ? `${head}}` : `${head},"errorType":${JSON.stringify(declared.type)},"details":${declared.json}}`;
}

/** The handler's response headers and trailers, as `avrpc-md-*` headers (a unary answer has one header block). */
function setMetadataHeaders(res: ServerResponse, ctx: CallContext, trailers = true): void {
  const header = ctx.takeHeader();
  if (header !== undefined) setPrefixed(res, header);
  const trailer = trailers ? ctx.takeTrailer() : undefined;
  if (trailer !== undefined) setPrefixed(res, trailer);
}

function setPrefixed(res: ServerResponse, m: Record<string, string>): void {
  for (const k in m) {
    try {
      res.setHeader(`avrpc-md-${k}`, m[k]!);
    } catch {
      // A key or value HTTP cannot carry is left out.
    }
  }
}

function text(res: ServerResponse, status: number, body: string): void {
  send(res, status, 'text/plain; charset=utf-8', body);
}

/**
 * The whole answer in one socket write: content-length set, so nothing is chunked; the head and
 * the body (a string is joined to the head by node:http's `_send`) go out in one writev.
 */
function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { 'content-type': type, 'content-length': typeof body === 'string' ? Buffer.byteLength(body) : body.length });
  res.end(body);
}

/**
 * The path of a request target as a URL parser reads it: an origin-form path without dot segments or
 * backslashes is that already; anything else (`/a/../b`, an absolute URL) goes through `URL`.
 */
function pathOf(target: string): string {
  if (target.charCodeAt(0) === 0x2f && !target.includes('/.') && !target.includes('\\') && /^[\x21-\x7e]*$/.test(target)) return target;
  return new URL(target, 'http://x').pathname;
}

/** The value of `bytes` in a query string, if any. */
function bytesParam(query: string): string | null {
  return query.includes('bytes=') ? new URLSearchParams(query).get('bytes') : null;
}

/** A message name from the path (percent-decoded); an undecodable one names no message. */
function messageName(raw: string): string {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
