/**
 * Large-message benchmark (issue 4), bounded well under 90 s. Servers run in a child process, the
 * client in this one, over loopback:
 *
 * 1. small-call latency (p50/p99/max) while 8 MB echo calls share the one connection, fragments on vs
 *    off, and on with the server's echo in a worker thread (target: p99 < 5 ms with fragments on);
 * 2. 1 MB echo throughput in payload bytes/s against a raw framed echo (same framing, no Avro, no
 *    fragments) as the floor (target >= 0.8x);
 * 3. memory per side while an N MB echo is in flight, from `process.memoryUsage()` (target: at most
 *    about 2N MB beyond the payload itself).
 *
 * Usage: `npm run build && node dist/bench/large.js [1] [2] [3] [--window=BYTES] [--seconds=S] [--quick]`
 * (parts to run, default all; the fragment window both sides advertise, default the library's; seconds
 * per latency row and per throughput run, default 5 and 4; --quick leaves out the rows with 2 big calls).
 * `npm run bench` forks it with --quick and receives the figures over IPC ({@link LargeResults}).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createClient, createServer, type Client } from '../src/index.js';
import { FrameDecoder } from '../src/framing/frame-decoder.js';
import { largeProtocol } from '../test/helpers/large.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const MiB = 1024 * 1024;
/** `--window=BYTES`: the fragment window both sides advertise (default: the library's). */
const windowArg = process.argv.find((a) => a.startsWith('--window='));
const fragmentWindowBytes = windowArg === undefined ? undefined : Number(windowArg.slice('--window='.length));

const secondsArg = process.argv.find((a) => a.startsWith('--seconds='));
const rowMs = secondsArg === undefined ? undefined : Number(secondsArg.slice('--seconds='.length)) * 1000;
const quick = process.argv.includes('--quick');

/** One latency row of part 1. */
export interface LatencyRow {
  label: string;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  smallCalls: number;
  bigCalls: number;
  clientStallMs: number;
  serverStallMs: number;
}

/** What a run measured, for bench/run.ts. Bytes/s are payload bytes one way; memory in multiples of N. */
export interface LargeResults {
  latency: LatencyRow[];
  throughput?: { rawBytesPerSec: number; onBytesPerSec: number; offBytesPerSec: number };
  memory: { n: number; clientWorstN: number; serverWorstN: number }[];
}

interface Ports {
  fragOn: number;
  fragOff: number;
  offload: number;
  raw: number;
}

// ---------------------------------------------------------------- server child

/** A raw framed echo: 10-byte header + body, echoed back as is (views, no copy). The floor. */
function rawEchoServer(): Promise<number> {
  const server = createNetServer((socket) => {
    socket.setNoDelay(true);
    const dec = new FrameDecoder({ maxFrameBytes: 1 << 30, expectPreface: false }, (type, flags, id, body) => {
      const h = Buffer.allocUnsafe(10);
      h.writeUInt32BE(body.length, 0);
      h[4] = type;
      h[5] = flags;
      h.writeUInt32BE(id, 6);
      socket.cork();
      socket.write(h);
      socket.write(body);
      socket.uncork();
    });
    socket.on('data', (c: Buffer) => dec.push(c));
    socket.on('error', () => socket.destroy());
  });
  server.listen(0, '127.0.0.1');
  return once(server, 'listening').then(() => (server.address() as AddressInfo).port);
}

async function serverMain(): Promise<void> {
  const handlers = { echo: (req: { data: Buffer }) => req.data, ping: (req: { s: string }) => req.s };
  const on = createServer({
    protocol: largeProtocol,
    handlers,
    maxMessageBytes: 256 * MiB,
    maxQueuedBytes: 256 * MiB,
    fragmentWindowBytes,
  });
  const off = createServer({
    protocol: largeProtocol,
    handlers,
    fragmentBytes: 0,
    maxFrameBytes: 256 * MiB,
    maxMessageBytes: 256 * MiB,
    maxQueuedBytes: 256 * MiB,
  });
  // The same with the echo in a worker thread (offload 'auto': the small pings stay inline).
  const offloaded = createServer({
    protocol: largeProtocol,
    handlers,
    maxMessageBytes: 256 * MiB,
    maxQueuedBytes: 256 * MiB,
    fragmentWindowBytes,
    workers: { module: new URL('./large-handlers.js', import.meta.url), messages: ['echo'], threads: 1 },
  });
  const ports: Ports = {
    fragOn: (await on.listen({ host: '127.0.0.1', port: 0 })).port,
    offload: (await offloaded.listen({ host: '127.0.0.1', port: 0 })).port,
    fragOff: (await off.listen({ host: '127.0.0.1', port: 0 })).port,
    raw: await rawEchoServer(),
  };
  let sampler: NodeJS.Timeout | undefined;
  let eld: IntervalHistogram | undefined;
  let base = 0;
  let peak = 0;
  process.on('message', (m: string) => {
    if (m === 'mem-start') {
      gc();
      base = memNow();
      peak = 0;
      sampler = setInterval(() => {
        peak = Math.max(peak, memNow() - base);
      }, 1);
      process.send!({ ack: true });
    } else if (m === 'mem-stop') {
      clearInterval(sampler);
      peak = Math.max(peak, memNow() - base);
      process.send!({ peak });
    } else if (m === 'eld-start') {
      eld = monitorEventLoopDelay({ resolution: 1 });
      eld.enable();
      process.send!({ ack: true });
    } else if (m === 'eld-stop') {
      eld!.disable();
      process.send!({ peak: eld!.max / 1e6, p99: eld!.percentile(99) / 1e6 });
    } else if (m === 'exit') {
      process.exit(0);
    }
  });
  process.send!(ports);
}

