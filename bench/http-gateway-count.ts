/**
 * Server instructions per HTTP/JSON call, immune to the machine's load: runs one server of
 * bench/http-gateway-child.ts under `valgrind --tool=callgrind` (the client outside it, undici) for
 * two call counts and reports the difference per call, so that start-up cancels out.
 * `node dist/bench/http-gateway-count.js [kinds=node-http,avrpc-http] [n1=3000] [n2=12000] [inFlight=1]`;
 * a kind is a server kind, called over HTTP, or `avrpc` and `server@avrpc` (`avrpc-http@avrpc`: avrpc
 * calls on the port shared with HTTP), called by avrpc's client;
 * the callgrind files stay in $COUNT_DIR (default /tmp/gateway-count) for callgrind_annotate.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { callgrindTotal, underCallgrind } from './callgrind.js';
import type { GatewayServerKind } from './http-gateway-child.js';

const kinds = (process.argv[2] ?? 'node-http,avrpc-http').split(',');
const n1 = Number(process.argv[3] ?? 3000);
const n2 = Number(process.argv[4] ?? 12000);
const inFlight = Number(process.argv[5] ?? 1);
const dir = process.env.COUNT_DIR ?? '/tmp/gateway-count';
mkdirSync(dir, { recursive: true });
const child = fileURLToPath(new URL('./http-gateway-child.js', import.meta.url));

async function run(kind: string, n: number): Promise<number> {
  const [serverKind, caller] = kind.split('@') as [GatewayServerKind, string | undefined];
  const out = `${dir}/${kind}-${n}.cg`;
  const server = fork(child, ['server', serverKind], {
    ...underCallgrind(out),
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const [{ port }] = (await once(server, 'message')) as [{ port: number }];
  const target =
    serverKind === 'avrpc' || caller === 'avrpc' ? { kind: 'avrpc', port } : { kind: 'http', port, connections: 1, pipelining: inFlight };
  const client = fork(child, ['count', JSON.stringify({ target, calls: n, inFlight })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await once(client, 'exit');
  const exited = once(server, 'exit');
  server.send('stop');
  await exited;
  return callgrindTotal(out);
}

for (const kind of kinds) {
  const a = await run(kind, n1);
  const b = await run(kind, n2);
  console.log(`${kind} @${inFlight}: server ${Math.round((b - a) / (n2 - n1))} instructions/call`);
}
