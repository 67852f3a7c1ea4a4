/**
 * Issue 14, "no process-wide memory bound": the four attacks at the issue's scale against a server with
 * DEFAULT options (plus `authenticate` for the handshake attack and `compressAboveBytes` for the bombs,
 * without which no compression is negotiated). The server runs in a child process, which reports its
 * peak RSS and array-buffer growth over its baseline, its CPU time, its longest event-loop stall and,
 * when it has one, its `bufferedBytes`; this process attacks over loopback while a well-behaved client
 * pings it (answered / failed). Bounded: each attack gets at most about 25 s, the whole run 2 minutes.
 *
 * Usage: `npm run build --silent && node dist/bench/attacks/memory.js [handshakes] [bombs] [stalled] [noack] [--old-limits]`
 * (`--old-limits`: the server gets the pre-issue-14 defaults maxMessageBytes 64 MiB and maxQueuedBytes
 * 32 MiB, so that what remains is the work of the budget and the stall timeout alone).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import { createClient, createServer, type Client } from '../../src/index.js';
import { Flag, FrameType, PREFACE } from '../../src/framing/frame.js';
import { largeProtocol } from '../../test/helpers/large.js';
import { helloBytes, requestBytes } from '../../test/helpers/raw-peer.js';
import { rawFrame } from '../../test/helpers/raw-client.js';

const MiB = 1024 * 1024;
type Attack = 'handshakes' | 'bombs' | 'stalled' | 'noack';
const ATTACKS: Attack[] = ['handshakes', 'bombs', 'stalled', 'noack'];

/** What the server child reports. */
interface Report {
  rssMB: number;
  arrayBuffersMB: number;
  heapMB: number;
  cpuMs: number;
  loopStallMs: number;
  bufferedBytes: number | undefined;
  rssNowMB: number;
}

async function serverChild(attack: Attack, oldLimits: boolean): Promise<void> {
  const server = createServer({
    ...(oldLimits ? { maxMessageBytes: 64 * MiB, maxQueuedBytes: 32 * MiB } : {}),
    protocol: largeProtocol,
    handlers: {
      echo: (req: { data: Buffer }) => req.data,
      download: (req: { size: number }) => Buffer.alloc(req.size, 7),
      upload: (req: { data: Buffer }) => req.data.length,
      ping: (req: { s: string }) => req.s,
      drop: () => undefined,
    },
    ...(attack === 'handshakes'
      ? {
          authenticate: ({ token }: { token?: string | undefined }) => {
            if (token !== 'good') throw new Error('bad token');
            return 'user';
          },
        }
      : {}),
    ...(attack === 'bombs' ? { compressAboveBytes: 1024 } : {}),
  });
  const { port } = await server.listen();
  (globalThis as { gc?: () => void }).gc?.();
  const base = process.memoryUsage();
  const cpu0 = process.cpuUsage();
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  let peakRss = base.rss;
  let peakAb = base.arrayBuffers;
  let peakHeap = base.heapUsed;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakAb = Math.max(peakAb, m.arrayBuffers);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  }, 20);
  process.on('message', (msg) => {
    if (msg !== 'report') return;
    const cpu = process.cpuUsage(cpu0);
    const report: Report = {
      rssMB: (peakRss - base.rss) / MiB,
      arrayBuffersMB: (peakAb - base.arrayBuffers) / MiB,
      heapMB: (peakHeap - base.heapUsed) / MiB,
      cpuMs: (cpu.user + cpu.system) / 1000,
      loopStallMs: loop.max / 1e6,
      bufferedBytes: (server as { bufferedBytes?: number }).bufferedBytes,
      rssNowMB: (process.memoryUsage().rss - base.rss) / MiB,
    };
    clearInterval(sampler);
    process.send!(report, () => process.exit(0));
  });
  process.send!({ port });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function raw(port: number): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  s.resume(); // reads and drops what the server sends (no WINDOW is ever sent back)
  await once(s, 'connect');
  return s;
}

function offer(p: number, w: number): Record<string, Buffer> {
  const v = Buffer.alloc(8);
  v.writeUInt32BE(p, 0);
  v.writeUInt32BE(w, 4);
  return { 'avrpc.fragments': v };
}

/** Writes `bufs` in order, waiting for drain when the socket is full; stops if it closes. */
async function writeAll(s: Socket, bufs: Buffer[]): Promise<void> {
  for (const b of bufs) {
    if (s.destroyed) return;
    if (!s.write(b)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          s.off('drain', done);
          s.off('close', done);
          resolve();
        };
        s.on('drain', done);
        s.on('close', done);
      });
    }
  }
}