// ---------------------------------------------------------------- client side

/** Buffer and heap bytes: where payloads live. */
function memNow(): number {
  const m = process.memoryUsage();
  return m.arrayBuffers + m.heapUsed;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function request(child: ChildProcess, msg: string): Promise<{ peak?: number; p99?: number }> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as { peak?: number; p99?: number }));
    child.send(msg);
  });
}

/** Small pings in a closed loop for `ms`, with `bigInFlight` 8 MB echoes running alongside on the same socket. */
async function latencyUnderLoad(child: ChildProcess, port: number, fragments: boolean, bigInFlight: number, ms: number) {
  const client = createClient({
    protocol: largeProtocol,
    endpoints: [`127.0.0.1:${port}`],
    fragmentBytes: fragments ? undefined : 0,
    maxFrameBytes: 256 * MiB,
    maxMessageBytes: 256 * MiB,
    fragmentWindowBytes,
  });
  await client.call('ping', { s: 'warm' });
  const data = Buffer.alloc(8 * MiB, 3);
  let running = true;
  let bigDone = 0;
  const bigLoops = Array.from({ length: bigInFlight }, async () => {
    while (running) {
      await client.call('echo', { data });
      bigDone++;
    }
  });
  const lat: number[] = [];
  await request(child, 'eld-start');
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const t0 = performance.now();
    await client.call('ping', { s: 'x' });
    lat.push(performance.now() - t0);
  }
  eld.disable();
  const serverEld = await request(child, 'eld-stop');
  running = false;
  await Promise.all(bigLoops);
  await client.close();
  lat.sort((a, b) => a - b);
  return {
    p50: percentile(lat, 0.5),
    p99: percentile(lat, 0.99),
    max: lat[lat.length - 1]!,
    small: lat.length,
    big: bigDone,
    clientStallMs: eld.max / 1e6,
    serverStallMs: serverEld.peak!,
  };
}

/** 1 MB echoes, `inFlight` at a time, for `ms`: payload bytes per second (one direction). */
async function avrpcThroughput(client: Client, inFlight: number, ms: number): Promise<number> {
  const data = Buffer.alloc(MiB, 5);
  await client.call('echo', { data });
  let done = 0;
  const end = performance.now() + ms;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) {
        await client.call('echo', { data });
        done++;
      }
    }),
  );
  return (done * MiB) / ((performance.now() - t0) / 1000);
}

/** The same against the raw framed echo. */
async function rawThroughput(port: number, inFlight: number, ms: number): Promise<number> {
  const socket: Socket = connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  await once(socket, 'connect');
  const data = Buffer.alloc(MiB, 5);
  let done = 0;
  let stop = false;
  const t0 = performance.now();
  const end = t0 + ms;
  let finish!: () => void;
  const finished = new Promise<void>((r) => {
    finish = r;
  });
  let outstanding = 0;
  const send = (id: number): void => {
    const h = Buffer.allocUnsafe(10);
    h.writeUInt32BE(data.length, 0);
    h[4] = 4;
    h[5] = 0;
    h.writeUInt32BE(id, 6);
    socket.cork();
    socket.write(h);
    socket.write(data);
    socket.uncork();
    outstanding++;
  };
  const dec = new FrameDecoder({ maxFrameBytes: 1 << 30, expectPreface: false }, (_t, _f, id) => {
    done++;
    outstanding--;
    if (performance.now() < end && !stop) send(id);
    else if (outstanding === 0) finish();
  });
  socket.on('data', (c: Buffer) => dec.push(c));
  for (let i = 1; i <= inFlight; i++) send(i);
  await finished;
  stop = true;
  const secs = (performance.now() - t0) / 1000;
  socket.destroy();
  return (done * MiB) / secs;
}

/** Peak memory beyond the payloads while one N MB echo is in flight, client and server side, in MB. */
async function memoryFor(child: ChildProcess, port: number, n: number) {
  const client = createClient({ protocol: largeProtocol, endpoints: [`127.0.0.1:${port}`], maxMessageBytes: 256 * MiB });
  await client.call('echo', { data: Buffer.alloc(MiB) });
  const data = Buffer.alloc(n * MiB, 9);
  const rows: { client: number; server: number }[] = [];
  for (let round = 0; round < 3; round++) {
    gc();
    const base = memNow();
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, memNow() - base);
    }, 1);
    await request(child, 'mem-start');
    const out = (await client.call('echo', { data })) as Buffer;
    peak = Math.max(peak, memNow() - base);
    clearInterval(sampler);
    const server = (await request(child, 'mem-stop')).peak!;
    if (out.length !== data.length) throw new Error('bad echo');
    // Beyond the payload: the client's result (N) and the server's decoded request (N) are payload.
    rows.push({ client: peak / MiB - n, server: server / MiB - n });
  }
  await client.close();
  return rows;
}

