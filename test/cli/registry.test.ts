import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code } from '../../src/index.js';
import { exitStatusFor } from '../../src/cli/options.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { KITCHEN, KITCHEN_HANDLERS, avrpc, serve } from '../helpers/cli.js';

/** `avrpc serve --registry etcd` and calls by service name, on a real etcd. */
const test = suite('avrpc with an etcd registry');
let etcd: EtcdServer;

test.before(async () => {
  etcd = await startEtcd();
});

test.after(async () => {
  await etcd.stop();
});

test('serve registers; call, describe and bench find it by name; SIGTERM deregisters', async () => {
  const at = ['--registry', 'etcd', '--etcd-endpoints', etcd.endpoint];
  const server = await serve(KITCHEN, KITCHEN_HANDLERS, '--longs', 'bigint', ...at, '--service', 'kitchen', '--service-version', '1.2.0');
  try {
    const called = await avrpc('call', 'kitchen', 'fail', '{"reason": "by name", "code": 0}', ...at, '--service-version', '^1');
    assert.is(called.status, exitStatusFor(Code.NOT_FOUND), called.stderr);
    assert.is(called.stderr, 'NOT_FOUND: not found: by name\n');
    const described = await avrpc('describe', 'kitchen', ...at);
    assert.is(described.status, 0, described.stderr);
    assert.match(described.stdout, /protocol Kitchen/);
    const bench = await avrpc('bench', 'kitchen', 'ping', '-n', '20', '-c', '2', '--json', ...at);
    assert.is(bench.status, 0, bench.stderr);
    assert.is((JSON.parse(bench.stdout) as { ok: number }).ok, 20);
    const wrongVersion = await avrpc('call', 'kitchen', 'ping', ...at, '--service-version', '^2');
    assert.is(wrongVersion.status, exitStatusFor(Code.UNAVAILABLE));
    assert.match(wrongVersion.stderr, /^UNAVAILABLE: no instance of service kitchen/);
  } finally {
    assert.is(await server.stop(), 0);
  }
  const gone = await avrpc('call', 'kitchen', 'ping', ...at);
  assert.is(gone.status, exitStatusFor(Code.UNAVAILABLE), 'deregistered on SIGTERM');
  const usage = await avrpc('call', 'kitchen', 'ping');
  assert.is(usage.status, 2, 'a usage error');
  assert.match(usage.stderr, /^error: .*needs --registry/);
});

test.run();
