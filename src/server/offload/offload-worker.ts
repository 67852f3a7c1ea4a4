/**
 * The piscina worker script: decodes an offloaded request from its bytes, runs the user's handler,
 * and encodes the response (or the whole ERROR body) back to bytes, so the main thread does no Avro
 * work for the call. Loaded by piscina from dist, never imported by the main thread.
 */
import type avro from 'avsc';
import { LRUCache } from 'lru-cache';
import { move, workerData } from 'piscina';
import { describeInvalid } from '../../codec/invalid-value.js';
import { PeerCodec } from '../../codec/peer-codec.js';
import { Protocol, type MessageDef } from '../../codec/protocol.js';
import { decodeExact } from '../../connection/payload.js';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import { errorFlags, writeError } from '../../framing/bodies.js';
import { callScope } from '../../util/call-scope.js';
import { errorDraftFor } from '../error-reply.js';
import type { Handler } from '../server-options.js';
import { REPLY_HEAD_BYTES, ReplyKind, type OffloadTask, type OffloadWorkerData } from './offload-task.js';
import { WorkerCallContext } from './worker-call-context.js';

const data = workerData as OffloadWorkerData;
const local = new Protocol(data.protocolText, data.protocolOptions);
const flags = new Int32Array(data.flags);
const peers = new LRUCache<string, PeerCodec>({ max: data.resolverCacheSize });
let userModule: Promise<Record<string, unknown>> | undefined;

/** Encoding scratch space, kept between tasks up to this size so steady traffic allocates once. */
const MAX_SCRATCH_BYTES = 8 * 1024 * 1024;
let scratch = Buffer.allocUnsafeSlow(64 * 1024);

/** Runs one offloaded call; resolves with the reply bytes (transferred, never cloned). */
export default async function runTask(task: OffloadTask): Promise<unknown> {
  const msg = local.messages[task.index]!;
  // Cancelled or past its deadline while it waited in the queue: do not even decode it.
  const early = Atomics.load(flags, task.slot);
  if (early !== 0) return errorReply(msg, new RpcError(early as Code, 'call ended before a worker took it'));
  let handler: Handler;
  let request: unknown;
  try {
    handler = await loadHandler(msg.name);
  } catch (err) {
    return errorReply(msg, err instanceof RpcError ? err : new RpcError(Code.INTERNAL, `cannot load worker module: ${(err as Error).message}`));
  }
  try {
    request = decodeExact(msg.request, Buffer.from(task.payload, task.payloadOffset), 0, resolverFor(task));
  } catch (err) {
    return errorReply(msg, new RpcError(Code.INVALID_ARGUMENT, `cannot decode request: ${(err as Error).message}`));
  }
  const ctx = new WorkerCallContext(msg.name, task.metadata, task.deadline, task.peer, flags, task.slot);
  try {
    let result = data.propagateDeadlines ? callScope.run(ctx, handler, request, ctx) : handler(request, ctx);
    if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') {
      ctx.watch();
      result = await result;
    }
    return responseReply(msg, result);
  } catch (err) {
    return errorReply(msg, err);
  } finally {
    ctx.release();
  }
}

async function loadHandler(name: string): Promise<Handler> {
  userModule ??= import(data.moduleUrl) as Promise<Record<string, unknown>>;
  const fn = (await userModule)[name];
  if (typeof fn !== 'function') throw new RpcError(Code.UNIMPLEMENTED, `worker module exports no function '${name}'`);
  return fn as Handler;
}

/** The resolver from the peer's request schema, built once per peer protocol and worker. */
function resolverFor(task: OffloadTask): avro.Resolver | undefined {
  if (task.remoteId === undefined) return undefined;
  let codec = peers.get(task.remoteId);
  if (codec === undefined) {
    codec = new PeerCodec(local, new Protocol(task.remoteText!, data.protocolOptions));
    peers.set(task.remoteId, codec);
  }
  return codec.requests[task.remoteIndex]?.resolver;
}

function responseReply(msg: MessageDef, value: unknown): unknown {
  if (value === undefined && msg.response.typeName === 'null') value = null; // a `void` handler returning nothing
  let end: number;
  try {
    // Encoded after room for the reply's head, so a large response is the reply itself (no copy).
    end = msg.response.encode(value, scratch, REPLY_HEAD_BYTES);
    if (end < 0) {
      const need = scratch.length - end;
      const buf = Buffer.allocUnsafeSlow(need);
      end = msg.response.encode(value, buf, REPLY_HEAD_BYTES);
      if (need <= MAX_SCRATCH_BYTES) scratch = buf;
      else return move(withHead(buf, ReplyKind.RESPONSE, Code.OK, 0));
    }
  } catch (err) {
    return errorReply(msg, new RpcError(Code.INTERNAL, `handler of ${msg.name} returned an invalid response: ${describeInvalid(msg.response, value, 'response') ?? (err as Error).message}`));
  }
  return reply(ReplyKind.RESPONSE, Code.OK, 0, scratch.subarray(REPLY_HEAD_BYTES, end));
}

/** Writes the reply head into the first REPLY_HEAD_BYTES of `buf`. */
function withHead(buf: Buffer, kind: number, code: number, frameFlags: number): Buffer {
  buf[0] = kind;
  buf[1] = code;
  buf[2] = frameFlags;
  return buf;
}

/** Maps what the handler threw exactly as inline calls do (error-reply.ts), and encodes the ERROR body. */
function errorReply(msg: MessageDef, thrown: unknown): unknown {
  const draft = errorDraftFor(msg, thrown);
  let size = 256;
  for (;;) {
    const buf = Buffer.allocUnsafe(size);
    let end: number;
    try {
      end = writeError(draft, buf, 0);
    } catch (err) {
      return errorReply(msg, new RpcError(Code.INTERNAL, `cannot encode error: ${(err as Error).message}`));
    }
    if (end >= 0) return reply(ReplyKind.ERROR, draft.code, errorFlags(draft), buf.subarray(0, end));
    size = Math.max(size * 2, size - end);
  }
}

function reply(kind: number, code: number, frameFlags: number, body: Buffer): unknown {
  // allocUnsafeSlow: its own ArrayBuffer (transferable), not zero-filled since every byte is written.
  const out = withHead(Buffer.allocUnsafeSlow(REPLY_HEAD_BYTES + body.length), kind, code, frameFlags);
  body.copy(out, REPLY_HEAD_BYTES);
  return move(out);
}