async function main(): Promise<void> {
  const started = Date.now();
  const child = fork(fileURLToPath(import.meta.url), ['--server', ...(windowArg === undefined ? [] : [windowArg])], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ports = await new Promise<Ports>((resolve) => child.once('message', (m) => resolve(m as Ports)));
  const fmt = (x: number) => x.toFixed(2);
  const only = process.argv.slice(2).filter((a) => /^[123]$/.test(a));
  const want = (part: string) => only.length === 0 || only.includes(part);
  const results: LargeResults = { latency: [], memory: [] };
  try {
    if (want('1')) {
      console.log('1. small-call latency (closed loop, 1 in flight) while 8 MB echoes share the connection');
      const rows = [
        ['idle, fragments on', ports.fragOn, true, 0],
        ['fragments on ', ports.fragOn, true, 1],
        ['fragments off', ports.fragOff, false, 1],
        ['fragments on, offload', ports.offload, true, 1],
        ['fragments on, 2 big', ports.fragOn, true, 2],
        ['fragments off, 2 big', ports.fragOff, false, 2],
      ] as const;
      for (const [label, port, fragments, big] of rows) {
        if (quick && big > 1) continue;
        const r = await latencyUnderLoad(child, port, fragments, big, rowMs ?? 5000);
        results.latency.push({
          label: label.trim(),
          p50Ms: r.p50,
          p99Ms: r.p99,
          maxMs: r.max,
          smallCalls: r.small,
          bigCalls: r.big,
          clientStallMs: r.clientStallMs,
          serverStallMs: r.serverStallMs,
        });
        console.log(
          `   ${label.padEnd(22)} p50 ${fmt(r.p50)} ms  p99 ${fmt(r.p99)} ms  max ${fmt(r.max)} ms  (${r.small} small calls, ${r.big} x 8 MB echoes;` +
            ` longest event-loop stall: client ${fmt(r.clientStallMs)} ms, server ${fmt(r.serverStallMs)} ms)`,
        );
      }
    }
    if (want('2')) {
      console.log('2. 1 MB echo throughput, payload bytes/s one way, 4 in flight, 1 connection (best of 3 interleaved rounds)');
      // Interleaved rounds, best of each: on a shared machine the noise then hits the floor and avrpc alike.
      const runMs = (rowMs ?? 4000) / 3;
      let raw = 0;
      let on = 0;
      let off = 0;
      const onClient = createClient({ protocol: largeProtocol, endpoints: [`127.0.0.1:${ports.fragOn}`], fragmentWindowBytes });
      const offClient = createClient({ protocol: largeProtocol, endpoints: [`127.0.0.1:${ports.fragOff}`], fragmentBytes: 0 });
      for (let round = 0; round < 3; round++) {
        raw = Math.max(raw, await rawThroughput(ports.raw, 4, runMs));
        on = Math.max(on, await avrpcThroughput(onClient, 4, runMs));
        off = Math.max(off, await avrpcThroughput(offClient, 4, runMs));
      }
      await onClient.close();
      await offClient.close();
      results.throughput = { rawBytesPerSec: raw, onBytesPerSec: on, offBytesPerSec: off };
      console.log(`   raw framed floor       ${(raw / MiB).toFixed(0)} MiB/s`);
      console.log(`   avrpc fragments on     ${(on / MiB).toFixed(0)} MiB/s  = ${fmt(on / raw)}x the floor`);
      console.log(`   avrpc fragments off    ${(off / MiB).toFixed(0)} MiB/s  = ${fmt(off / raw)}x the floor`);
    }
    if (want('3')) {
      console.log('3. memory beyond the payload while one N MB echo is in flight (arrayBuffers + heapUsed peak, MB)');
      for (const n of [8, 32, 100]) {
        const rows = await memoryFor(child, ports.fragOn, n);
        const worst = { client: Math.max(...rows.map((r) => r.client)), server: Math.max(...rows.map((r) => r.server)) };
        results.memory.push({ n, clientWorstN: worst.client / n, serverWorstN: worst.server / n });
        console.log(
          `   N = ${String(n).padStart(2)} MB: client ${rows.map((r) => fmt(r.client)).join(' / ')} (worst ${fmt(worst.client / n)}N), ` +
            `server ${rows.map((r) => fmt(r.server)).join(' / ')} (worst ${fmt(worst.server / n)}N)`,
        );
      }
    }
  } finally {
    child.send('exit');
    await once(child, 'exit');
  }
  console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  // Forked by bench/run.ts: hand it the figures.
  if (process.send !== undefined) process.send(results);
}

if (process.argv.includes('--server')) await serverMain();
else await main();
