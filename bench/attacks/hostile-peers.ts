/**
 * Measures what hostile peers cost (issue 14), on loopback, bounded: not part of `npm run bench`.
 *
 *   node --expose-gc dist/bench/attacks/hostile-peers.js reset [pairs=1000]
 *     REQUEST+CANCEL pairs against maxConcurrentCalls 100, handlers that never return on their own:
 *     handlers started, most running at once, heap growth, and how the connection ended.
 *   node --expose-gc dist/bench/attacks/hostile-peers.js protocols [count=10] [KiB=1000] [serverMaxKiB|-] [parseMsPerSecond]
 *     `count` handshakes at once, each with a distinct protocol of about `KiB` KiB, to a server with
 *     default options (or `maxProtocolBytes` of `serverMaxKiB` KiB, `protocolParseMsPerSecond` as
 *     given, 0 for off): longest event-loop stall, heap kept, and what each handshake got back.
 *   node --expose-gc dist/bench/attacks/hostile-peers.js welcome [KiB=6000]
 *     A fake server whose WELCOME carries a protocol of about `KiB` KiB: how long a call with a 2 s
 *     deadline takes to fail, the client's peak heap, and the error.
 *   node dist/bench/attacks/hostile-peers.js silent [sockets=300]
 *     `sockets` silent sockets from 127.0.0.2 to a server with maxConnections 200, then a real client
 *     from 127.0.0.1: how many were kept, how many refused, and whether the client's call got through.
 *
 * Figures are for reading, not asserting: they vary with the machine.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Code, codeName, createClient, createServer, loadProtocol, RpcError, type Protocol } from '../../src/index.js';
import { readGoaway, requestFlags, writeRequest } from '../../src/framing/bodies.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { FrameType, PREFACE } from '../../src/framing/frame.js';
import { helloType, welcomeType, writeHandshake } from '../../src/framing/handshake.js';

const MiB = 1024 * 1024;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const heapMb = (): number => {
  gc();
  return process.memoryUsage().heapUsed / MiB;
};

/** A valid protocol named like the echo protocol, of about `bytes` bytes, distinct per `salt`. */
export function bigProtocol(bytes: number, salt: string): string {
  const fieldsPerRecord = 50;
  const types: object[] = [];
  let size = 0;
  for (let r = 0; size < bytes; r++) {
    const fields = [];
    for (let f = 0; f < fieldsPerRecord; f++) fields.push({ name: `f${f}`, type: f % 2 === 0 ? 'long' : ['null', 'string'] });
    const t = { type: 'record', name: `R${r}_${salt}`, fields };
    size += JSON.stringify(t).length;
    types.push(t);
  }
  return JSON.stringify({
    protocol: 'Echo',
    namespace: 'avrpc.echo',
    types,
    messages: { ping: { request: [{ name: 'r', type: `R0_${salt}` }], response: 'null' } },
  });
}

function frames(socket: Socket, onFrame: (type: number, body: Buffer) => void): void {
  let buf = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 10 && buf.length >= 10 + buf.readUInt32BE(0)) {
      const len = buf.readUInt32BE(0);
      onFrame(buf[4]!, buf.subarray(10, 10 + len));
      buf = buf.subarray(10 + len);
    }
  });
}

function hello(text: string): Buffer {
  const enc = new FrameEncoder();
  enc.bytes(PREFACE);
  const fingerprint = createHash('md5').update(text).digest();
  enc.frame(FrameType.HELLO, 0, 0, { fingerprint, protocol: text, knownServerFingerprint: null, meta: {} }, writeHandshake(helloType));
  return Buffer.concat(enc.take());
}

async function rapidReset(echo: Protocol, pairs: number): Promise<void> {
  let started = 0;
  let running = 0;
  let maxRunning = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const server = createServer({
    protocol: echo,
    maxConcurrentCalls: 100,
    handlers: {
      echo: async (req: { item: unknown }) => {
        started++;
        maxRunning = Math.max(maxRunning, ++running);
        await gate;
        running--;
        return req.item;
      },
    },
  });
  const { port } = await server.listen();
  const before = heapMb();
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await once(socket, 'connect');
  let welcomed!: () => void;
  const welcome = new Promise<void>((r) => {
    welcomed = r;
  });
  let ended = 'socket stayed open';
  frames(socket, (type, body) => {
    if (type === FrameType.WELCOME) welcomed();
    if (type === FrameType.GOAWAY) ended = `GOAWAY ${codeName(readGoaway(body).code as Code)}: ${readGoaway(body).message}`;
  });
  socket.write(hello(echo.text));
  await welcome;
  const msg = echo.message('echo')!;
  const item = { id: 1, name: 'x'.repeat(1000), tags: [], score: 0, blob: Buffer.alloc(0) };
  const enc = new FrameEncoder();
  for (let id = 1; id <= pairs; id++) {
    const draft = { index: msg.index, timeoutMs: -1, metadata: undefined, type: msg.request, value: { item } };
    enc.frame(FrameType.REQUEST, requestFlags(draft), id, draft, writeRequest);
    enc.raw(FrameType.CANCEL, 0, id, null);
    if (id % 100 === 0) for (const b of enc.take()) socket.write(b);
  }
  for (const b of enc.take()) socket.write(b);
  await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, 2000))]);
  const peak = heapMb();
  console.log(
    `reset: ${pairs} pairs, handlers started ${started}, at once ${maxRunning}, heap +${(peak - before).toFixed(1)} MB, ${ended}`,
  );
  release();
  socket.destroy();
  await server.close({ graceMs: 200 });
}

