/**
 * The live demo behind `npm start`: three server processes behind a registry (the embedded one, or
 * etcd when ETCD_ENDPOINTS is set), a client under steady load with a live view per server, a graceful
 * restart of one server and a SIGKILL of another mid-run, then a summary of calls by code. Bounded in
 * time; exits 0 when no call failed.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  RpcError, codeName, createClient, createEtcdRegistry, createServer, createStaticRegistry, loadProtocol,
  type Registration, type Registry,
} from '../index.js';

const protocolUrl = new URL('../../../protocol/echo.avdl', import.meta.url);
const DURATION_MS = Number(process.env.DEMO_DURATION_MS ?? 9000);
const IN_FLIGHT = 48;
const SERVICE = { name: 'echo', version: '1.0.0' };
const etcdHosts = process.env.ETCD_ENDPOINTS;

/** Child mode: one server; registers itself in etcd when configured, else the parent registers it. */
async function serve(name: string, port: number): Promise<void> {
  const protocol = await loadProtocol(protocolUrl);
  const server = createServer({
    protocol,
    handlers: { echo: (req: { item: { name: string } }) => ({ ...req.item, name }) },
  });
  const registry = etcdHosts === undefined ? undefined : createEtcdRegistry({ hosts: etcdHosts.split(','), ttlSec: 3 });
  const bound = await server.listen({
    host: '127.0.0.1', port, ...(registry === undefined ? {} : { register: { registry, ...SERVICE } }),
  });
  process.send!({ port: bound.port });
  process.once('SIGTERM', () => void server.close({ graceMs: 2000 }).then(() => registry?.close()).then(() => process.exit(0)));
}

/** A server process the demo manages. */
interface ServerProc { name: string; port: number; child: ChildProcess; registration: Registration | undefined }

async function spawnServer(name: string, port: number, registry: Registry | undefined): Promise<ServerProc> {
  const child = fork(fileURLToPath(import.meta.url), ['--server', name, String(port)], { stdio: 'inherit' });
  const [msg] = (await once(child, 'message')) as [{ port: number }];
  const registration = registry === undefined ? undefined
    : await registry.register({ ...SERVICE, host: '127.0.0.1', port: msg.port, id: name });
  return { name, port: msg.port, child, registration };
}

async function main(): Promise<void> {
  const protocol = await loadProtocol(protocolUrl);
  const embedded = etcdHosts === undefined ? createStaticRegistry() : undefined;
  const registry: Registry = embedded ?? createEtcdRegistry({ hosts: etcdHosts!.split(',') });
  console.log(`registry: ${embedded ? 'embedded (in this process)' : `etcd at ${etcdHosts}`}`);
  const servers = await Promise.all(['s1', 's2', 's3'].map((n) => spawnServer(n, 0, embedded)));
  for (const s of servers) console.log(`  ${s.name}: pid ${s.child.pid}, 127.0.0.1:${s.port}`);

  const client = createClient({
    protocol, discovery: { registry, service: SERVICE.name, version: '^1' }, idempotent: ['echo'],
    timeoutMs: 3000, keepaliveMs: 500, keepaliveTimeoutMs: 1500,
  });
  const item = { id: 1234567890123, name: '', tags: ['demo'], score: 0.5, blob: Buffer.alloc(32, 1) };
  const byCode = new Map<string, number>();
  const byServer = new Map<string, number>();
  const stopAt = performance.now() + DURATION_MS;
  const worker = async (): Promise<void> => {
    while (performance.now() < stopAt) {
      try {
        const r = await client.call<{ name: string }>('echo', { item });
        byServer.set(r.name, (byServer.get(r.name) ?? 0) + 1);
        byCode.set('OK', (byCode.get('OK') ?? 0) + 1);
      } catch (err) {
        const code = codeName(RpcError.from(err).code);
        byCode.set(code, (byCode.get(code) ?? 0) + 1);
      }
    }
  };
  const view = setInterval(() => {
    const total = [...byServer.values()].reduce((a, b) => a + b, 0) || 1;
    const line = servers.map((s) => {
      const st = client.stats().find((e) => e.endpoint === `127.0.0.1:${s.port}`);
      const n = byServer.get(s.name) ?? 0;
      return `${s.name} ${String(n).padStart(6)}/s ${((100 * n) / total).toFixed(0).padStart(3)}% in-flight ${String(st?.inFlight ?? '-').padStart(2)}`;
    }).join(' | ');
    const failed = [...byCode].filter(([c]) => c !== 'OK').reduce((a, [, n]) => a + n, 0);
    console.log(`  ${line} | failed so far ${failed}`);
    byServer.clear();
  }, 1000);
  const load = Promise.all(Array.from({ length: IN_FLIGHT }, worker));

  await sleep(DURATION_MS * 0.3);
  const s1 = servers[0]!;
  console.log(`>> graceful restart of ${s1.name}: SIGTERM, it drains, then a new process on port ${s1.port}`);
  await s1.registration?.deregister();
  s1.child.kill('SIGTERM');
  await once(s1.child, 'exit');
  servers[0] = await spawnServer(s1.name, s1.port, embedded);

  await sleep(DURATION_MS * 0.25);
  const s2 = servers[1]!;
  console.log(`>> SIGKILL of ${s2.name} (pid ${s2.child.pid}) mid-call; calls in flight there are retried elsewhere`);
  s2.child.kill('SIGKILL');
  await once(s2.child, 'exit');
  await s2.registration?.deregister();

  await load;
  clearInterval(view);
  console.log(`\nsummary: ${[...byCode].map(([c, n]) => `${c} ${n}`).join(', ')}`);
  await client.close();
  for (const s of servers) {
    if (s.child.exitCode !== null || s.child.signalCode !== null) continue;
    s.child.kill('SIGTERM');
    await once(s.child, 'exit');
  }
  await registry.close();
  const failed = [...byCode.keys()].some((c) => c !== 'OK');
  console.log(failed ? 'demo finished with failed calls' : 'demo finished: no call failed through a graceful restart and a SIGKILL');
  process.exitCode = failed ? 1 : 0;
}

const at = process.argv.indexOf('--server');
if (at >= 0) await serve(process.argv[at + 1]!, Number(process.argv[at + 2]));
else await main();
