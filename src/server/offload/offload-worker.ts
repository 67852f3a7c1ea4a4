/**
 * The piscina worker script: decodes an offloaded request from its bytes, runs the user's handler,
 * and encodes the response (or the whole ERROR body) back to bytes, so the main thread does no Avro
 * work for the call. Loaded by piscina from dist, never imported by the main thread.
 */
import type avro from 'avsc';
import { LRUCache } from 'lru-cache';
import { threadId } from 'node:worker_threads';
import { move, workerData } from 'piscina';
import { PeerCodec } from '../../codec/peer-codec.js';
import { Protocol } from '../../codec/protocol.js';
import { decodeExact } from '../../connection/payload.js';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import { callScope, scopeWanted } from '../../util/call-scope.js';
import type { Handler } from '../server-options.js';
import type { FailedReply, OffloadTask, OffloadWorkerData } from './offload-task.js';
import type { StreamStarted, StreamTask } from './stream-task.js';
import { postToMain, WorkerStream } from './stream-worker.js';
import { errorReply, responseReply } from './worker-replies.js';
import { WorkerCallContext } from './worker-call-context.js';

const data = workerData as OffloadWorkerData;
const local = new Protocol(data.protocolText, data.protocolOptions);
const flags = new Int32Array(data.flags);
const peers = new LRUCache<string, PeerCodec>({ max: data.resolverCacheSize });
let userModule: Promise<Record<string, unknown>> | undefined;

/** Runs one offloaded call; resolves with an {@link OffloadResult} (bytes transferred, never cloned). */
export default async function runTask(task: OffloadTask): Promise<unknown> {
  const msg = local.messages[task.index]!;
  // Cancelled or past its deadline while it waited in the queue: do not even decode it.
  const early = Atomics.load(flags, task.slot);
  if (early !== 0) return moved(errorReply(msg, new RpcError(early as Code, 'call ended before a worker took it')));
  let resolver: avro.Resolver | undefined;
  if (task.remoteId !== undefined) {
    const codec = peerCodec(task.remoteId, task.remoteText);
    // A peer protocol this worker does not know, and no text to learn it from: hand the payload back.
    if (codec === undefined) return move(task.payload);
    resolver = codec.requests[task.remoteIndex]?.resolver;
  }
  let handler: Handler;
  let request: unknown;
  try {
    handler = await loadHandler(msg.name);
  } catch (err) {
    return moved(errorReply(msg, loadError(err)));
  }
  try {
    request = decodeExact(msg.request, Buffer.from(task.payload, task.payloadOffset), 0, resolver);
  } catch (err) {
    return moved(errorReply(msg, new RpcError(Code.INVALID_ARGUMENT, `cannot decode request: ${(err as Error).message}`)));
  }
  const ctx = new WorkerCallContext(msg.name, task.metadata, task.deadline, task.peer, flags, task.slot);
  try {
    let result = data.propagateDeadlines && scopeWanted.value ? callScope.run(ctx, handler, request, ctx) : handler(request, ctx);
    if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') {
      ctx.watch();
      result = await result;
    }
    return withHeaders(responseReply(msg, result, task.responseMetadata ? ctx.takeTrailer() : undefined), ctx, task);
  } catch (err) {
    // An ERROR carries the trailers in its metadata whatever the client negotiated (as inline calls).
    return withHeaders(errorReply(msg, err, ctx), ctx, task);
  } finally {
    ctx.release();
  }
}

/**
 * Starts one stream (see stream-task.ts): decodes a server stream's request, then runs the handler
 * on this thread's event loop, driven over the task's port, and resolves at once. Whatever fails
 * before the handler runs is told over the port too, as the stream's ERROR.
 */
export async function openStream(task: StreamTask): Promise<StreamStarted> {
  const msg = local.messages[task.index]!;
  const started: StreamStarted = { threadId };
  const fail = (err: RpcError): StreamStarted => {
    postToMain(task.port, { t: 'done', reply: errorReply(msg, err), headers: undefined, trailers: undefined });
    return started;
  };
  const early = Atomics.load(flags, task.slot);
  if (early !== 0) return fail(new RpcError(early as Code, 'call ended before a worker took it'));
  let handler: Handler;
  let request: unknown;
  let resolver: avro.Resolver | undefined;
  try {
    handler = await loadHandler(msg.name);
  } catch (err) {
    return fail(loadError(err));
  }
  try {
    if (task.remoteId !== undefined) resolver = peerCodec(task.remoteId, task.remoteText)?.requests[task.remoteIndex]?.resolver;
    if (task.request !== undefined) request = decodeExact(msg.request, Buffer.from(task.request), 0, resolver);
  } catch (err) {
    return fail(new RpcError(Code.INVALID_ARGUMENT, `cannot decode request: ${(err as Error).message}`));
  }
  const ctx = new WorkerCallContext(msg.name, task.metadata, task.deadline, task.peer, flags, task.slot);
  const stream = new WorkerStream(msg, ctx, task.port, resolver, data.propagateDeadlines && scopeWanted.value);
  void stream.run(handler, request);
  return started;
}

/**
 * Loads the handler module and lists which of `names` it has no function for. Run once by the server
 * at `listen`, so a module that does not load, or lacks a handler, is found before any call; a load
 * error rejects.
 */
export async function warmUp(names: readonly string[]): Promise<string[]> {
  userModule ??= import(data.moduleUrl) as Promise<Record<string, unknown>>;
  const mod = await userModule;
  return names.filter((name) => typeof mod[name] !== 'function');
}

async function loadHandler(name: string): Promise<Handler> {
  userModule ??= import(data.moduleUrl) as Promise<Record<string, unknown>>;
  const fn = (await userModule)[name];
  if (typeof fn !== 'function') throw new RpcError(Code.UNIMPLEMENTED, `worker module exports no function '${name}'`);
  return fn as Handler;
}

/**
 * The codec for the peer's protocol, built once per peer protocol and worker; undefined when this
 * worker has not seen the fingerprint and the task does not carry the text.
 */
function peerCodec(remoteId: string, remoteText: string | undefined): PeerCodec | undefined {
  let codec = peers.get(remoteId);
  if (codec === undefined && remoteText !== undefined) {
    codec = new PeerCodec(local, new Protocol(remoteText, data.protocolOptions));
    peers.set(remoteId, codec);
  }
  return codec;
}

/** A unary reply with the handler's response headers, when it set any and the client takes them. */
function withHeaders(reply: Uint8Array | FailedReply, ctx: WorkerCallContext, task: OffloadTask): unknown {
  const headers = task.responseMetadata ? ctx.takeHeader() : undefined;
  if (headers === undefined) return moved(reply);
  return reply instanceof Uint8Array ? ({ reply, headers } satisfies FailedReply) : { ...reply, headers };
}

/** A reply as the task's result: bytes transferred (piscina `move`), a {@link FailedReply} cloned. */
function moved(reply: Uint8Array | FailedReply): unknown {
  return reply instanceof Uint8Array ? move(reply) : reply;
}

function loadError(err: unknown): RpcError {
  return err instanceof RpcError
    ? err
    : new RpcError(Code.INTERNAL, `cannot load worker module: ${(err as Error).message}`, { cause: err });
}
