import type avro from 'avsc';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { jsonMessages, requestFromJson, toAvroJson, type JsonMessage } from '../../codec/avro-json.js';
import type { BytesMode } from '../../codec/json-input.js';
import type { MessageDef } from '../../codec/protocol.js';
import { Code, codeName } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import { callHook } from '../../util/call-hook.js';
import { CallContext, type PeerInfo } from '../call-context.js';
import { executeCall, executeServerStream } from '../call-executor.js';
import type { ConnectionAccount } from '../memory-budget.js';
import type { ServerShared } from '../server-shared.js';
import type { ReadinessState } from '../readiness.js';
import type { ResolvedHttpOptions } from './http-options.js';
import { httpStatus } from './http-status.js';
import { deadlineOf, metadataOf } from './http-headers.js';

/** JSON types of each message, by bytes mode (built once per server). */
interface JsonTypes {
  readonly latin1: Map<string, JsonMessage>;
  readonly base64: Map<string, JsonMessage>;
}

/**
 * The HTTP/JSON gateway of one server: a node:http server (its parser, its timeouts) whose requests
 * call the server's handlers through {@link executeCall}: `POST /<protocol>/<message>` with the
 * request record as Avro JSON; `GET /` and `GET /<protocol>` describe the protocol; `GET /healthz`
 * and `GET /readyz` answer probes. Sockets come from the avrpc port (first bytes sniffed) or its own.
 */
export class HttpGateway {
  readonly server: HttpServer;
  private readonly json: JsonTypes;
  private readonly sockets = new Set<Socket>();
  private readonly prefix: string;

  constructor(
    private readonly shared: ServerShared,
    options: ResolvedHttpOptions,
    private readonly readiness: () => ReadinessState,
  ) {
    const o = shared.options;
    this.json = { latin1: jsonMessages(o.protocol, 'latin1'), base64: jsonMessages(o.protocol, 'base64') };
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
    for (const socket of this.sockets) if (!busy(socket)) socket.destroy();
  }

