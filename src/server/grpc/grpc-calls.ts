/**
 * The gRPC bridge's call handlers, one per kind of message, each running the server's handler (or its
 * worker) through the shared call executor: unary and one-way calls, and server, client and bidi
 * streams (their elements each way in grpc-stream-io.ts). The status and trailers end a stream as
 * they end a unary call; a client's cancel, or its deadline, aborts the handler's signal; a handler's
 * failure ends the call with its code, its declared error in the trailers.
 */
import type * as grpc from '@grpc/grpc-js';
import type { MessageDef } from '../../codec/protocol.js';
import { matchDeclared } from '../../connection/payload.js';
import { Code, errorCode } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import { CallContext } from '../call-context.js';
import { EncodedRequest, executeCall, type CallOutcome } from '../call-executor.js';
import { runStream } from './grpc-stream-io.js';
import type { ServerShared } from '../server-shared.js';
import type { GrpcConnections } from './grpc-connections.js';
import { addMetadata, bearerToken, callMetadata, parsePeer } from './grpc-metadata.js';
import type { GrpcModule } from './grpc-module.js';
import { verifiedCertificate } from './grpc-tls.js';

/** Trailer naming a declared error's schema (its full name). */
export const ERROR_TYPE_KEY = 'avrpc-error-type';
/** Binary trailer holding a declared error's Avro binary encoding by the schema {@link ERROR_TYPE_KEY} names. */
export const ERROR_BIN_KEY = 'avrpc-error-bin';

/** How close to its deadline a client's cancel reads as the deadline passing, in ms. */
const DEADLINE_CANCEL_SLACK_MS = 100;

/** What every call handler of one bridge shares. */
export interface BridgeEnv {
  readonly g: GrpcModule;
  readonly shared: ServerShared;
  readonly connections: GrpcConnections;
}

/** Any grpc-js server call: its metadata, peer, deadline and cancel. */
type AnyCall =
  | grpc.ServerUnaryCall<Buffer, Buffer>
  | grpc.ServerReadableStream<Buffer, Buffer>
  | grpc.ServerWritableStream<Buffer, Buffer>
  | grpc.ServerDuplexStream<Buffer, Buffer>;

/** The grpc-js handler for `msg`, by its kind. */
export function handlerFor(env: BridgeEnv, msg: MessageDef): grpc.UntypedHandleCall {
  const shared = env.shared;
  switch (msg.stream) {
    case undefined:
      return (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
        void answer(env, msg, call, (ctx) => executeCall(shared, msg, new EncodedRequest(call.request), ctx), callback);
    case 'client':
      return (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
        void answer(env, msg, call, (ctx) => runStream(shared, msg, call, ctx), callback);
    case 'server':
      return (call: grpc.ServerWritableStream<Buffer, Buffer>) =>
        void stream(env, msg, call, (ctx) => runStream(shared, msg, call, ctx, new EncodedRequest(call.request)));
    case 'bidi':
      return (call: grpc.ServerDuplexStream<Buffer, Buffer>) => void stream(env, msg, call, (ctx) => runStream(shared, msg, call, ctx));
  }
}

/** Runs a call that answers one message (unary, one-way, client stream). Never rejects. */
async function answer(
  env: BridgeEnv,
  msg: MessageDef,
  call: AnyCall,
  exec: (ctx: CallContext) => Promise<CallOutcome>,
  callback: grpc.sendUnaryData<Buffer>,
): Promise<void> {
  const { ctx, outcome } = await execute(env, msg, call, exec);
  ctx?.sendHeader();
  const trailer = addMetadata(new env.g.Metadata(), ctx?.takeTrailer());
  let error = outcome.ok ? undefined : outcome.error;
  if (outcome.ok) {
    try {
      return callback(null, outcome.encoded ?? msg.response.toBuffer(outcome.value), trailer);
    } catch (err) {
      error = new RpcError(Code.INTERNAL, `handler returned an invalid response: ${(err as Error).message}`);
    }
  }
  callback(errorStatus(msg, error!, trailer));
}

/** Runs a call that answers a stream (server, bidi): its status and trailers once it ended. Never rejects. */
async function stream(
  env: BridgeEnv,
  msg: MessageDef,
  call: grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>,
  exec: (ctx: CallContext) => Promise<CallOutcome>,
): Promise<void> {
  const { ctx, outcome } = await execute(env, msg, call, exec);
  if (call.cancelled) return;
  ctx?.sendHeader();
  const trailer = addMetadata(new env.g.Metadata(), ctx?.takeTrailer());
  if (outcome.ok) call.end(trailer);
  else call.emit('error', errorStatus(msg, outcome.error, trailer));
}

/** Authenticates the caller, makes the call's context and runs `exec` in it; a failure is an outcome. */
async function execute(
  env: BridgeEnv,
  msg: MessageDef,
  call: AnyCall,
  exec: (ctx: CallContext) => Promise<CallOutcome>,
): Promise<{ ctx: CallContext | undefined; outcome: CallOutcome }> {
  let ctx: CallContext | undefined;
  try {
    ctx = await contextOf(env, msg, call);
    return { ctx, outcome: await exec(ctx) };
  } catch (err) {
    return { ctx, outcome: { ok: false, error: RpcError.from(err) } };
  }
}

/** The call's context: its metadata, deadline and peer (principal from `authenticate`), cancelled with the gRPC call. */
async function contextOf(env: BridgeEnv, msg: MessageDef, call: AnyCall): Promise<CallContext> {
  const o = env.shared.options;
  const peerString = call.getPeer();
  const { address, port } = parsePeer(peerString);
  // As on the avrpc port: the verified client certificate (mTLS) is the principal unless authenticate decides.
  const certificate = verifiedCertificate(o.tls, call);
  const peer = { address, port, ...(certificate === undefined ? {} : { certificate }) };
  let principal: unknown = certificate;
  if (o.authenticate !== undefined)
    principal = await env.connections.authenticate(o.authenticate, peerString, bearerToken(call.metadata), peer);
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  const c = new CallContext(msg.name, callMetadata(call.metadata), deadlineMs, {
    ...peer,
    ...(principal === undefined ? {} : { principal }),
  });
  c.headerSink = { writeHeader: (_id, headers) => call.sendMetadata(addMetadata(new env.g.Metadata(), headers)) };
  const onCancel = (): void => {
    // The client's own deadline timer fires a little before ours (its clock started first) and
    // resets the stream: a cancel that close to the deadline is the deadline passing.
    const timedOut = Date.now() >= c.deadline - DEADLINE_CANCEL_SLACK_MS;
    c.cancel(new RpcError(timedOut ? Code.DEADLINE_EXCEEDED : Code.CANCELLED, timedOut ? 'deadline exceeded' : 'cancelled by the client'));
  };
  (call as grpc.ServerUnaryCall<Buffer, Buffer>).on('cancelled', onCancel);
  // Cancelled while authenticate ran: the event is gone, the flag stays.
  if (call.cancelled) onCancel();
  return c;
}

/** The gRPC status of `error`: its code and message, its metadata and declared error as trailers. */
export function errorStatus(msg: MessageDef, error: RpcError, trailer: grpc.Metadata): Partial<grpc.StatusObject> {
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
