import {
  createClient,
  createServer,
  parseProtocol,
  type Client,
  type ClientOptions,
  type Protocol,
  type Server,
  type ServerOptions,
} from '../../src/index.js';

/** A protocol for large-message tests: bytes both ways, a download of any size, and a tiny call. */
export const largeProtocol: Protocol = parseProtocol(`
@namespace("avrpc.test")
protocol Large {
  bytes echo(bytes data);
  bytes download(int size);
  int upload(bytes data);
  string ping(string s);
  void drop(bytes data) oneway;
}`);

/** Byte and call counters of one side. */
export interface Counters {
  bytesIn: number;
  bytesOut: number;
  connections: number;
}

/** A server and a client on loopback with byte counters on both sides. */
export interface Pair {
  server: Server;
  client: Client;
  serverCounters: Counters;
  clientCounters: Counters;
  /** Uploads whose handler ran. */
  uploads: number;
  /** Sizes received by the one-way `drop`. */
  dropped: number[];
  close(): Promise<void>;
}

/** Bytes whose content depends on position (so a misplaced fragment is seen). */
export function pattern(size: number, salt = 0): Buffer {
  const b = Buffer.allocUnsafe(size + 3);
  for (let i = 0; i < size; i += 4) b.writeUInt32LE((i * 2654435761 + salt) >>> 0, i);
  return b.subarray(0, size);
}

/** Starts a server and a client; the handlers echo, download (zeros), count uploads and answer pings. */
export async function startPair(serverOptions: Partial<ServerOptions> = {}, clientOptions: Partial<ClientOptions> = {}): Promise<Pair> {
  const serverCounters: Counters = { bytesIn: 0, bytesOut: 0, connections: 0 };
  const clientCounters: Counters = { bytesIn: 0, bytesOut: 0, connections: 0 };
  const pair = { uploads: 0, dropped: [] as number[] } as Pair;
  const server = createServer({
    protocol: largeProtocol,
    handlers: {
      echo: (req: { data: Buffer }) => req.data,
      download: (req: { size: number }) => Buffer.alloc(req.size, 7),
      upload: (req: { data: Buffer }) => {
        pair.uploads++;
        return req.data.length;
      },
      ping: (req: { s: string }) => req.s,
      drop: (req: { data: Buffer }) => {
        pair.dropped.push(req.data.length);
      },
    },
    observer: {
      bytesReceived: (n) => {
        serverCounters.bytesIn += n;
      },
      bytesSent: (n) => {
        serverCounters.bytesOut += n;
      },
      connectionOpened: () => {
        serverCounters.connections++;
      },
    },
    // These tests move 32 to 48 MiB messages: above the server's default (16 MiB) since issue 14.
    maxMessageBytes: 64 * 1024 * 1024,
    ...serverOptions,
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({
    protocol: largeProtocol,
    endpoints: [`127.0.0.1:${port}`],
    maxAttempts: 1,
    observer: {
      bytesReceived: (n) => {
        clientCounters.bytesIn += n;
      },
      bytesSent: (n) => {
        clientCounters.bytesOut += n;
      },
    },
    ...clientOptions,
  });
  return Object.assign(pair, {
    server,
    client,
    serverCounters,
    clientCounters,
    async close() {
      await client.close();
      await server.close({ graceMs: 200 });
    },
  });
}

/** Resolves once `cond()` holds, checking every event-loop turn; rejects after `limitMs` (a hang guard). */
export async function until(cond: () => boolean, limitMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!cond()) {
    if (Date.now() - started > limitMs) throw new Error('condition not reached');
    await new Promise((r) => setImmediate(r));
  }
}
