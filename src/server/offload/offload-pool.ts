import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import type { Protocol } from '../../codec/protocol.js';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import type { Logger } from '../../observability/observer.js';
import type { CallContext, PeerInfo } from '../call-context.js';
import type { OffloadedStream, StreamOffload } from '../stream-offload.js';
import { WorkerStreams } from './worker-streams.js';
import { OffloadReply, type FailedReply, type OffloadResult, type OffloadTask, type OffloadWorkerData } from './offload-task.js';
import { TaskSlot } from './task-slot.js';
import type { ResolvedWorkerOptions } from './worker-options.js';
import { workerPeer } from './worker-peer.js';
import moduleDir from './module-dir.cjs';

/** The worker script, beside this file in either build (see module-dir.cts). */
const WORKER_URL = pathToFileURL(join(moduleDir.dirname, 'offload-worker.js')).href;

/** A request the server routes to a worker instead of decoding it: its payload bytes. */
export class OffloadedRequest {
  constructor(
    /** The peer's protocol and message index, for schema resolution in the worker. */
    readonly remote: Protocol,
    readonly remoteIndex: number,
    /** The whole REQUEST frame body; the payload starts at `offset`. */
    readonly body: Buffer,
    readonly offset: number,
  ) {}
}

/**
 * The bytes to transfer and where the payload starts in them. A frame body that owns its whole
 * ArrayBuffer (the decoder copies a frame spanning socket chunks into a buffer of exactly its size)
 * is transferred as it is; a view into a socket chunk shared with other frames is copied once.
 */
function transferable(request: OffloadedRequest): { buffer: ArrayBuffer; offset: number } {
  const { body, offset } = request;
  if (body.byteOffset === 0 && body.buffer.byteLength === body.length && body.buffer instanceof ArrayBuffer) {
    return { buffer: body.buffer, offset };
  }
  // allocUnsafeSlow: its own ArrayBuffer of exactly this size, not zero-filled since it is overwritten.
  const copy = Buffer.allocUnsafeSlow(body.length - offset);
  body.copy(copy, 0, offset);
  return { buffer: copy.buffer as ArrayBuffer, offset: 0 };
}

/**
 * The main-thread side of worker offload: decides which calls go to workers, hands their payload
 * bytes to piscina (transferred, never cloned), relays cancellation through a {@link TaskSlot} per
 * call, and turns the worker's reply bytes into an {@link OffloadReply}. A worker that dies fails
 * only the calls it was running (INTERNAL); piscina starts a new one.
 *
 * Cancellation does not use piscina's own abort at once, which terminates a busy worker (tens of ms
 * to start a new one and reload the handler module): the slot's flag lets the handler stop by itself,
 * and a call cancelled while queued is dropped by the worker before it decodes anything. Only a task
 * still unanswered `abandonGraceMs` after its call ended is aborted through piscina.
 */
export class OffloadPool implements StreamOffload {
  private pool: Piscina | undefined;
  private readonly sharedFlags: SharedArrayBuffer;
  private readonly slots: TaskSlot[] = [];
  private readonly freeSlots: number[];
  /** What tasks carry as each connection's peer, checked once per peer object (see worker-peer.ts). */
  private readonly peers = new WeakMap<PeerInfo, PeerInfo>();
  private warnedProjection = false;
  private closed = false;
  /** Tasks sent again with the peer's protocol text because their worker did not know it (for tests). */
  protocolTextsSent = 0;
  /** The streams running in workers. */
  private readonly streams: WorkerStreams;

  constructor(
    private readonly options: ResolvedWorkerOptions,
    private readonly protocol: Protocol,
    private readonly resolverCacheSize: number,
    private readonly propagateDeadlines: boolean,
    private readonly logger: Logger,
  ) {
    this.sharedFlags = new SharedArrayBuffer(4 * options.maxTasks);
    this.streams = new WorkerStreams(() => this.pool, this.freeSlot, logger);
    this.freeSlots = Array.from({ length: options.maxTasks }, (_, i) => options.maxTasks - 1 - i);
  }

