/**
 * What an observer costs per call: loopback echo calls (server and client in this process, 32 in
 * flight) without an observer, with the Prometheus observer on both sides, and with an observer that
 * reads every CallInfo field; rounds interleaved, CPU time per call (user + system) and calls/s, median
 * of the rounds. Then the hooks alone, in a loop: building a CallInfo and the Prometheus hooks.
 * Bounded (about 30 s). `node dist/bench/observer.js [callsPerRound] [rounds]`.
 */
import { Registry } from 'prom-client';
import { createClient, createPrometheusObserver, createServer, parseProtocol, type RpcObserver } from '../src/index.js';
import { endCallInfo, newCallInfo } from '../src/observability/call-info.js';

const protocol = parseProtocol(`protocol Bench { string echo(string s); }`);
const CALLS = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 5);
const IN_FLIGHT = 32;

type Mode = 'none' | 'prometheus' | 'reads CallInfo';

async function observers(mode: Mode): Promise<{ server?: RpcObserver; client?: RpcObserver }> {
  if (mode === 'none') return {};
  if (mode === 'prometheus') {
    const register = new Registry();
    return {
      server: await createPrometheusObserver({ side: 'server', register }),
      client: await createPrometheusObserver({ side: 'client', register }),
    };
  }
  let sink = 0;
  const reader: RpcObserver = {
    callEnded(_m, _c, _ms, info) {
      sink += info.requestBytes + info.responseBytes + info.peer.length + info.attempts + (info.metadata.x === undefined ? 0 : 1);
      if (sink < 0) console.log(sink);
    },
  };
  return { server: reader, client: reader };
}

async function round(mode: Mode): Promise<{ cpuUsPerCall: number; callsPerSec: number }> {
  const o = await observers(mode);
  const server = createServer({ protocol, handlers: { echo: ({ s }: { s: string }) => s }, ...(o.server ? { observer: o.server } : {}) });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], ...(o.client ? { observer: o.client } : {}) });
  for (let i = 0; i < 1000; i++) await client.call('echo', { s: 'warm' });
  let left = CALLS;
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (left-- > 0) await client.call('echo', { s: 'hello' });
    }),
  );
  const ms = performance.now() - t0;
  const used = process.cpuUsage(cpu);
  await client.close();
  await server.close({ graceMs: 100 });
  return { cpuUsPerCall: (used.user + used.system) / CALLS, callsPerSec: (CALLS / ms) * 1000 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function hooksAlone(): Promise<void> {
  const register = new Registry();
  const prom = await createPrometheusObserver({ side: 'server', register });
  const N = 1_000_000;
  const time = (what: string, fn: () => void): void => {
    for (let i = 0; i < 10_000; i++) fn();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) fn();
    console.log(`  ${what}: ${(((performance.now() - t0) / N) * 1000).toFixed(3)} us`);
  };
  const md = { tenant: 'blue' };
  time('newCallInfo + endCallInfo', () => {
    endCallInfo(newCallInfo('server', 'Bench', 'echo', 'unary', '127.0.0.1:1234', md, Infinity, undefined, 40), 0, 0.05, undefined);
  });
  time('the same + Prometheus callStarted/callEnded', () => {
    const info = newCallInfo('server', 'Bench', 'echo', 'unary', '127.0.0.1:1234', md, Infinity, undefined, 40);
    prom.callStarted!('echo', info);
    prom.callEnded!('echo', 0, 0.05, endCallInfo(info, 0, 0.05, undefined));
  });
}

const modes: Mode[] = ['none', 'prometheus', 'reads CallInfo'];
const results = new Map<Mode, Array<{ cpuUsPerCall: number; callsPerSec: number }>>(modes.map((m) => [m, []]));
for (let r = 0; r < ROUNDS; r++) for (const m of modes) results.get(m)!.push(await round(m));
console.log(`${CALLS} echo calls per round, ${IN_FLIGHT} in flight, ${ROUNDS} rounds (median); server and client in one process`);
for (const m of modes) {
  const rs = results.get(m)!;
  console.log(
    `  ${m.padEnd(15)} ${median(rs.map((r) => r.cpuUsPerCall)).toFixed(2)} us CPU per call, ${Math.round(median(rs.map((r) => r.callsPerSec)))} calls/s`,
  );
}
console.log('hooks alone, per call:');
await hooksAlone();
