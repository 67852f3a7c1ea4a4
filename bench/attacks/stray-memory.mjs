/* global gc */
// Issue 14 measurement: node --expose-gc bench/attacks/stray-memory.mjs $PWD/dist [ids]. Peak and
// pinned (after GC) client memory while the hostile server of stray-server.mjs sends P=4 unfinished
// 60 MiB fragmented answers to unused ids. Loopback only; ends when the call settles or after 60 s.
// Client memory under the hostile server above: node --expose-gc stray-memory.mjs <dist> [ids]
import { fork } from 'node:child_process';
const dist = process.argv[2];
const { createClient, loadProtocol } = await import(`${dist}/src/index.js`);
const protocol = await loadProtocol(`${dist}/../protocol/echo.avdl`);
const child = fork(new URL('./stray-server.mjs', import.meta.url).pathname, [dist, process.argv[3] ?? '4']);
const port = await new Promise((r) => child.once('message', (m) => r(m.port)));
let serverDone = false;
child.on('message', (m) => {
  if (m.sent !== undefined) serverDone = true;
});
child.on('exit', () => {
  serverDone = true;
});
gc();
const base = process.memoryUsage();
let peakRss = 0,
  peakAb = 0;
const timer = setInterval(() => {
  const m = process.memoryUsage();
  peakRss = Math.max(peakRss, m.rss);
  peakAb = Math.max(peakAb, m.arrayBuffers);
}, 20);
const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], waitForReadyMs: 5000, compressAboveBytes: 1024 });
const item = { id: 1, name: 'x', tags: [], score: 0, blob: Buffer.alloc(0) };
const started = performance.now();
let outcome = 'pending';
client.call('echo', { item }, { timeoutMs: 60_000 }).then(
  () => {
    outcome = 'answered';
  },
  (e) => {
    outcome = `${e.codeName}: ${e.message}`;
  },
);
while (!serverDone && outcome === 'pending' && performance.now() - started < 60_000) await new Promise((r) => setTimeout(r, 50));
await new Promise((r) => setTimeout(r, 500));
gc();
await new Promise((r) => setTimeout(r, 50));
gc();
const held = process.memoryUsage();
clearInterval(timer);
const MB = (n) => (n / 1e6).toFixed(1);
console.log(
  JSON.stringify({
    dist,
    call: outcome.slice(0, 110),
    peakRssMB: MB(peakRss - base.rss),
    peakArrayBuffersMB: MB(peakAb - base.arrayBuffers),
    pinnedAfterGcArrayBuffersMB: MB(held.arrayBuffers - base.arrayBuffers),
    pinnedAfterGcRssMB: MB(held.rss - base.rss),
  }),
);
await client.close().catch(() => {});
child.kill();
process.exit(0);