  /** True when a request of this local message and payload size runs in a worker. */
  takes(index: number, payloadBytes: number): boolean {
    const o = this.options;
    return o.messages.has(index) && (o.offload === 'always' || payloadBytes >= o.thresholdBytes);
  }

  /** True for a stream message in `workers.messages`: it always runs in a worker (whatever `offload` says). */
  takesStream(index: number): boolean {
    return this.options.messages.has(index) && this.protocol.messages[index]?.stream !== undefined;
  }

  /** True when this message may run in a worker (it then needs no inline handler under 'always'). */
  serves(index: number): boolean {
    return this.options.messages.has(index);
  }

  /** Starts the worker threads (at `listen`, so the first heavy call does not pay for it). */
  start(): void {
    if (this.pool !== undefined || this.closed) return;
    const workerData: OffloadWorkerData = {
      protocolText: this.protocol.text,
      protocolOptions: { ...this.protocol.options },
      moduleUrl: this.options.moduleUrl,
      flags: this.sharedFlags,
      resolverCacheSize: this.resolverCacheSize,
      propagateDeadlines: this.propagateDeadlines,
    };
    const threads = this.options.threads;
    // atomics 'async': an idle worker waits with Atomics.waitAsync, so its event loop keeps running
    // between calls (piscina's default 'sync' freezes it, which would let a handler module's
    // background work, or a stray callback, land in the middle of an unrelated later call).
    this.pool = new Piscina({
      filename: WORKER_URL,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: Infinity,
      workerData,
      atomics: 'async',
      loadBalancer: (task, workers) => this.streams.place(task, workers),
    });
    // A worker that dies between calls (a handler's stray timer threw) is replaced by piscina; without
    // a listener its 'error' event would take the whole server down.
    this.pool.on('error', (err: unknown) => this.logger.error({ err }, 'offload worker died outside a call; replaced'));
  }