async function attack(kind: Attack, port: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  if (kind === 'handshakes') {
    // 600 sockets, each an unfinished HELLO announcing 1,000,000 bytes, 999,000 of them sent.
    const header = Buffer.alloc(10);
    header.writeUInt32BE(1_000_000, 0);
    header[4] = FrameType.HELLO;
    const body = Buffer.alloc(999_000);
    for (let i = 0; i < 600; i++) {
      const s = await raw(port);
      sockets.push(s);
      s.write(Buffer.concat([PREFACE, header]));
      s.write(body);
    }
    await sleep(2000);
  } else if (kind === 'bombs') {
    // 10 connections x 30 requests, each deflated 100 MiB of zeros (about 100 KB): about 31 MB sent.
    const plain = requestBytes(largeProtocol, 1, 'echo', { data: Buffer.alloc(100 * MiB) });
    const z = deflateRawSync(plain.subarray(10));
    for (let c = 0; c < 10; c++) {
      const s = await raw(port);
      sockets.push(s);
      s.write(helloBytes(largeProtocol, { 'avrpc.compression': Buffer.from('deflate') }));
      const frames: Buffer[] = [];
      for (let i = 0; i < 30; i++) frames.push(rawFrame(FrameType.REQUEST, plain[5]! | Flag.COMPRESSED, 1 + 2 * i, z));
      void writeAll(s, frames);
    }
    await sleep(16_000);
  } else if (kind === 'stalled') {
    // 4 connections x 4 uploads of 64 MiB, each stopped after 60 MiB.
    const total = 64 * MiB;
    const chunk = Buffer.alloc(64 * 1024, 1);
    for (let c = 0; c < 4; c++) {
      const s = await raw(port);
      sockets.push(s);
      s.write(helloBytes(largeProtocol, offer(4, 4 * MiB)));
    }
    await sleep(200);
    await Promise.all(
      sockets.map(async (s) => {
        for (let id = 1; id <= 7; id += 2) {
          const head = Buffer.alloc(4 + 2 + 5);
          head.writeUInt32BE(total, 0);
          head.writeUInt16BE(largeProtocol.message('upload')!.index, 4);
          const frames = [rawFrame(FrameType.REQUEST, Flag.MORE, id, Buffer.concat([head, chunk.subarray(0, 64 * 1024 - head.length)]))];
          for (let sent = 64 * 1024; sent < 60 * MiB; sent += chunk.length)
            frames.push(rawFrame(FrameType.CONTINUATION, Flag.MORE, id, chunk));
          await writeAll(s, frames);
        }
      }),
    );
    await sleep(12_000);
  } else {
    // 20 connections offering fragments with a 1 KiB window, never acknowledging, each asking for 4 answers of 10 MiB.
    for (let c = 0; c < 20; c++) {
      const s = await raw(port);
      sockets.push(s);
      s.write(helloBytes(largeProtocol, offer(4, 1024)));
      for (const id of [1, 3, 5, 7]) s.write(requestBytes(largeProtocol, id, 'download', { size: 10 * MiB }));
    }
    await sleep(12_000);
  }
  return sockets;
}

const oldLimits = process.argv.includes('--old-limits');

async function run(kind: Attack): Promise<void> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--server', kind, ...(oldLimits ? ['--old-limits'] : [])], {
    execArgv: ['--expose-gc'],
  });
  const exited = once(child, 'exit');
  const [{ port }] = (await once(child, 'message')) as [{ port: number }];
  const client: Client = createClient({
    protocol: largeProtocol,
    endpoints: [`127.0.0.1:${port}`],
    ...(kind === 'handshakes' ? { credentials: () => 'good' } : {}),
  });
  let answered = 0;
  let failed = 0;
  let firstFailure = '';
  let pinging = true;
  const pinger = (async () => {
    while (pinging) {
      try {
        await client.call('ping', { s: 'x' }, { timeoutMs: 2000 });
        answered++;
      } catch (err) {
        if (failed++ === 0) firstFailure = (err as Error).message;
      }
      await sleep(10);
    }
  })();
  const started = Date.now();
  const sockets = await attack(kind, port);
  const seconds = (Date.now() - started) / 1000;
  const open = sockets.filter((s) => !s.destroyed).length;
  // Pings stop first: the child exits once it has reported.
  pinging = false;
  await pinger;
  child.send('report');
  const [report] = (await once(child, 'message')) as [Report];
  for (const s of sockets) s.destroy();
  await client.close();
  await exited;
  const f = (n: number): string => n.toFixed(0);
  console.log(
    `${kind.padEnd(10)} peak RSS +${f(report.rssMB)} MB, array buffers +${f(report.arrayBuffersMB)} MB, heap +${f(report.heapMB)} MB, ` +
      `CPU ${f(report.cpuMs)} ms, max loop stall ${f(report.loopStallMs)} ms, RSS at the end +${f(report.rssNowMB)} MB, ` +
      `bufferedBytes ${report.bufferedBytes === undefined ? 'n/a' : f(report.bufferedBytes / MiB) + ' MB'}; attacker sockets still open ${open}/${sockets.length}; ` +
      `good client: ${answered} answered, ${failed} failed${failed > 0 ? ` (first: ${firstFailure})` : ''} (${seconds.toFixed(1)} s)`,
  );
}

if (process.argv[2] === '--server') {
  await serverChild(process.argv[3] as Attack, oldLimits);
} else {
  const wanted = process.argv.slice(2).filter((a): a is Attack => ATTACKS.includes(a as Attack));
  for (const kind of wanted.length > 0 ? wanted : ATTACKS) await run(kind);
}
