import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createEtcdRegistry, type Registry } from '../../src/index.js';
import { USAGE_EXIT, exitStatusFor } from '../../src/cli/options.js';
import type { ListedService } from '../../src/cli/list.js';
import { Code } from '../../src/index.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { freePort, startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { KITCHEN, KITCHEN_HANDLERS, avrpc, serve, type Served } from '../helpers/cli.js';

/** `avrpc list` as a process, on a real etcd and a real DNS server, with `avrpc serve` processes as instances. */
const test = suite('avrpc list');
let etcd: EtcdServer;
let at: string[];

test.before(async () => {
  etcd = await startEtcd();
  at = ['--etcd-endpoints', etcd.endpoint];
});

test.after(async () => {
  await etcd.stop();
});

const listed = (stdout: string): ListedService[] => (JSON.parse(stdout) as { services: ListedService[] }).services;

test('etcd: every service, its instances with versions, and health by handshake', async () => {
  const register = ['--registry', 'etcd', ...at];
  const a = await serve(KITCHEN, KITCHEN_HANDLERS, ...register, '--service', 'kitchen', '--service-version', '1.2.0');
  const b = await serve(KITCHEN, KITCHEN_HANDLERS, ...register, '--service', 'pantry', '--service-version', '2.0.1');
  // An instance whose server is gone (a port nothing listens on): listed, and its health says so.
  const registry: Registry = createEtcdRegistry({ hosts: etcd.endpoint });
  const deadPort = await freePort();
  await registry.register({ name: 'kitchen', version: '0.9.0', host: '127.0.0.1', port: deadPort, id: 'dead', metadata: { zone: 'z1' } });
  try {
    const r = await avrpc('list', 'etcd', ...at, '--json');
    assert.is(r.status, 0, r.stderr);
    const services = listed(r.stdout);
    assert.equal(
      services.map((s) => s.name),
      ['kitchen', 'pantry'],
    );
    const kitchen = services[0]!.instances;
    assert.is(kitchen.length, 2);
    const live = kitchen.find((i) => i.version === '1.2.0')!;
    assert.is(`${live.host}:${live.port}`, a.address);
    assert.equal(
      { status: live.health.status, protocol: (live.health as { protocol: string }).protocol },
      { status: 'SERVING', protocol: 'avrpc.cli.Kitchen' },
    );
    const dead = kitchen.find((i) => i.id === 'dead')!;
    assert.is(dead.version, '0.9.0');
    assert.equal(dead.metadata, { zone: 'z1' });
    assert.is(dead.health.status, 'UNAVAILABLE');
    assert.is(services[1]!.instances[0]!.version, '2.0.1');
    assert.is(`${services[1]!.instances[0]!.host}:${services[1]!.instances[0]!.port}`, b.address);

    const text = await avrpc('list', 'etcd', ...at);
    assert.is(text.status, 0, text.stderr);
    assert.match(text.stdout, /^kitchen: 2 instance\(s\)$/m);
    assert.match(
      text.stdout,
      new RegExp(`^  1\\.2\\.0  ${a.address}  weight 1  SERVING \\(avrpc\\.cli\\.Kitchen, [\\d.]+ ms\\)  id `, 'm'),
    );
    assert.match(text.stdout, new RegExp(`^  0\\.9\\.0  127\\.0\\.0\\.1:${deadPort}  weight 1  UNAVAILABLE: .*  id dead  zone=z1$`, 'm'));
    assert.match(text.stdout, /^pantry: 1 instance\(s\)$/m);

    const named = listed((await avrpc('list', 'etcd', 'kitchen', ...at, '--service-version', '^1', '--no-health', '--json')).stdout);
    assert.is(named.length, 1);
    assert.equal(
      named[0]!.instances.map((i) => [i.version, i.health.status]),
      [['1.2.0', 'UNCHECKED']],
    );
  } finally {
    await registry.close();
    assert.is(await a.stop(), 0);
    assert.is(await b.stop(), 0);
  }
  const after = await avrpc('list', 'etcd', ...at);
  assert.is(after.stdout, 'no services in the etcd registry\n', 'deregistered on SIGTERM');
});

test('dns: named services from SRV records, with health; DNS cannot list, so a name is required', async () => {
  const dns = await startDnsServer();
  const server: Served = await serve(KITCHEN, KITCHEN_HANDLERS);
  try {
    const port = Number(server.address.split(':')[1]);
    dns.zone.srv.set('_avrpc._tcp.kitchen', [{ target: 'k.test', port }]);
    dns.zone.a.set('k.test', ['127.0.0.1']);
    const r = await avrpc('list', 'dns', 'kitchen', 'nothing', '--dns-server', dns.address, '--json');
    assert.is(r.status, 0, r.stderr);
    const [kitchen, nothing] = listed(r.stdout);
    assert.is(kitchen!.instances.length, 1);
    assert.is(kitchen!.instances[0]!.port, port);
    assert.is(kitchen!.instances[0]!.health.status, 'SERVING');
    assert.equal(nothing, { name: 'nothing', instances: [] });
    const text = await avrpc('list', 'dns', 'nothing', '--dns-server', dns.address);
    assert.is(text.stdout, 'nothing: no instances\n');
    const none = await avrpc('list', 'dns', '--dns-server', dns.address);
    assert.is(none.status, USAGE_EXIT);
    assert.match(none.stderr, /DNS cannot list its services: name them/);
  } finally {
    await dns.close();
    await server.stop();
  }
});

test('usage errors exit 2; an etcd nobody runs is UNAVAILABLE', async () => {
  const kind = await avrpc('list', 'consul');
  assert.is(kind.status, USAGE_EXIT);
  assert.match(kind.stderr, /Allowed choices are etcd, dns/);
  const clash = await avrpc('list', 'etcd', '--registry', 'dns');
  assert.is(clash.status, USAGE_EXIT);
  const down = await avrpc('list', 'etcd', '--etcd-endpoints', `http://127.0.0.1:${await freePort()}`);
  assert.is(down.status, exitStatusFor(Code.UNAVAILABLE), down.stderr);
  assert.match(down.stderr, /^UNAVAILABLE: /);
});

test.run();
