/**
 * The handler module of the offload tests and benchmarks: loaded in worker threads (`workers.module`)
 * and also imported by tests as the inline handler, so both paths run the same code. `threadId` in the
 * reply says where it ran (0: the main thread). Handlers report what their signal saw on a
 * BroadcastChannel, which reaches the test from any thread.
 */
import { BroadcastChannel, threadId } from 'node:worker_threads';
import { Code, RpcError, type CallContext } from '../../src/index.js';
import type { Row } from './bulk-protocol.js';

/** The BroadcastChannel name handlers report aborts on. */
export const REPORT_CHANNEL = 'avrpc-offload-test';

/** What a handler reports when its signal aborts. */
export interface AbortReport {
  tag: string;
  code: number;
  threadId: number;
}

/** The `echo` message: what it does depends on `action`. */
export function echo(req: { rows: Row[]; action: string }, ctx: CallContext): unknown {
  switch (req.action) {
    case 'echo':
      return { rows: req.rows, threadId, info: {} };
    case 'meta':
      return {
        rows: [], threadId,
        info: { ...ctx.metadata, message: ctx.message, peer: ctx.peer.address, hasDeadline: String(ctx.deadline !== Infinity) },
      };
    case 'sum': {
      // Busy work proportional to the payload, as a real heavy handler would do.
      let total = 0;
      for (const r of req.rows) total += r.score + r.name.length + r.tags.length;
      return { rows: req.rows.slice(0, 1), threadId, info: { total: String(total) } };
    }
    case 'declared':
      throw { reason: 'declared failure', count: req.rows.length };
    case 'rpc':
      throw new RpcError(Code.NOT_FOUND, 'no such rows', { metadata: { where: 'worker' } });
    case 'error':
      throw new Error('handler blew up');
    case 'bad-response':
      return { rows: 'not an array', threadId, info: {} };
    case 'crash':
      // An uncaught exception outside the handler's promise: kills the worker thread.
      setImmediate(() => {
        throw new Error('worker crashed on purpose');
      });
      return new Promise(() => undefined);
    case 'exit':
      process.exit(7);
    // falls through (never reached: exit does not return)
    case 'wait':
      return new Promise((_, reject) => {
        const onAbort = (): void => {
          const reason = ctx.signal.reason as RpcError;
          const channel = new BroadcastChannel(REPORT_CHANNEL);
          channel.postMessage({ tag: req.rows[0]?.name ?? '', code: reason.code, threadId } satisfies AbortReport);
          channel.close();
          reject(reason);
        };
        if (ctx.signal.aborted) onAbort();
        else ctx.signal.addEventListener('abort', onAbort, { once: true });
      });
    case 'spin': {
      // A CPU-bound loop that polls ctx.cancelled, the synchronous way to notice cancellation.
      while (!ctx.cancelled) { /* spin */ }
      const channel = new BroadcastChannel(REPORT_CHANNEL);
      channel.postMessage({ tag: req.rows[0]?.name ?? '', code: (ctx.signal.reason as RpcError).code, threadId } satisfies AbortReport);
      channel.close();
      return { rows: [], threadId, info: {} };
    }
    default:
      throw new RpcError(Code.INVALID_ARGUMENT, `unknown action ${req.action}`);
  }
}
