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

/** What a handler reports when it starts (`code` -1) and when its signal aborts (the reason's code). */
export interface AbortReport {
  tag: string;
  code: number;
  threadId: number;
}

function report(tag: string, code: number): void {
  const channel = new BroadcastChannel(REPORT_CHANNEL);
  channel.postMessage({ tag, code, threadId } satisfies AbortReport);
  channel.close();
}

/** The `echo` message: what it does depends on `action`. */
export function echo(req: { rows: Row[]; action: string }, ctx: CallContext): unknown {
  switch (req.action) {
    case 'echo':
      return { rows: req.rows, threadId, info: {} };
    case 'meta':
      return {
        rows: [],
        threadId,
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
    case 'late-crash':
      // Answers, then kills its (by then idle) worker from a stray callback. Not at the next turn: the
      // worker's 'error' event could then reach the main thread before the reply posted just before
      // it, and piscina would fail this call with it (seen under load).
      setTimeout(() => {
        throw new Error('stray callback threw after the call');
      }, 100);
      return { rows: [], threadId, info: {} };
    case 'exit':
      process.exit(7);
    // falls through (never reached: exit does not return)
    case 'wait':
      report(req.rows[0]?.name ?? '', -1);
      return new Promise((_, reject) => {
        const onAbort = (): void => {
          const reason = ctx.signal.reason as RpcError;
          report(req.rows[0]?.name ?? '', reason.code);
          reject(reason);
        };
        if (ctx.signal.aborted) onAbort();
        else ctx.signal.addEventListener('abort', onAbort, { once: true });
      });
    case 'principal': {
      // What a worker handler sees of the connection's principal.
      const p = ctx.peer.principal as Record<string, unknown> | undefined;
      return {
        rows: [],
        threadId,
        info: {
          type: typeof p,
          json: JSON.stringify(p) ?? 'undefined',
          proto: p === undefined ? 'none' : String(Object.getPrototypeOf(p)?.constructor?.name),
        },
      };
    }
    case 'hang':
      // A CPU loop that never looks at its cancellation: only terminating the thread ends it.
      report(req.rows[0]?.name ?? '', -1);
      for (;;) {
        /* spin forever */
      }
    // falls through (never reached)
    case 'spin': {
      // A CPU-bound loop that polls ctx.cancelled, the synchronous way to notice cancellation.
      report(req.rows[0]?.name ?? '', -1);
      while (!ctx.cancelled) {
        /* spin */
      }
      report(req.rows[0]?.name ?? '', (ctx.signal.reason as RpcError).code);
      return { rows: [], threadId, info: {} };
    }
    default:
      throw new RpcError(Code.INVALID_ARGUMENT, `unknown action ${req.action}`);
  }
}
