/**
 * Test helper for the core engine tests: the echo protocol, sample items, a server on an ephemeral
 * loopback port, raw `net` servers that speak the wire protocol by hand (fault servers), and a way to
 * capture a call's rejection. Everything it opens is tracked so that a test's teardown closes it all.
 */
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { RpcError, createServer, loadProtocol, type Protocol, type Server, type ServerOptions } from '../../src/index.js';
import { repoPath } from './repo.js';

/** An echo `Item` (the benchmark payload). */
export interface Item {
  id: number;
  name: string;
  tags: string[];
  score: number;
  blob: Buffer;
}

/** Loads `protocol/<file>` (default the shipped echo.avdl). */
export function loadEcho(file = 'echo.avdl', longs: 'number' | 'bigint' = 'number'): Promise<Protocol> {
  return loadProtocol(repoPath('protocol', file), { longs });
}

/** A distinct item per `i`, so a mismatched answer is visible. */
export function item(i: number, blobBytes = 2): Item {
  return { id: i, name: `item-${i}`, tags: [`t${i % 7}`], score: i / 4, blob: Buffer.alloc(blobBytes, i & 0xff) };
}

/** A started server and its `host:port`. */
export interface Started {
  server: Server;
  port: number;
  endpoint: string;
}

/** Creates and starts a server on 127.0.0.1, port 0. */
export async function startServer(options: ServerOptions): Promise<Started> {
  const server = createServer(options);
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return { server, port, endpoint: `127.0.0.1:${port}` };
}

/** Resolves with what `p` rejected with; fails the test if it resolved. */
export async function rejection(p: Promise<unknown>): Promise<RpcError> {
  let value: unknown;
  try {
    value = await p;
  } catch (err) {
    if (!(err instanceof RpcError)) throw new Error(`expected an RpcError, got ${String(err)}`, { cause: err });
    return err;
  }
  throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
}

/** A raw TCP server whose accepted sockets are tracked; `close()` destroys them all and stops listening. */
export interface RawServer {
  readonly net: NetServer;
  readonly port: number;
  readonly endpoint: string;
  /** Every socket accepted so far. */
  readonly sockets: Socket[];
  close(): Promise<void>;
}

/** Starts a raw `net` server on 127.0.0.1:0 that hands each socket to `onSocket`. */
export async function rawServer(onSocket: (socket: Socket) => void): Promise<RawServer> {
  const sockets: Socket[] = [];
  const server = createNetServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => socket.destroy());
    onSocket(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    net: server,
    port,
    endpoint: `127.0.0.1:${port}`,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      if (server.listening) {
        server.close();
        await once(server, 'close');
      }
    },
  };
}

/** A promise and its resolve function (to release handlers from a test). */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Waits until `cond()` holds, checking every 5 ms; throws after `limitMs` (a hang guard, not a timing check). */
export async function until(cond: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!cond()) {
    if (Date.now() - started > limitMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
