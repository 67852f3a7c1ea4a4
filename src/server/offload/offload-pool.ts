import { MessageChannel, type Worker } from 'node:worker_threads';
import { Piscina, type PiscinaTask } from 'piscina';
import type { Protocol } from '../../codec/protocol.js';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import type { Logger } from '../../observability/observer.js';
import type { CallContext, PeerInfo } from '../call-context.js';
import type { OffloadedStream, StreamOffload } from '../stream-offload.js';
import { StreamLink, type LinkOwner } from './stream-link.js';
import { STREAM_TASK_NAME, type StreamStarted, type StreamTask } from './stream-task.js';
import { OffloadReply, type FailedReply, type OffloadResult, type OffloadTask, type OffloadWorkerData } from './offload-task.js';
import { TaskSlot } from './task-slot.js';
import type { ResolvedWorkerOptions } from './worker-options.js';
import { workerPeer } from './worker-peer.js';

const WORKER_URL = new URL('./offload-worker.js', import.meta.url).href;

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
export class OffloadPool implements StreamOffload, LinkOwner {
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
  /** Open streams by the worker thread they run on, to start each new one on the least loaded. */
  private readonly streamsOn = new Map<number, number>();
  /** Worker threads going away (see {@link lost}). */
  private readonly dying = new Set<number>();

  constructor(
    private readonly options: ResolvedWorkerOptions,
    private readonly protocol: Protocol,
    private readonly resolverCacheSize: number,
    private readonly propagateDeadlines: boolean,
    private readonly logger: Logger,
  ) {
    this.sharedFlags = new SharedArrayBuffer(4 * options.maxTasks);
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
      loadBalancer: (task, workers) => this.placeTask(task, workers),
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
    if (this.closed) return Promise.reject(new RpcError(Code.UNAVAILABLE, 'server is shutting down'));
    const index = this.freeSlots.pop();
    if (index === undefined) {
      return Promise.reject(new RpcError(Code.RESOURCE_EXHAUSTED, `too many offloaded calls (workers.maxTasks ${this.options.maxTasks})`));
    }
    this.start();
    const slot = (this.slots[index] ??= new TaskSlot(index, new Int32Array(this.sharedFlags), this.options.abandonGraceMs, this.onAbandon));
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
    };
    return this.submit(task, slot, remote)
      .then(
        (result) => OffloadReply.read(result),
        (err: unknown) => {
          throw new RpcError(
            Code.INTERNAL,
            `worker failed while running ${ctx.message}: ${err instanceof Error ? err.message : String(err)}`,
            { cause: err },
          );
        },
      )
      .finally(() => {
        slot.end();
        this.freeSlots.push(index);
      });
  }

  /**
   * Runs a stream's handler in a worker (see stream-link.ts and stream-worker.ts): a short start task
   * hands the worker the stream's port and the stream then lives on that worker's event loop, so an
   * open stream does not hold a thread the way a running call does. Throws an `RpcError` when it
   * cannot start (shutting down, `maxTasks` taken: streams hold slots too, until they end).
   */
  runStream(index: number, stream: OffloadedStream, ctx: CallContext): AsyncIterable<Buffer> | Promise<OffloadReply> {
    if (this.closed) throw new RpcError(Code.UNAVAILABLE, 'server is shutting down');
    const slotIndex = this.freeSlots.pop();
    if (slotIndex === undefined)
      throw new RpcError(Code.RESOURCE_EXHAUSTED, `too many offloaded calls (workers.maxTasks ${this.options.maxTasks})`);
    this.start();
    const msg = this.protocol.messages[index]!;
    const slot = (this.slots[slotIndex] ??= new TaskSlot(
      slotIndex,
      new Int32Array(this.sharedFlags),
      this.options.abandonGraceMs,
      this.onAbandon,
    ));
    const { port1, port2 } = new MessageChannel();
    const link = new StreamLink(msg, ctx, port1, slot, stream.requests, this, this.logger);
    slot.begin(ctx, link.abandon);
    const request =
      stream.request === undefined
        ? undefined
        : transferable(new OffloadedRequest(stream.remote, stream.remoteIndex, stream.request, 0)).buffer;
    const sameProtocol = stream.remote.id === this.protocol.id;
    const task: StreamTask = {
      slot: slotIndex,
      index,
      remoteIndex: stream.remoteIndex,
      remoteId: sameProtocol ? undefined : stream.remote.id,
      remoteText: sameProtocol ? undefined : stream.remote.text,
      request,
      metadata: ctx.metadata,
      deadline: ctx.deadline,
      peer: this.peerOf(ctx.peer),
      port: port2,
    };
    const transferList = request === undefined ? [port2] : [port2, request];
    (this.pool!.run(task, { name: STREAM_TASK_NAME, transferList, signal: slot }) as Promise<StreamStarted>).then(
      (started) => {
        this.streamsOn.set(started.threadId, (this.streamsOn.get(started.threadId) ?? 0) + 1);
        link.started(started.threadId);
      },
      (err: unknown) => link.startFailed(err),
    );
    return msg.stream === 'client' ? link.response : link;
  }

  /** {@link LinkOwner}: a stream is over on both threads; its slot is free. */
  released(link: StreamLink): void {
    const t = link.threadId;
    if (t !== undefined) {
      const n = (this.streamsOn.get(t) ?? 1) - 1;
      if (n > 0) this.streamsOn.set(t, n);
      else this.streamsOn.delete(t);
    }
    link.slot.end();
    this.freeSlots.push(link.slot.index);
  }

  /** {@link LinkOwner}: a stream's handler ignored its cancellation past the grace period: its thread is replaced. */
  terminate(threadId: number): void {
    const worker = this.lost(threadId);
    if (worker !== undefined) void worker.terminate();
  }

  /**
   * {@link LinkOwner}: a worker thread is going (terminated, or it exited): until piscina has removed
   * it, no task is placed on it (it would fail with the thread).
   */
  lost(threadId: number): Worker | undefined {
    const worker = this.pool?.threads.find((w) => w.threadId === threadId);
    if (worker === undefined || this.dying.has(threadId)) return worker;
    this.dying.add(threadId);
    worker.once('exit', () => this.dying.delete(threadId));
    return worker;
  }

  /**
   * piscina's load balancer: a task goes to an idle worker (one task per thread: tasks are abortable);
   * a stream's start goes to the idle worker running the fewest open streams, so streams spread over
   * the threads instead of all landing on the first idle one.
   */
  private placeTask<W extends { id: number; currentUsage: number; terminating: boolean; destroyed: boolean }>(
    task: PiscinaTask,
    workers: W[],
  ): W | null {
    const streams = task.name === STREAM_TASK_NAME;
    let best: W | null = null;
    let least = Infinity;
    for (const w of workers) {
      if (w.currentUsage !== 0 || w.terminating || w.destroyed || this.dying.has(w.id)) continue;
      if (!streams) return w;
      const n = this.streamsOn.get(w.id) ?? 0;
      if (n < least) {
        best = w;
        least = n;
      }
    }
    return best;
  }

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