  /**
   * Starts the workers and has one load the handler module and check it exports a function for every
   * offloaded message. Rejects with INVALID_ARGUMENT naming the module (and the message) otherwise.
   */
  async warmUp(): Promise<void> {
    this.start();
    if (this.pool === undefined) return;
    const url = this.options.moduleUrl;
    const names = [...this.options.messages].map((i) => this.protocol.messages[i]!.name);
    let problem: string | undefined;
    let cause: unknown;
    try {
      const missing = (await this.pool.run(names, { name: 'warmUp' })) as string[];
      if (missing.length > 0)
        problem = `exports no function for message${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')}`;
    } catch (err) {
      cause = err;
      problem = `does not load in a worker: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (problem === undefined) return;
    // No threads left behind: the server does not listen, and a later listen() starts them again.
    const pool = this.pool;
    this.pool = undefined;
    await pool?.destroy();
    throw new RpcError(Code.INVALID_ARGUMENT, `options.workers.module ${url} ${problem}`, { cause });
  }

  /** Runs one call in a worker; resolves with its reply, rejects with an `RpcError` if no reply can come. */
  run(localIndex: number, request: OffloadedRequest, ctx: CallContext): Promise<OffloadReply> {
    const slot = this.takeSlot();
    if (slot instanceof RpcError) return Promise.reject(slot);
    const index = slot.index;
    slot.begin(ctx);
    const { buffer, offset } = transferable(request);
    const remote = request.remote;
    const sameProtocol = remote.id === this.protocol.id;
    const task: OffloadTask = {
      slot: index,
      index: localIndex,
      remoteIndex: request.remoteIndex,
      remoteId: sameProtocol ? undefined : remote.id,
      remoteText: undefined,
      payload: buffer,
      payloadOffset: offset,
      metadata: ctx.metadata,
      deadline: ctx.deadline,
      peer: this.peerOf(ctx.peer),
      // The session gives a call a header sink only when its client takes headers and trailers.
      responseMetadata: ctx.headerSink !== undefined,
    };
    return this.submit(task, slot, remote)
      .then(
        (result) => {
          const reply = OffloadReply.read(result);
          if (reply.headers !== undefined) {
            // Before the reply, which the session sends once this resolves.
            Object.assign(ctx.responseHeader, reply.headers);
            ctx.sendHeader();
          }
          return reply;
        },
        (err: unknown) => {
          throw new RpcError(
            Code.INTERNAL,
            `worker failed while running ${ctx.message}: ${err instanceof Error ? err.message : String(err)}`,
            { cause: err },
          );
        },
      )
      .finally(() => this.freeSlot(slot));
  }

  /**
   * Runs a stream's handler in a worker (see worker-streams.ts): a short start task hands the worker
   * the stream's port, and the stream then lives on that worker's event loop, so an open stream does
   * not hold a thread the way a running call does. Throws an `RpcError` when it cannot start (shutting
   * down, `maxTasks` taken: streams hold slots too, until they end).
   */
  runStream(index: number, stream: OffloadedStream, ctx: CallContext): AsyncIterable<Buffer> | Promise<OffloadReply> {
    const slot = this.takeSlot();
    if (slot instanceof RpcError) throw slot;
    const sameProtocol = stream.remote.id === this.protocol.id;
    const request =
      stream.request === undefined
        ? undefined
        : transferable(new OffloadedRequest(stream.remote, stream.remoteIndex, stream.request, 0)).buffer;
    return this.streams.open(this.pool!, this.protocol.messages[index]!, slot, ctx, {
      slot: slot.index,
      index,
      remoteIndex: stream.remoteIndex,
      remoteId: sameProtocol ? undefined : stream.remote.id,
      remoteText: sameProtocol ? undefined : stream.remote.text,
      request,
      metadata: ctx.metadata,
      deadline: ctx.deadline,
      peer: this.peerOf(ctx.peer),
      requests: stream.requests,
    });
  }

  /** A free task slot (the pool started), or why there is none. */
  private takeSlot(): TaskSlot | RpcError {
    if (this.closed) return new RpcError(Code.UNAVAILABLE, 'server is shutting down');
    const index = this.freeSlots.pop();
    if (index === undefined)
      return new RpcError(Code.RESOURCE_EXHAUSTED, `too many offloaded calls (workers.maxTasks ${this.options.maxTasks})`);
    this.start();
    return (this.slots[index] ??= new TaskSlot(index, new Int32Array(this.sharedFlags), this.options.abandonGraceMs, this.onAbandon));
  }

  private readonly freeSlot = (slot: TaskSlot): void => {
    slot.end();
    this.freeSlots.push(slot.index);
  };

  /** Runs `task`; once more with the peer's protocol text if its worker did not know that protocol. */
  private async submit(task: OffloadTask, slot: TaskSlot, remote: Protocol): Promise<Uint8Array | FailedReply> {
    const result = (await this.pool!.run(task, { transferList: [task.payload], signal: slot })) as OffloadResult;
    if (!(result instanceof ArrayBuffer)) return result;
    // The payload came back: any worker can run the task now that it carries the text.
    if (this.pool === undefined) throw new RpcError(Code.UNAVAILABLE, 'server is shutting down');
    task.payload = result;
    task.remoteText = remote.text;
    this.protocolTextsSent++;
    return (await this.pool.run(task, { transferList: [result], signal: slot })) as Uint8Array | FailedReply;
  }

  /** The peer as tasks carry it: the same object, or a copy whose principal can cross threads. */
  private peerOf(peer: PeerInfo): PeerInfo {
    if (peer.principal === undefined) return peer;
    let out = this.peers.get(peer);
    if (out === undefined) {
      const checked = workerPeer(peer);
      out = checked.peer;
      this.peers.set(peer, out);
      if (checked.projected && !this.warnedProjection) {
        this.warnedProjection = true;
        this.logger.warn(
          { peer: { address: peer.address, port: peer.port } },
          'principal cannot be structured-cloned: worker handlers get a copy without its functions (see WorkerOptions)',
        );
      }
    }
    return out;
  }

  private readonly onAbandon = (message: string): void => {
    this.logger.warn(
      { message, graceMs: this.options.abandonGraceMs },
      'worker task still unanswered after its call ended and the grace period: aborted (a running worker thread is terminated and replaced)',
    );
  };

  /** Stops the worker threads; calls still running in them fail. */
  async close(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = undefined;
    if (pool !== undefined) await pool.destroy();
  }
}
