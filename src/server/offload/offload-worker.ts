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
import { callScope, scopeWanted } from '../../util/call-scope.js';
import { errorDraftFor } from '../error-reply.js';
import type { Handler } from '../server-options.js';
import { REPLY_HEAD_BYTES, ReplyKind, type FailedReply, type OffloadTask, type OffloadWorkerData } from './offload-task.js';
import { WorkerCallContext } from './worker-call-context.js';

const data = workerData as OffloadWorkerData;
const local = new Protocol(data.protocolText, data.protocolOptions);
const flags = new Int32Array(data.flags);
const peers = new LRUCache<string, PeerCodec>({ max: data.resolverCacheSize });
let userModule: Promise<Record<string, unknown>> | undefined;

/** Encoding scratch space, kept between tasks up to this size so steady traffic allocates once. */
const MAX_SCRATCH_BYTES = 8 * 1024 * 1024;
let scratch = Buffer.allocUnsafeSlow(64 * 1024);

/** Runs one offloaded call; resolves with an {@link OffloadResult} (bytes transferred, never cloned). */
export default async function runTask(task: OffloadTask): Promise<unknown> {
  const msg = local.messages[task.index]!;
  // Cancelled or past its deadline while it waited in the queue: do not even decode it.
  const early = Atomics.load(flags, task.slot);
  if (early !== 0) return errorReply(msg, new RpcError(early as Code, 'call ended before a worker took it'));
  let resolver: avro.Resolver | undefined;
  if (task.remoteId !== undefined) {
    const codec = peerCodec(task);
    // A peer protocol this worker does not know, and no text to learn it from: hand the payload back.
    if (codec === undefined) return move(task.payload);
    resolver = codec.requests[task.remoteIndex]?.resolver;
  }
  let handler: Handler;
  let request: unknown;
  try {
    handler = await loadHandler(msg.name);
  } catch (err) {
    return errorReply(
      msg,
      err instanceof RpcError ? err : new RpcError(Code.INTERNAL, `cannot load worker module: ${(err as Error).message}`, { cause: err }),
    );
  }
  try {
    request = decodeExact(msg.request, Buffer.from(task.payload, task.payloadOffset), 0, resolver);
  } catch (err) {
    return errorReply(msg, new RpcError(Code.INVALID_ARGUMENT, `cannot decode request: ${(err as Error).message}`));
  }
  const ctx = new WorkerCallContext(msg.name, task.metadata, task.deadline, task.peer, flags, task.slot);
  try {
    let result = data.propagateDeadlines && scopeWanted.value ? callScope.run(ctx, handler, request, ctx) : handler(request, ctx);
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
function peerCodec(task: OffloadTask): PeerCodec | undefined {
  let codec = peers.get(task.remoteId!);
  if (codec === undefined && task.remoteText !== undefined) {
    codec = new PeerCodec(local, new Protocol(task.remoteText, data.protocolOptions));
    peers.set(task.remoteId!, codec);
  }
  return codec;
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
    return errorReply(
      msg,
      new RpcError(
        Code.INTERNAL,
        `handler of ${msg.name} returned an invalid response: ${describeInvalid(msg.response, value, 'response') ?? (err as Error).message}`,
      ),
    );
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

/**
 * Maps what the handler threw exactly as inline calls do (error-reply.ts), and encodes the ERROR body.
 * An INTERNAL error also carries its cause (message and stack) back for the server's log; the client
 * gets the message only.
 */
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
    if (end < 0) {
      size = Math.max(size * 2, size - end);
      continue;
    }
    const bytes = replyBytes(ReplyKind.ERROR, draft.code, errorFlags(draft), buf.subarray(0, end));
    if (draft.code !== Code.INTERNAL) return move(bytes);
    // Cloned, not moved: an error reply is small, and this path is rare.
    return { reply: bytes, cause: causeOf(thrown) } satisfies FailedReply;
  }
}

/** What the server logs about a thrown value: the original error's, when an RpcError wraps one. */
function causeOf(thrown: unknown): FailedReply['cause'] {
  const e = thrown instanceof RpcError && thrown.cause instanceof Error ? thrown.cause : thrown;
  if (e instanceof Error) return { name: e.name, message: e.message, stack: e.stack };
  return { name: typeof e, message: String(e), stack: undefined };
}

function reply(kind: number, code: number, frameFlags: number, body: Buffer): unknown {
  return move(replyBytes(kind, code, frameFlags, body));
}

function replyBytes(kind: number, code: number, frameFlags: number, body: Buffer): Buffer {
  // allocUnsafeSlow: its own ArrayBuffer (transferable), not zero-filled since every byte is written.
  const out = withHead(Buffer.allocUnsafeSlow(REPLY_HEAD_BYTES + body.length), kind, code, frameFlags);
  body.copy(out, REPLY_HEAD_BYTES);
  return out;
}
