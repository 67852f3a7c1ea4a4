/**
 * The gRPC bridge: serves the protocol's handlers to gRPC clients through @grpc/grpc-js's server, on
 * its own port. Method `/<protocol full name>/<message>`; messages are the Avro binary encoding of the
 * request record and of the response (whatever the `application/grpc` content subtype, `+avro` or
 * none); status codes are avrpc's, which are gRPC's. A declared error travels in trailing metadata:
 * `avrpc-error-type` names its schema and `avrpc-error-bin` holds its Avro binary encoding by that
 * schema. Calls run through the shared call executor: the same authenticate, authorize, interceptors
 * and limits as avrpc calls. `grpc.health.v1.Health/Check` answers from the server's readiness.
 */
import type * as grpc from '@grpc/grpc-js';
import type { MessageDef } from '../../codec/protocol.js';
import { matchDeclared } from '../../connection/payload.js';
import { Code, errorCode } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import { callHook } from '../../util/call-hook.js';
import { CallContext } from '../call-context.js';
import type { ServerShared } from '../server-shared.js';
import { addMetadata, bearerToken, callMetadata, parsePeer } from './grpc-metadata.js';
import { loadGrpc, type GrpcModule } from './grpc-module.js';
import { grpcCredentials, verifiedCertificate } from './grpc-tls.js';
import { HEALTH_CHECK_PATH, decodeHealthRequest, encodeHealthResponse, healthStatus } from './health-service.js';
import { executeCall, type CallOutcome } from '../call-executor.js';

/** Trailer naming a declared error's schema (its full name). */
export const ERROR_TYPE_KEY = 'avrpc-error-type';
/** Binary trailer holding a declared error's Avro binary encoding by the schema {@link ERROR_TYPE_KEY} names. */
export const ERROR_BIN_KEY = 'avrpc-error-bin';

/** A running bridge. */
export interface GrpcBridge {
  /** The port bound (the real one when 0 was asked). */
  readonly port: number;
  /** Stops taking calls, lets running ones finish for up to `graceMs`, then ends the rest. */
  close(graceMs: number): Promise<void>;
}

/** How close to its deadline a client's cancel reads as the deadline passing, in ms. */
const DEADLINE_CANCEL_SLACK_MS = 100;

/** Passes the bytes through: the handler decodes them, so a bad request is INVALID_ARGUMENT, not INTERNAL. */
const identity = (b: Buffer): Buffer => b;

/**
 * Starts a grpc-js server for `shared`'s protocol on `host:port`. Rejects FAILED_PRECONDITION when
 * @grpc/grpc-js is not installed, or with the bind error.
 */
