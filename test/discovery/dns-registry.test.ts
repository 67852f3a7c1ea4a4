import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { createDnsRegistry, type Registry, type ServiceInstance } from '../../src/discovery/index.js';
import { startDnsServer, unusedUdpPort, type DnsServer } from '../helpers/dns-server.js';

const test = suite('dns registry');
const SRV = '_avrpc._tcp.echo.test';

let dns: DnsServer;
const registries: Registry[] = [];

function registry(options: Parameters<typeof createDnsRegistry>[0] = {}): Registry {
  const created = createDnsRegistry({ servers: [dns.address], ...options });
  registries.push(created);
  return created;
}

const hosts = (list: ServiceInstance[]): string[] => list.map((i) => `${i.host}:${i.port}`);

async function codeOf(action: () => unknown): Promise<number> {
  try {
    await action();
  } catch (err) {
    assert.instance(err, RpcError, String(err));
    return (err as RpcError).code;
  }
  throw new Error('expected a failure');
}

test.before(async () => {
  dns = await startDnsServer();
});

test.before.each(() => {
  dns.zone.srv.clear();
  dns.zone.a.clear();
  dns.servfail = false;
  dns.zone.srv.set(SRV, [
    { target: 'a.echo.test', port: 7001, weight: 5 },
    { target: 'b.echo.test', port: 7002 },
    { target: 'backup.echo.test', port: 7003, priority: 10 },
  ]);
  dns.zone.a.set('a.echo.test', ['127.0.0.1']);
  dns.zone.a.set('b.echo.test', ['127.0.0.2', '127.0.0.3']);
  dns.zone.a.set('backup.echo.test', ['127.0.0.9']);
});

test.after(async () => {
  await Promise.all(registries.map((r) => r.close()));
  await dns.close();
});

test('resolve maps SRV records to instances: lowest priority group, targets resolved to addresses', async () => {
  const found = await registry().resolve('echo.test');
  assert.equal(hosts(found), ['127.0.0.1:7001', '127.0.0.2:7002', '127.0.0.3:7002']);
  const a = found[0]!;
  assert.is(a.name, 'echo.test');
  assert.is(a.id, '127.0.0.1:7001');
  assert.is(a.version, '0.0.0');
  assert.is(a.weight, 5);
  assert.equal(a.metadata, { srvTarget: 'a.echo.test', srvPriority: '0' });
});

test('srvName and version options; version ranges filter as on every registry', async () => {
  dns.zone.srv.set('svc-echo.local', [{ target: '127.0.0.5', port: 8000 }]);
  const reg = registry({ srvName: (name) => `svc-${name}.local`, version: '2.3.0' });
  assert.equal(hosts(await reg.resolve('echo', { version: '^2.1' })), ['127.0.0.5:8000']);
  assert.equal(await reg.resolve('echo', { version: '^3' }), []);
  assert.equal(await registry().resolve('echo.test', { version: '^1' }), [], "default version '0.0.0' is below ^1");
});

test('an unknown name is an empty set; a target without A records is kept as a host name', async () => {
  const reg = registry();
  assert.equal(await reg.resolve('missing.test'), []);
  dns.zone.srv.set(SRV, [{ target: 'noaddr.echo.test', port: 7001 }]);
  assert.equal(hosts(await reg.resolve('echo.test')), ['noaddr.echo.test:7001']);
});

test('watch polls: first the current set, then a snapshot per change', async () => {
  const errors: RpcError[] = [];
  const reg = registry({ pollMs: 20, onError: (err) => errors.push(err) });
  const watch = reg.watch('echo.test', { signal: AbortSignal.timeout(15_000) })[Symbol.asyncIterator]();
  assert.is(((await watch.next()).value as ServiceInstance[]).length, 3);
  dns.zone.srv.set(SRV, [{ target: 'a.echo.test', port: 7001 }]);
  assert.equal(hosts((await watch.next()).value as ServiceInstance[]), ['127.0.0.1:7001']);
  dns.servfail = true; // a failing poll is reported and the watch carries on
  const deadline = Date.now() + 15_000; // a bound, not a timing assertion
  while (errors.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.is(errors[0]?.code, Code.UNAVAILABLE);
  dns.servfail = false;
  dns.zone.srv.delete(SRV);
  assert.equal((await watch.next()).value, []);
  await watch.return?.();
});

test('register is FAILED_PRECONDITION: the DNS registry is read-only', async () => {
  const code = await codeOf(() => registry().register({ name: 'echo', version: '1.0.0', host: '127.0.0.1', port: 1 }));
  assert.is(code, Code.FAILED_PRECONDITION);
});

test('unreachable or failing DNS is UNAVAILABLE', async () => {
  const down = registry({ servers: [`127.0.0.1:${await unusedUdpPort()}`], timeoutMs: 500 });
  assert.is(await codeOf(() => down.resolve('echo.test')), Code.UNAVAILABLE);
  dns.servfail = true;
  assert.is(await codeOf(() => registry().resolve('echo.test')), Code.UNAVAILABLE);
  const watch = registry().watch('echo.test')[Symbol.asyncIterator]();
  assert.is(await codeOf(() => watch.next()), Code.UNAVAILABLE);
});

test('bad options are INVALID_ARGUMENT, thrown synchronously, naming the option', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ pollMs: 0 }, 'createDnsRegistry: options.pollMs must be a positive integer'],
    [{ servers: ['not an address'] }, 'createDnsRegistry: options.servers'],
    [{ servers: '127.0.0.1' }, 'options.servers must be an array'],
    [{ srvName: '_x._tcp' }, 'options.srvName must be a function'],
    [{ version: '' }, 'options.version'],
  ];
  for (const [options, text] of cases) {
    assert.throws(
      () => createDnsRegistry(options as never),
      (err: unknown) => err instanceof RpcError && err.code === Code.INVALID_ARGUMENT && err.message.includes(text),
      `expected INVALID_ARGUMENT mentioning '${text}' for ${JSON.stringify(options)}`,
    );
  }
});

test.run();
