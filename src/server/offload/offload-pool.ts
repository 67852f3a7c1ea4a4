import { Piscina } from 'piscina';
import type { Protocol } from '../../codec/protocol.js';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import type { Logger } from '../../observability/observer.js';
import type { CallContext } from '../call-context.js';
import { OffloadReply, type OffloadTask, type OffloadWorkerData } from './offload-task.js';
import type { ResolvedWorkerOptions } from './worker-options.js';

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
 * bytes to piscina (transferred, never cloned), relays cancellation through a shared flag slot per
 * call, and turns the worker's reply bytes into an {@link OffloadReply}. A worker that dies fails
 * only the calls it was running (INTERNAL); piscina starts a new one.
 *
 * Cancellation does not use piscina's own abort, which terminates a busy worker (tens of ms to start
 * a new one and reload the handler module): the flag slot lets the handler stop by itself, and a
 * call cancelled while queued is dropped by the worker before it decodes anything.
 */
export class OffloadPool {
  private pool: Piscina | undefined;
  private readonly sharedFlags: SharedArrayBuffer;
  private readonly flags: Int32Array;
  private readonly freeSlots: number[];
  private closed = false;

  constructor(
    private readonly options: ResolvedWorkerOptions,
    private readonly protocol: Protocol,
    private readonly resolverCacheSize: number,
    private readonly propagateDeadlines: boolean,
    private readonly logger: Logger,
  ) {
    this.sharedFlags = new SharedArrayBuffer(4 * options.maxTasks);
    this.flags = new Int32Array(this.sharedFlags);
    this.freeSlots = Array.from({ length: options.maxTasks }, (_, i) => options.maxTasks - 1 - i);
  }

  /** True when a request of this local message and payload size runs in a worker. */
  takes(index: number, payloadBytes: number): boolean {
    const o = this.options;
    return o.messages.has(index) && (o.offload === 'always' || payloadBytes >= o.thresholdBytes);
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
    this.pool = new Piscina({ filename: WORKER_URL, minThreads: threads, maxThreads: threads, idleTimeout: Infinity, workerData, atomics: 'async' });
    // A worker that dies between calls (a handler's stray timer threw) is replaced by piscina; without
    // a listener its 'error' event would take the whole server down.
    this.pool.on('error', (err: unknown) => this.logger.error({ err }, 'offload worker died outside a call; replaced'));
  }

  /** Runs one call in a worker; resolves with its reply, rejects with an `RpcError` if no reply can come. */
  run(localIndex: number, request: OffloadedRequest, ctx: CallContext): Promise<OffloadReply> {
    if (this.closed) return Promise.reject(new RpcError(Code.UNAVAILABLE, 'server is shutting down'));
    const slot = this.freeSlots.pop();
    if (slot === undefined) {
      return Promise.reject(new RpcError(Code.RESOURCE_EXHAUSTED, `too many offloaded calls (workers.maxTasks ${this.options.maxTasks})`));
    }
    this.start();
    const flags = this.flags;
    Atomics.store(flags, slot, 0);
    const { buffer, offset } = transferable(request);
    const sameProtocol = request.remote.id === this.protocol.id;
    const task: OffloadTask = {
      slot,
      index: localIndex,
      remoteIndex: request.remoteIndex,
      remoteId: sameProtocol ? undefined : request.remote.id,
      remoteText: sameProtocol ? undefined : request.remote.text,
      payload: buffer,
      payloadOffset: offset,
      metadata: ctx.metadata,
      deadline: ctx.deadline,
      peer: ctx.peer,
    };
    const signal = ctx.signal;
    const onAbort = (): void => {
      const reason: unknown = signal.reason;
      Atomics.store(flags, slot, reason instanceof RpcError ? reason.code : Code.CANCELLED);
      Atomics.notify(flags, slot);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    return this.pool!.run(task, { transferList: [buffer] }).then(
      (result: Uint8Array) => OffloadReply.read(result),
      (err: unknown) => {
        throw new RpcError(Code.INTERNAL, `worker failed while running ${ctx.message}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      },
    ).finally(() => {
      signal.removeEventListener('abort', onAbort);
      this.freeSlots.push(slot);
    });
  }

  /** Stops the worker threads; calls still running in them fail. */
  async close(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = undefined;
    if (pool !== undefined) await pool.destroy();
  }
}
