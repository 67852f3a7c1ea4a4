/**
 * Test helper: steady client load for chaos tests. Workers call in a loop (with a short pause, so
 * the load is steady rather than saturating a shared machine) and tally outcomes by code and by the
 * server that answered.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '../../src/client/client.js';
import { codeName } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';

/** Outcomes so far. */
export interface LoadTally {
  ok: number;
  /** Failed calls by message and code name, e.g. `write UNAVAILABLE`. */
  failed: Record<string, number>;
  /** Successful calls by answering server. */
  byServer: Record<string, number>;
  /** A few failure messages, for the assertion message. */
  samples: string[];
}

/** A running load. */
export interface Load {
  readonly tally: LoadTally;
  /** Total failed calls. */
  failures(): number;
  /** Stops the workers and waits for their last calls. */
  stop(): Promise<LoadTally>;
}

export interface LoadOptions {
  concurrency?: number;
  /** Messages to call, in turn. Default `['read']`. */
  messages?: readonly string[];
  /** Deadline per call, in ms. Default 3000. */
  timeoutMs?: number;
  /** Pause between a worker's calls, in ms. Default 5. */
  pauseMs?: number;
}

/** Starts `concurrency` workers calling `client` until `stop()`. */
export function startLoad(client: Client, options: LoadOptions = {}): Load {
  const { concurrency = 8, messages = ['read'], timeoutMs = 3000, pauseMs = 5 } = options;
  const tally: LoadTally = { ok: 0, failed: {}, byServer: {}, samples: [] };
  let running = true;
  let turn = 0;
  const worker = async (): Promise<void> => {
    while (running) {
      const message = messages[turn++ % messages.length]!;
      try {
        const name = await client.call<string>(message, { delayMs: 0 }, { timeoutMs });
        tally.ok++;
        tally.byServer[name] = (tally.byServer[name] ?? 0) + 1;
      } catch (err) {
        const e = RpcError.from(err);
        const key = `${message} ${codeName(e.code)}`;
        tally.failed[key] = (tally.failed[key] ?? 0) + 1;
        if (tally.samples.length < 5) tally.samples.push(`${key}: ${e.message}`);
      }
      await sleep(pauseMs);
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  return {
    tally,
    failures: () => Object.values(tally.failed).reduce((a, b) => a + b, 0),
    async stop() {
      running = false;
      await Promise.all(workers);
      return tally;
    },
  };
}
