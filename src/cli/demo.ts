/**
 * The live demo behind `npm start`: a server process and a client making real calls on loopback for a
 * bounded time, printing progress every second and a summary, then a graceful shutdown. Exits 0 when
 * every call succeeded or failed with the code the demo expected.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Code, RpcError, codeName, createClient, createServer, loadProtocol } from '../index.js';

const protocolUrl = new URL('../../../protocol/echo.avdl', import.meta.url);
const DURATION_MS = Number(process.env.DEMO_DURATION_MS ?? 5000);
const IN_FLIGHT = 32;

async function serve(): Promise<void> {
  const protocol = await loadProtocol(protocolUrl);
  const server = createServer({
    protocol,
    handlers: {
      echo: (req: { item: unknown }) => req.item,
      fail: (req: { reason: string }) => { throw new RpcError(Code.FAILED_PRECONDITION, req.reason, { details: { reason: req.reason } }); },
      notify: () => undefined,
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  process.send!({ port });
  process.once('message', () => void server.close({ graceMs: 2000 }).then(() => process.exit(0)));
}

async function main(): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--server'], { stdio: 'inherit' });
  const [{ port }] = (await once(child, 'message')) as [{ port: number }];
  console.log(`server process ${child.pid} listening on 127.0.0.1:${port}`);
  const protocol = await loadProtocol(protocolUrl);
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], timeoutMs: 2000 });
  const item = { id: 1234567890123, name: 'demo', tags: ['a', 'b'], score: 0.5, blob: Buffer.alloc(32, 1) };
  const byCode = new Map<string, number>();
  const latencies: number[] = [];
  let window = 0;
  const stopAt = performance.now() + DURATION_MS;

  const worker = async (): Promise<void> => {
    while (performance.now() < stopAt) {
      const t0 = performance.now();
      try {
        await client.call('echo', { item }, { metadata: { demo: 'yes' } });
        latencies.push(performance.now() - t0);
        byCode.set('OK', (byCode.get('OK') ?? 0) + 1);
      } catch (err) {
        const code = codeName(RpcError.from(err).code);
        byCode.set(code, (byCode.get(code) ?? 0) + 1);
      }
      window++;
    }
  };
  const ticker = setInterval(() => {
    console.log(`  ${window.toLocaleString('en-US').padStart(9)} calls/s   in flight ${IN_FLIGHT}`);
    window = 0;
  }, 1000);
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  clearInterval(ticker);

  const declared = await client.call('fail', { reason: 'shown on purpose' }).catch((e: RpcError) => e);
  console.log(`declared error: ${(declared as RpcError).name} "${(declared as RpcError).message}" details=${JSON.stringify((declared as RpcError).details)}`);
  const late = await client.call('echo', { item }, { timeoutMs: 0 }).catch((e: RpcError) => e);
  console.log(`deadline of 0 ms: ${(late as RpcError).name}`);

  latencies.sort((a, b) => a - b);
  const pct = (p: number) => (latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0).toFixed(3);
  console.log(`\nsummary: ${[...byCode].map(([c, n]) => `${c} ${n}`).join(', ')}; p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms`);
  await client.close();
  child.send('close');
  await once(child, 'exit');
  const failed = [...byCode.keys()].some((c) => c !== 'OK');
  console.log(failed ? 'demo finished with failed calls' : 'demo finished: every call succeeded, server closed gracefully');
  process.exitCode = failed ? 1 : 0;
}

if (process.argv.includes('--server')) await serve();
else await main();