export async function startGrpcBridge(shared: ServerShared, host: string, port: number): Promise<GrpcBridge> {
  const g = await loadGrpc();
  const o = shared.options;
  const server = new g.Server({
    'grpc.max_receive_message_length': o.maxMessageBytes,
    'grpc.max_send_message_length': o.maxMessageBytes,
    'grpc.max_concurrent_streams': o.maxConcurrentCalls,
  });
  const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const msg of o.protocol.messages) {
    // Streams are not bridged yet: grpc-js answers their paths UNIMPLEMENTED.
    if (msg.stream !== undefined) continue;
    definition[msg.name] = unaryMethod(`/${o.protocol.name}/${msg.name}`);
    implementation[msg.name] = (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
      void runUnary(g, shared, msg, call).then(({ error, value, trailer }) =>
        error === undefined ? callback(null, value, trailer) : callback(error),
      );
  }
  server.addService(definition, implementation);
  server.addService(
    { Check: unaryMethod(HEALTH_CHECK_PATH) },
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
  const bound = await new Promise<number>((resolve, reject) => {
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    server.bindAsync(address, grpcCredentials(g, o.tls), (err, p) =>
      err === null ? resolve(p) : reject(new RpcError(Code.UNAVAILABLE, `grpc: cannot bind ${address}: ${err.message}`, { cause: err })),
    );
  });
  return {
    port: bound,
    close(graceMs) {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

/** A unary method at `path` whose messages are bytes as they are. */
function unaryMethod(path: string): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}

/** What a unary call answers: the response with its trailers, or a status. */
type UnaryAnswer =
  | { error: undefined; value: Buffer; trailer: grpc.Metadata }
  | { error: Partial<grpc.StatusObject>; value?: undefined; trailer?: undefined };

/** Runs one gRPC call of `msg`: authenticates, decodes, executes, encodes. Never rejects. */
async function runUnary(
  g: GrpcModule,
  shared: ServerShared,
  msg: MessageDef,
  call: grpc.ServerUnaryCall<Buffer, Buffer>,
): Promise<UnaryAnswer> {
  const o = shared.options;
  let ctx: CallContext | undefined;
  let outcome: CallOutcome;
  try {
    const { address, port } = parsePeer(call.getPeer());
    // As on the avrpc port: the verified client certificate (mTLS) is the principal unless authenticate decides.
    const certificate = verifiedCertificate(o.tls, call);
    const peer = { address, port, ...(certificate === undefined ? {} : { certificate }) };
    let principal: unknown = certificate;
    if (o.authenticate !== undefined) {
      const token = bearerToken(call.metadata);
      principal = await callHook(() => o.authenticate!({ token, meta: {} }, peer)).catch((err: unknown) => {
        throw new RpcError(Code.UNAUTHENTICATED, `authentication failed: ${RpcError.from(err).message}`);
      });
    }
    let request: unknown;
    try {
      request = msg.request.fromBuffer(call.request);
    } catch (err) {
      throw new RpcError(Code.INVALID_ARGUMENT, `cannot decode request: ${(err as Error).message}`);
    }
    const deadline = call.getDeadline();
    const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
    const c = new CallContext(msg.name, callMetadata(call.metadata), deadlineMs, {
      ...peer,
      ...(principal === undefined ? {} : { principal }),
    });
    ctx = c;
    c.headerSink = { writeHeader: (_id, headers) => call.sendMetadata(addMetadata(new g.Metadata(), headers)) };
    const onCancel = (): void => {
      // The client's own deadline timer fires a little before ours (its clock started first) and
      // resets the stream: a cancel that close to the deadline is the deadline passing.
      const timedOut = Date.now() >= c.deadline - DEADLINE_CANCEL_SLACK_MS;
      c.cancel(
        new RpcError(timedOut ? Code.DEADLINE_EXCEEDED : Code.CANCELLED, timedOut ? 'deadline exceeded' : 'cancelled by the client'),
      );
    };
    call.on('cancelled', onCancel);
    // Cancelled while authenticate ran: the event is gone, the flag stays.
    if (call.cancelled) onCancel();
    outcome = await executeCall(shared, msg, request, c);
  } catch (err) {
    outcome = { ok: false, error: RpcError.from(err) };
  }
  ctx?.sendHeader();
  const trailer = addMetadata(new g.Metadata(), ctx?.takeTrailer());
  if (outcome.ok) {
    try {
      return { error: undefined, value: msg.response.toBuffer(outcome.value), trailer };
    } catch (err) {
      outcome = { ok: false, error: new RpcError(Code.INTERNAL, `handler returned an invalid response: ${(err as Error).message}`) };
    }
  }
  return { error: errorStatus(msg, outcome.error, trailer) };
}

/** The gRPC status of `error`: its code and message, its metadata and declared error as trailers. */
function errorStatus(msg: MessageDef, error: RpcError, trailer: grpc.Metadata): Partial<grpc.StatusObject> {
  addMetadata(trailer, error.metadata);
  if (error.details !== undefined) {
    const match = matchDeclared(msg.errors, error.details, error.errorType);
    if (match !== undefined) {
      try {
        const bin = match.branch.toBuffer(error.details);
        trailer.set(ERROR_TYPE_KEY, match.branch.name ?? match.branch.typeName);
        trailer.set(ERROR_BIN_KEY, bin);
      } catch {
        // A value that fits but will not encode goes without its details: the code and message still do.
      }
    }
  }
  return { code: errorCode(error.code), details: error.message, metadata: trailer };
}
