/**
 * A client following a registry: a version range semver cannot parse is refused by createClient
 * (naming the option), a watch that fails for a while is reported and retried, and one that fails for
 * good (registry closed, watch refused) stops being retried. No retry timer keeps the process alive.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import { createStaticRegistry } from '../../src/discovery/index.js';
import type { Registry, ServiceInstance, WatchOptions } from '../../src/discovery/registry.js';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import type { Logger } from '../../src/observability/observer.js';
import { poolProtocol, startServer, until, type TestServer } from '../helpers/pool-fixture.js';

const test = suite('discovery: following a registry');
const clients: Client[] = [];
const servers: TestServer[] = [];
const registries: Registry[] = [];

test.after.each(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(registries.splice(0).map((r) => r.close()));
});

interface Logged {
  level: string;
  msg: string | undefined;
  code: string | undefined;
}

function recordingLogger(): Logger & { lines: Logged[] } {
  const lines: Logged[] = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, msg, code: (obj as { code?: string }).code });
    };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** `inner`, with watch() calls counted, and the first `failures` of them failing with `error` once iterated. */
function flakyRegistry(inner: Registry, failures: number, error: RpcError): Registry & { watches: number } {
  const r = Object.create(inner) as Registry & { watches: number };
  r.watches = 0;
  r.watch = (name: string, options?: WatchOptions): AsyncIterable<ServiceInstance[]> => {
    r.watches++;
    if (r.watches > failures) return inner.watch(name, options);
    // A watch that fails before its first value: a generator that throws on its first next().
    // eslint-disable-next-line require-yield
    return (async function* failing(): AsyncGenerator<ServiceInstance[]> {
      await Promise.resolve();
      throw error;
    })();
  };
  return r;
}

const refusedBadRange =
  (path: string) =>
  (e: unknown): boolean =>
    e instanceof RpcError && e.code === Code.INVALID_ARGUMENT && e.message.includes(path);

test('a version range semver cannot parse is refused by createClient, naming options.discovery.version', () => {
  const registry = createStaticRegistry();
  registries.push(registry);
  for (const version of ['^^nonsense', 'one.two', 2]) {
    assert.throws(
      () => createClient({ protocol: poolProtocol(), discovery: { registry, service: 'pool', version: version as string } }),
      refusedBadRange('createClient: options.discovery.version'),
      `version ${JSON.stringify(version)}`,
    );
  }
  // A good range is accepted.
  clients.push(createClient({ protocol: poolProtocol(), discovery: { registry, service: 'pool', version: '^1.2 || 2.x' } }));
});

test('a watch that fails (registry unreachable) is reported to the logger and retried; calls then succeed', async () => {
  const s = await startServer('A');
  servers.push(s);
  const inner = createStaticRegistry([{ name: 'pool', version: '1.0.0', host: '127.0.0.1', port: s.port }]);
  registries.push(inner);
  const registry = flakyRegistry(inner, 2, new RpcError(Code.UNAVAILABLE, 'etcd unreachable'));
  const logger = recordingLogger();
  const c = createClient({ protocol: poolProtocol(), discovery: { registry, service: 'pool' }, logger });
  clients.push(c);
  assert.is(await c.call('read', { delayMs: 0 }, { timeoutMs: 10_000 }), 'A');
  assert.is(registry.watches, 3);
  const warned = logger.lines.filter((l) => l.level === 'warn');
  assert.is(warned.length, 2, JSON.stringify(logger.lines));
  assert.equal(
    warned.map((l) => [l.code, l.msg]),
    Array(2).fill(['UNAVAILABLE', 'registry watch failed; retrying']),
  );
});

test('while a failed watch waits to be retried, no timer keeps the process alive', async () => {
  const inner = createStaticRegistry();
  registries.push(inner);
  const registry = flakyRegistry(inner, Infinity, new RpcError(Code.UNAVAILABLE, 'etcd unreachable'));
  const logger = recordingLogger();
  clients.push(createClient({ protocol: poolProtocol(), discovery: { registry, service: 'pool' }, logger }));
  await until(() => registry.watches >= 2, 5000, 'a retried watch');
  await new Promise((r) => setImmediate(r));
  assert.not.ok(process.getActiveResourcesInfo().includes('Timeout'), `active: ${process.getActiveResourcesInfo().join(', ')}`);
});

test('a closed registry stops discovery: logged as an error, not re-watched, no timer left', async () => {
  const s = await startServer('A');
  servers.push(s);
  const inner = createStaticRegistry([{ name: 'pool', version: '1.0.0', host: '127.0.0.1', port: s.port }]);
  const registry = flakyRegistry(inner, 0, new RpcError(Code.UNKNOWN, 'unused'));
  const logger = recordingLogger();
  const c = createClient({ protocol: poolProtocol(), discovery: { registry, service: 'pool' }, logger });
  clients.push(c);
  assert.is(await c.call('read', { delayMs: 0 }), 'A');
  await inner.close();
  await until(() => logger.lines.some((l) => l.level === 'error'), 5000, 'discovery stopped');
  const error = logger.lines.find((l) => l.level === 'error')!;
  assert.equal([error.code, error.msg], ['FAILED_PRECONDITION', 'discovery stopped: the registry refused the watch']);
  const watches = registry.watches;
  await new Promise((r) => setTimeout(r, 400)); // longer than the first retry delays (100 ms, 200 ms)
  assert.is(registry.watches, watches, 'not watched again');
  assert.not.ok(process.getActiveResourcesInfo().includes('Timeout'), `active: ${process.getActiveResourcesInfo().join(', ')}`);
  // The servers it knew stay in use.
  assert.is(await c.call('read', { delayMs: 0 }), 'A');
});

test('a watch the registry refuses as invalid (a service name it cannot store) stops discovery', async () => {
  const registry = createStaticRegistry();
  registries.push(registry);
  const logger = recordingLogger();
  clients.push(createClient({ protocol: poolProtocol(), discovery: { registry, service: 'bad/name' }, logger }));
  await until(() => logger.lines.some((l) => l.level === 'error'), 5000, 'discovery stopped');
  assert.is(logger.lines.find((l) => l.level === 'error')!.code, 'INVALID_ARGUMENT');
  assert.is(logger.lines.filter((l) => l.level === 'warn').length, 0, 'not retried');
});

test.run();