async function protocols(
  echo: Protocol,
  count: number,
  kib: number,
  serverMaxKib: number | undefined,
  budgetMs: number | undefined,
): Promise<void> {
  const texts = Array.from({ length: count }, (_, i) => bigProtocol(kib * 1024, `s${i}`));
  const server = createServer({
    protocol: echo,
    handlers: {},
    ...(serverMaxKib === undefined ? {} : { maxProtocolBytes: serverMaxKib * 1024 }),
    ...(budgetMs === undefined ? {} : { protocolParseMsPerSecond: budgetMs }),
  } as Parameters<typeof createServer>[0]);
  const { port } = await server.listen();
  const before = heapMb();
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const t0 = performance.now();
  const answers = await Promise.all(
    texts.map(async (text) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.on('error', () => {});
      await once(socket, 'connect');
      const got = new Promise<string>((resolve) => {
        frames(socket, (type, body) =>
          resolve(
            type === FrameType.WELCOME
              ? 'WELCOME'
              : type === FrameType.GOAWAY
                ? `GOAWAY ${codeName(readGoaway(body).code as Code)}`
                : `frame ${type}`,
          ),
        );
        socket.on('close', () => resolve('closed'));
      });
      socket.write(hello(text));
      const answer = await got;
      return { socket, answer };
    }),
  );
  const wall = performance.now() - t0;
  h.disable();
  const kept = heapMb() - before;
  const tally = new Map<string, number>();
  for (const a of answers) tally.set(a.answer, (tally.get(a.answer) ?? 0) + 1);
  console.log(
    `protocols: ${count} x ${(Buffer.byteLength(texts[0]!) / 1024).toFixed(0)} KiB, answers ${[...tally].map(([k, v]) => `${v} ${k}`).join(', ')}; ` +
      `wall ${wall.toFixed(0)} ms, longest loop stall ${(h.max / 1e6).toFixed(0)} ms, heap kept with the connections open ${kept.toFixed(1)} MB`,
  );
  for (const a of answers) a.socket.destroy();
  await server.close({ graceMs: 200 });
  await new Promise((r) => setTimeout(r, 500));
  console.log(`protocols: heap kept once they closed ${(heapMb() - before).toFixed(1)} MB (resolver cache)`);
}

async function welcome(echo: Protocol, kib: number): Promise<void> {
  const text = bigProtocol(kib * 1024, 'w');
  const fingerprint = createHash('md5').update(text).digest();
  const enc = new FrameEncoder();
  enc.frame(FrameType.WELCOME, 0, 0, { status: 'OK', fingerprint, protocol: text, meta: {} }, writeHandshake(welcomeType));
  const welcomeBytes = Buffer.concat(enc.take());
  const sockets = new Set<Socket>();
  const fake = createNetServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('data', () => s.write(welcomeBytes));
  });
  fake.listen(0, '127.0.0.1');
  await once(fake, 'listening');
  const port = (fake.address() as { port: number }).port;
  const client = createClient({ protocol: echo, endpoints: [`127.0.0.1:${port}`] });
  const before = heapMb();
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().heapUsed / MiB);
  }, 5);
  const t0 = performance.now();
  const err = await client.call('echo', { item: { id: 1, name: '', tags: [], score: 0, blob: Buffer.alloc(0) } }, { timeoutMs: 2000 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  const ms = performance.now() - t0;
  clearInterval(sampler);
  const e = err instanceof RpcError ? `${err.codeName}: ${err.message.slice(0, 120)}` : String(err);
  console.log(
    `welcome: ${(welcomeBytes.length / MiB).toFixed(1)} MiB WELCOME, call with a 2 s deadline ended after ${ms.toFixed(0)} ms, ` +
      `client heap peak +${(peak - before).toFixed(0)} MB (sampled), ${e}`,
  );
  await client.close();
  for (const s of sockets) s.destroy();
  fake.close();
}

async function silent(echo: Protocol, count: number): Promise<void> {
  const server = createServer({ protocol: echo, handlers: { echo: (req: { item: unknown }) => req.item }, maxConnections: 200 });
  const { port } = await server.listen();
  const sockets: Socket[] = [];
  let refused = 0;
  for (let i = 0; i < count; i++) {
    const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
    s.on('error', () => {});
    s.on('data', () => {});
    s.on('close', () => {
      refused++;
    });
    sockets.push(s);
    await once(s, 'connect');
  }
  await new Promise((r) => setTimeout(r, 300));
  const kept = server.connections;
  const client = createClient({ protocol: echo, endpoints: [`127.0.0.1:${port}`], waitForReadyMs: 1000 });
  const got = await client.call('echo', { item: { id: 1, name: '', tags: [], score: 0, blob: Buffer.alloc(0) } }, { timeoutMs: 2000 }).then(
    () => 'OK',
    (e: unknown) => (e instanceof RpcError ? e.codeName : String(e)),
  );
  console.log(`silent: ${count} silent sockets from 127.0.0.2, ${kept} kept, ${refused} refused; a client from 127.0.0.1: ${got}`);
  await client.close();
  for (const s of sockets) s.destroy();
  await server.close({ graceMs: 200 });
}

const echo = await loadProtocol(new URL('../../../protocol/echo.avdl', import.meta.url));
const [mode, a, b] = process.argv.slice(2);
if (mode === 'reset') await rapidReset(echo, Number(a ?? 1000));
else if (mode === 'protocols') {
  const [max, budget] = process.argv.slice(5).map((v) => (v === '-' ? undefined : Number(v)));
  await protocols(echo, Number(a ?? 10), Number(b ?? 1000), max, budget);
} else if (mode === 'welcome') await welcome(echo, Number(a ?? 6000));
else if (mode === 'silent') await silent(echo, Number(a ?? 300));
else
  console.log(
    'usage: hostile-peers.js reset [pairs] | protocols [count] [KiB] [serverMaxKiB|-] [parseMsPerSecond] | welcome [KiB] | silent [sockets]',
  );
