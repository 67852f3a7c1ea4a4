/**
 * Test helper for the client pool: a small protocol with an idempotent and a non-idempotent message,
 * in-process servers that count the calls their handlers ran, and bounded waiting.
 */
import { createServer as createNetServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseProtocol, type Protocol } from '../../src/codec/protocol.js';
import { createServer, type Server } from '../../src/server/server.js';
import type { ServerOptions } from '../../src/server/server-options.js';
import { RpcError } from '../../src/errors/rpc-error.js';

/**
 * `read` is idempotent by IDL annotation; `write` is not. Each returns the name of the server that
 * ran it, after `delayMs`. `spin` busy-loops its server's event loop for `ms`.
 */
export const POOL_IDL = `
protocol Pool {
  @idempotent(true) string read(int delayMs);
  string write(int delayMs);
  string spin(int ms);
}`;

/** The parsed {@link POOL_IDL}. */
export const poolProtocol = (): Protocol => parseProtocol(POOL_IDL);

/** Blocks this process's event loop for `ms` (a CPU-heavy handler, a GC pause, a sync loop). */
export function busyLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    /* spin */
  }
}

export { seeded } from './prng.js';

/** An in-process server that counts what its handlers ran. */
export interface TestServer {
  readonly name: string;
  readonly port: number;
  readonly endpoint: string;
  readonly server: Server;
  /** Handler runs by message name. */
  readonly ran: Record<string, number>;
  /** Extra delay added to every call, in ms (mutable). */
  delayMs: number;
  /** When set, handlers throw it (mutable). */
  failWith: Error | undefined;
  /** When set, handlers call it and wait for the promise it returns before answering (mutable). */
  hold: (() => Promise<void>) | undefined;
  close(graceMs?: number): Promise<void>;
}

/** Starts a server on 127.0.0.1 (port 0 unless given). */
export async function startServer(name: string, port = 0, options: Partial<ServerOptions> = {}): Promise<TestServer> {
  const handler =
    (message: string) =>
    async (req: { delayMs: number }): Promise<string> => {
      t.ran[message] = (t.ran[message] ?? 0) + 1;
      if (t.hold !== undefined) await t.hold();
      const ms = (req.delayMs ?? 0) + t.delayMs;
      if (ms > 0) await sleep(ms);
      if (t.failWith !== undefined) throw t.failWith;
      return name;
    };
  const server = createServer({
    protocol: poolProtocol(),
    handlers: {
      read: handler('read'),
      write: handler('write'),
      spin: (req: { ms: number }) => {
        busyLoop(req.ms);
        return name;
      },
    },
    ...options,
  });
  const bound = await server.listen({ host: '127.0.0.1', port });
  const t: TestServer = {
    name,
    port: bound.port,
    endpoint: `127.0.0.1:${bound.port}`,
    server,
    ran: {},
    delayMs: 0,
    failWith: undefined,
    hold: undefined,
    close: (graceMs = 2000) => server.close({ graceMs }),
  };
  return t;
}

/** A loopback port that was free a moment ago (nothing listens on it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

/** Polls `ok` every 20 ms until it holds or `boundMs` passes (a bound, not a timing assertion). */
export async function until(ok: () => boolean, boundMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = performance.now() + boundMs;
  while (!ok()) {
    if (performance.now() > deadline) throw new Error(`${what} did not hold within ${boundMs} ms`);
    await sleep(20);
  }
}

/** The error a promise rejects with (fails the test if it resolves or rejects with something else). */
export async function rejection(promise: Promise<unknown>): Promise<RpcError> {
  const err = await promise.then(
    (v) => new Error(`expected a rejection, got ${JSON.stringify(v)}`),
    (e: unknown) => e,
  );
  if (!(err instanceof RpcError)) throw err instanceof Error ? err : new Error(String(err));
  return err;
}
