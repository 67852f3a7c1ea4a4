/**
 * `node dist/bench/http-gateway-profile.js <avrpc-http|node-http|avrpc> [seconds] [cpu-prof dir]`: one
 * server of bench/http-gateway-child.ts under load from this process (undici, 4 sockets pipelining 16,
 * or avrpc's client, 64 in flight) for `seconds` (default 5), the server run with `--cpu-prof` when a
 * directory is given. Prints the server's CPU per call: a quick A/B of one change, and the profile
 * to read (what the gateway spends where).
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { GatewayClientJob } from './http-gateway-child.js';

const [kind = 'avrpc-http', seconds = '5', dir] = process.argv.slice(2);
const child = fileURLToPath(new URL('./http-gateway-child.js', import.meta.url));
const server = fork(child, ['server', kind], {
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  // GATEWAY_STRACE=<file>: the server runs under `strace -c` (its system calls counted into <file>).
  ...(process.env.GATEWAY_STRACE === undefined
    ? {
        execArgv: [
          ...(dir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', dir]),
          ...(process.env.GATEWAY_SERVER_ARGS?.split(' ') ?? []),
        ],
      }
    : { execPath: 'strace', execArgv: ['-c', '-o', process.env.GATEWAY_STRACE, process.execPath] }),
});
const [{ port }] = (await once(server, 'message')) as [{ port: number }];
const target = kind === 'avrpc' ? { kind: 'avrpc' as const, port } : { kind: 'http' as const, port, connections: 4, pipelining: 16 };
const sliceMs = 250;
const job: GatewayClientJob = {
  targets: [target, target],
  inFlight: 64,
  warmupMs: 1000,
  sliceMs,
  slices: Math.ceil((Number(seconds) * 1000) / sliceMs / 2),
};
const client = fork(child, ['client', JSON.stringify(job)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
let sysShare = (): number => 0;
const result = await new Promise<{
  sides: Array<{ calls: number; callsPerSec: number; cpuUs: number; serverCpuUs: number; errors: number }>;
}>((resolve) => {
  // The server's CPU and its system part at the first and the last sample: how much is the kernel's.
  let firstSys: [number, number] | undefined;
  let lastSys: [number, number] = [0, 0];
  sysShare = () => (firstSys === undefined ? 0 : (lastSys[1] - firstSys[1]) / Math.max(1, lastSys[0] - firstSys[0]));
  client.on('message', (m: { sample?: true }) => {
    if (m.sample === undefined) return resolve(m as never);
    // Both targets are this one server: the same sample twice.
    const reply = once(server, 'message');
    server.send('sample');
    void reply.then((m) => {
      const { cpuUs, sysUs } = m[0] as { cpuUs: number; sysUs: number };
      firstSys ??= [cpuUs, sysUs];
      lastSys = [cpuUs, sysUs];
      client.send({ cpu: [cpuUs, cpuUs] });
    });
  });
});
const cpuUs = result.sides[0]!.serverCpuUs + result.sides[1]!.serverCpuUs;
const calls = result.sides[0]!.calls + result.sides[1]!.calls;
const clientUs = result.sides[0]!.cpuUs + result.sides[1]!.cpuUs;
console.log(
  `${kind}: ${calls} calls, ${Math.round(calls / (result.sides[0]!.calls / result.sides[0]!.callsPerSec + result.sides[1]!.calls / result.sides[1]!.callsPerSec))} calls/s, ` +
    `server ${(cpuUs / calls).toFixed(2)} µs/call (${Math.round(sysShare() * 100)}% system), client ${(clientUs / calls).toFixed(2)} µs/call, errors ${result.sides[0]!.errors + result.sides[1]!.errors}`,
);
const exited = once(server, 'exit');
server.send('stop');
await exited;
