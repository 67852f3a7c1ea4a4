/**
 * Instructions per call, immune to the machine's load: runs server and client (bench/perf-child.ts)
 * under `valgrind --tool=callgrind` for two call counts and reports the difference per call, so that
 * start-up cancels out. `node dist/bench/perf-count.js [kinds=avrpc,floor] [inFlight=64] [n1=5000]
 * [n2=25000]`; the callgrind files of the larger run stay in /tmp/perf-count/ for callgrind_annotate.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { callgrindTotal, underCallgrind } from './callgrind.js';

const kinds = (process.argv[2] ?? 'avrpc,floor').split(',');
const inFlight = Number(process.argv[3] ?? 64);
const n1 = Number(process.argv[4] ?? 5000);
const n2 = Number(process.argv[5] ?? 25000);
const dir = process.env.COUNT_DIR ?? '/tmp/perf-count';
mkdirSync(dir, { recursive: true });
const child = fileURLToPath(new URL('./perf-child.js', import.meta.url));

function grind(out: string) {
  return {
    ...underCallgrind(out),
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'] as ('ignore' | 'inherit' | 'ipc')[],
    env: { ...process.env, PROBE_SLOW: '1' },
  };
}

const total = callgrindTotal;

async function run(kind: string, n: number): Promise<{ client: number; server: number }> {
  const sOut = `${dir}/${kind}-${n}-server.cg`;
  const cOut = `${dir}/${kind}-${n}-client.cg`;
  const srv = fork(child, ['server', kind], grind(sOut));
  const [{ port }] = (await once(srv, 'message')) as [{ port: number }];
  const cli = fork(child, ['count', kind, String(port), String(inFlight), String(n)], grind(cOut));
  await once(cli, 'exit');
  const exited = once(srv, 'exit');
  srv.send('stop');
  await exited;
  return { client: total(cOut), server: total(sOut) };
}

for (const kind of kinds) {
  const a = await run(kind, n1);
  const b = await run(kind, n2);
  const per = (k: 'client' | 'server') => Math.round((b[k] - a[k]) / (n2 - n1));
  console.log(
    `${kind} @${inFlight}: client ${per('client')} instr/call, server ${per('server')} instr/call, total ${per('client') + per('server')}`,
  );
}
