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
  RpcError,
  codeName,
  createClient,
  createEtcdRegistry,
  createServer,
  createStaticRegistry,
  loadProtocol,
  type Protocol,
  type Registration,
  type Registry,
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
    host: '127.0.0.1',
    port,
    ...(registry === undefined ? {} : { register: { registry, ...SERVICE } }),
  });
  process.send!({ port: bound.port });
  process.once(
    'SIGTERM',
    () =>
      void server
        .close({ graceMs: 2000 })
        .then(() => registry?.close())
        .then(() => process.exit(0)),
  );
}

/** A server process the demo manages. */
interface ServerProc {
  name: string;
  port: number;
  child: ChildProcess;
  registration: Registration | undefined;
}

/** How long a server process may take to report its port. */
const START_TIMEOUT_MS = 20_000;

/**
 * Forks a server and waits for its port. A server that exits first (a crash at startup) or never
 * reports (a registry it cannot reach) fails the demo instead of hanging it. `children` tracks it.
 */
async function spawnServer(name: string, port: number, registry: Registry | undefined, children: Set<ChildProcess>): Promise<ServerProc> {
  const child = fork(fileURLToPath(import.meta.url), ['--server', name, String(port)], { stdio: 'inherit' });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let timer: NodeJS.Timeout | undefined;
  const failed = new Promise<never>((_resolve, reject) => {
    child.once('exit', (code, signal) => reject(new Error(`server ${name} exited (${String(code ?? signal)}) before reporting its port`)));
    timer = setTimeout(() => reject(new Error(`server ${name} did not report its port within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
  });
  failed.catch(() => undefined); // settles late (at the normal exit) once the port came: not an error then
  try {
    const [msg] = (await Promise.race([once(child, 'message'), failed])) as [{ port: number }];
    const registration =
      registry === undefined ? undefined : await registry.register({ ...SERVICE, host: '127.0.0.1', port: msg.port, id: name });
    return { name, port: msg.port, child, registration };
  } finally {
    clearTimeout(timer);
  }
}

/** Stops every server process still running: SIGTERM (graceful), SIGKILL after 3 s. */
async function stopAll(children: Set<ChildProcess>): Promise<void> {
  await Promise.all(
    [...children].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const force = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(force);
    }),
  );
}

async function main(): Promise<void> {
  const protocol = await loadProtocol(protocolUrl);
  const embedded = etcdHosts === undefined ? createStaticRegistry() : undefined;
  const registry: Registry = embedded ?? createEtcdRegistry({ hosts: etcdHosts!.split(',') });
  console.log(`registry: ${embedded ? 'embedded (in this process)' : `etcd at ${etcdHosts}`}`);
  const children = new Set<ChildProcess>();
  try {
    const started = await Promise.allSettled(['s1', 's2', 's3'].map((n) => spawnServer(n, 0, embedded, children)));
    const crashed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (crashed !== undefined) throw crashed.reason;
    const servers = started.map((r) => (r as PromiseFulfilledResult<ServerProc>).value);
    for (const s of servers) console.log(`  ${s.name}: pid ${s.child.pid}, 127.0.0.1:${s.port}`);
    const failed = await run(protocol, registry, embedded, servers, children);
    console.log(failed ? 'demo finished with failed calls' : 'demo finished: no call failed through a graceful restart and a SIGKILL');
    process.exitCode = failed ? 1 : 0;
  } catch (err) {
    console.error(`demo failed: ${(err as Error).message}`);
    process.exitCode = 1;
  } finally {
    await stopAll(children);
    await registry.close();
  }
}

/** The load, the restart and the kill; resolves true when some call failed. */
async function run(
  protocol: Protocol,
  registry: Registry,
  embedded: Registry | undefined,
  servers: ServerProc[],
  children: Set<ChildProcess>,
): Promise<boolean> {
  const client = createClient({
    protocol,
    discovery: { registry, service: SERVICE.name, version: '^1' },
    idempotent: ['echo'],
    timeoutMs: 3000,
  });
  const item = { id: 1234567890123, name: '', tags: ['demo'], score: 0.5, blob: Buffer.alloc(32, 1) };
  const byCode = new Map<string, number>();
  const byServer = new Map<string, number>();
  let stopAt = performance.now() + DURATION_MS;
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
    const line = servers
      .map((s) => {
        const st = client.stats().find((e) => e.endpoint === `127.0.0.1:${s.port}`);
        const n = byServer.get(s.name) ?? 0;
        return `${s.name} ${String(n).padStart(6)}/s ${((100 * n) / total).toFixed(0).padStart(3)}% in-flight ${String(st?.inFlight ?? '-').padStart(2)}`;
      })
      .join(' | ');
    const failed = [...byCode].filter(([c]) => c !== 'OK').reduce((a, [, n]) => a + n, 0);
    console.log(`  ${line} | failed so far ${failed}`);
    byServer.clear();
  }, 1000);
  const load = Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  try {
    await sleep(DURATION_MS * 0.3);
    const s1 = servers[0]!;
    console.log(`>> graceful restart of ${s1.name}: SIGTERM, it drains, then a new process on port ${s1.port}`);
    await s1.registration?.deregister();
    s1.child.kill('SIGTERM');
    await once(s1.child, 'exit');
    servers[0] = await spawnServer(s1.name, s1.port, embedded, children);

    await sleep(DURATION_MS * 0.25);
    const s2 = servers[1]!;
    console.log(`>> SIGKILL of ${s2.name} (pid ${s2.child.pid}) mid-call; calls in flight there are retried elsewhere`);
    s2.child.kill('SIGKILL');
    await once(s2.child, 'exit');
    await s2.registration?.deregister();
    await load;
  } finally {
    // On failure: stop the workers before the client closes, or they would spin on its refusals.
    stopAt = 0;
    await load;
    clearInterval(view);
    await client.close();
  }
  console.log(`\nsummary: ${[...byCode].map(([c, n]) => `${c} ${n}`).join(', ')}`);
  return [...byCode.keys()].some((c) => c !== 'OK');
}

const at = process.argv.indexOf('--server');
if (at >= 0) await serve(process.argv[at + 1]!, Number(process.argv[at + 2]));
else await main();
