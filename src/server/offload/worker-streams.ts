import { MessageChannel, type Worker } from 'node:worker_threads';
import type { Piscina, PiscinaTask } from 'piscina';
import type { MessageDef } from '../../codec/protocol.js';
import type { Logger } from '../../observability/observer.js';
import type { CallContext } from '../call-context.js';
import type { OffloadReply } from './offload-task.js';
import { StreamLink, type LinkOwner } from './stream-link.js';
import { STREAM_TASK_NAME, type StreamStarted, type StreamTask } from './stream-task.js';
import type { TaskSlot } from './task-slot.js';

/** A stream's start task before its port is made, with the request elements the link hands over. */
export type StreamStart = Omit<StreamTask, 'port'> & { requests: AsyncIterable<Buffer> | undefined };

/** What piscina's balancer sees of a worker. */
interface PlacedWorker {
  id: number;
  currentUsage: number;
  terminating: boolean;
  destroyed: boolean;
}

/**
 * The streams whose handlers run in the pool's workers (see stream-task.ts for how one starts and
 * runs): where each new one starts, which threads run how many, and the threads going away.
 */
export class WorkerStreams implements LinkOwner {
  /** Open streams by the worker thread they run on, to start each new one on the least loaded. */
  private readonly streamsOn = new Map<number, number>();
  /** Worker threads going away (see {@link lost}). */
  private readonly dying = new Set<number>();

  constructor(
    private readonly pool: () => Piscina | undefined,
    /** Gives a slot back once its stream is over on both threads. */
    private readonly free: (slot: TaskSlot) => void,
    private readonly logger: Logger,
  ) {}

  /**
   * Starts a stream in a worker: its link (the main thread's end) and the start task carrying the
   * other end of the channel. Returns what the session takes: the response bytes of a server or bidi
   * stream, or a client stream's reply.
   */
  open(
    pool: Piscina,
    msg: MessageDef,
    slot: TaskSlot,
    ctx: CallContext,
    start: StreamStart,
  ): AsyncIterable<Buffer> | Promise<OffloadReply> {
    const { port1, port2 } = new MessageChannel();
    const { requests, ...rest } = start;
    const link = new StreamLink(msg, ctx, port1, slot, requests, this, this.logger);
    slot.begin(ctx, link.abandon);
    const task: StreamTask = { ...rest, port: port2 };
    const transferList = task.request === undefined ? [port2] : [port2, task.request];
    (pool.run(task, { name: STREAM_TASK_NAME, transferList, signal: slot }) as Promise<StreamStarted>).then(
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
    this.free(link.slot);
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
    const worker = this.pool()?.threads.find((w) => w.threadId === threadId);
    if (worker === undefined || this.dying.has(threadId)) return worker;
    this.dying.add(threadId);
    worker.once('exit', () => this.dying.delete(threadId));
    return worker;
  }

  /**
   * piscina's load balancer: a task goes to an idle worker (one task per thread: tasks are abortable);
   * a stream's start goes to the idle worker running the fewest open streams, so streams spread over
   * the threads instead of all landing on the first idle one. Threads going away get nothing.
   */
  place<W extends PlacedWorker>(task: PiscinaTask, workers: W[]): W | null {
    const stream = task.name === STREAM_TASK_NAME;
    let best: W | null = null;
    let least = Infinity;
    for (const w of workers) {
      if (w.currentUsage !== 0 || w.terminating || w.destroyed || this.dying.has(w.id)) continue;
      if (!stream) return w;
      const n = this.streamsOn.get(w.id) ?? 0;
      if (n < least) {
        best = w;
        least = n;
      }
    }
    return best;
  }
}