  /** The grace period is over: every HTTP connection is closed. */
  destroy(): void {
    this.server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    markBusy(req.socket, true);
    res.once('finish', () => markBusy(req.socket, false));
    // Draining: tell keep-alive clients to go (the server closes once this response is sent).
    const state = this.readiness();
    if (state === 'draining' || state === 'closed') res.shouldKeepAlive = false;
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (path === '/healthz') return text(res, 200, 'ok\n');
      if (path === '/readyz') return state === 'serving' ? text(res, 200, 'serving\n') : text(res, 503, `${state}\n`);
      if (path === '/' || path === `/${this.shared.options.protocol.name}`)
        return send(res, 200, 'application/json', this.shared.options.protocol.text);
      return this.fail(res, new RpcError(Code.NOT_FOUND, `no such path: ${path}`));
    }
    if (req.method !== 'POST') {
      res.setHeader('allow', 'GET, HEAD, POST');
      return send(res, 405, 'application/json', errorBody(Code.UNIMPLEMENTED, `method ${req.method} not allowed`));
    }
    const name = path.startsWith(this.prefix) ? decodeURIComponent(path.slice(this.prefix.length)) : undefined;
    const msg = name === undefined ? undefined : this.shared.options.protocol.message(name);
    if (msg === undefined) return this.fail(res, new RpcError(Code.NOT_FOUND, `no such message: ${path}`));
    const bytes: BytesMode = url.searchParams.get('bytes') === 'base64' || req.headers['avrpc-bytes'] === 'base64' ? 'base64' : 'latin1';
    const jsonMsg = this.json[bytes].get(msg.name)!;
    // The body counts against the server's memory budget (maxBufferedBytes) while it is read and decoded.
    const account = this.shared.budget.account(() => req.socket.destroy());
    res.once('close', () => account.close());
    readBody(req, this.shared.options.maxMessageBytes, account).then(
      (body) => this.call(req, res, msg, jsonMsg, body).finally(() => account.close()),
      (err: unknown) => {
        account.close();
        this.fail(res, RpcError.from(err));
      },
    );
  }

  private async call(req: IncomingMessage, res: ServerResponse, msg: MessageDef, jsonMsg: JsonMessage, body: string): Promise<void> {
    const o = this.shared.options;
    let request: unknown;
    let ctx: CallContext;
    try {
      if (msg.stream !== undefined && msg.stream !== 'server')
        throw new RpcError(Code.UNIMPLEMENTED, `${msg.name} is a ${msg.stream} stream: not served over HTTP`);
      const metadata = metadataOf(req.headers, o.maxMetadataBytes);
      const deadline = deadlineOf(req.headers);
      const peer = await this.peerOf(req);
      // Avro JSON reads into the JSON types (exact longs); the server's own types take it from its binary.
      const value = requestFromJson(jsonMsg, body.trim() === '' ? '{}' : body);
      try {
        request = msg.request.fromBuffer(jsonMsg.request.toBuffer(value));
      } catch (err) {
        throw new RpcError(Code.INVALID_ARGUMENT, `request of ${msg.name}: ${(err as Error).message}`);
      }
      ctx = new CallContext(msg.name, metadata, deadline, peer);
    } catch (err) {
      return this.fail(res, RpcError.from(err));
    }
    // The client went away: the call is cancelled, its handler's signal aborts.
    const onClose = (): void => {
      if (!res.writableFinished) ctx.cancel(new RpcError(Code.CANCELLED, 'HTTP client closed the connection'));
    };
    res.once('close', onClose);
    if (msg.oneWay) {
      // One-way: accepted, not waited for (as an avrpc client does not wait).
      send(res, 202, 'application/json', '{}');
      void executeCall(this.shared, msg, request, ctx);
      return;
    }
    if (msg.stream === 'server') return this.stream(res, msg, jsonMsg, request, ctx);
    const outcome = await executeCall(this.shared, msg, request, ctx);
    if (res.destroyed) return;
    setMetadataHeaders(res, ctx);
    if (!outcome.ok) return this.fail(res, outcome.error, msg, jsonMsg);
    let json: string;
    try {
      json = toAvroJson(
        jsonMsg.response,
        jsonMsg.response.fromBuffer(outcome.encoded ?? msg.response.toBuffer(outcome.value)),
        0,
        jsonMsg.bytes,
      );
    } catch (err) {
      return this.fail(res, new RpcError(Code.INTERNAL, `cannot write the response as JSON: ${(err as Error).message}`));
    }
    send(res, 200, 'application/json', json);
  }

  /**
   * A server stream as NDJSON: one response per line, sent as the handler yields it (each waits for
   * the socket to drain). An error before the first response is an ordinary error answer; after it,
   * a last line `{"error": {code, message, ...}}` ends the stream.
   */
  private async stream(res: ServerResponse, msg: MessageDef, jsonMsg: JsonMessage, request: unknown, ctx: CallContext): Promise<void> {
    const sink = (element: unknown): Promise<void> | void => {
      if (!res.headersSent) {
        setMetadataHeaders(res, ctx, false);
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      }
      const line = toAvroJson(jsonMsg.response, jsonMsg.response.fromBuffer(msg.response.toBuffer(element)), 0, jsonMsg.bytes);
      if (res.write(`${line}\n`)) return;
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

  /** The peer of a request, with the principal `authenticate` gives its Bearer token. */
  private async peerOf(req: IncomingMessage): Promise<PeerInfo> {
    const address = req.socket.remoteAddress ?? '';
    const port = req.socket.remotePort ?? 0;
    const authenticate = this.shared.options.authenticate;
    if (authenticate === undefined) return { address, port };
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
  for (const m of [ctx.takeHeader(), trailers ? ctx.takeTrailer() : undefined]) {
    if (m === undefined) continue;
    for (const [k, v] of Object.entries(m)) {
      try {
        res.setHeader(`avrpc-md-${k}`, v);
      } catch {
        // A key or value HTTP cannot carry is left out.
      }
    }
  }
}

/** Reads a request body of at most `max` bytes as UTF-8; over it: RESOURCE_EXHAUSTED (413 would be grpc-gateway's 429). */
function readBody(req: IncomingMessage, max: number, account: ConnectionAccount): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > max) return reject(tooLarge(max));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max || !account.reserve(chunk.length)) {
        req.removeAllListeners('data');
        req.resume();
        return reject(
          size > max
            ? tooLarge(max)
            : new RpcError(Code.RESOURCE_EXHAUSTED, 'server memory budget (maxBufferedBytes) exhausted: retry later'),
        );
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', (err) => reject(new RpcError(Code.CANCELLED, `request body: ${err.message}`)));
  });
}

function tooLarge(max: number): RpcError {
  return new RpcError(Code.RESOURCE_EXHAUSTED, `request body exceeds maxMessageBytes (${max})`);
}

function text(res: ServerResponse, status: number, body: string): void {
  send(res, status, 'text/plain; charset=utf-8', body);
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Sockets with a request in progress (not to be closed by a drain until answered). */
const BUSY = new WeakSet<Socket>();
function markBusy(socket: Socket, on: boolean): void {
  if (on) BUSY.add(socket);
  else BUSY.delete(socket);
}
function busy(socket: Socket): boolean {
  return BUSY.has(socket);
}
