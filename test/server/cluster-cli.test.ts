/**
 * `avrpc serve --threads N` as a real process: one `listening` line for N workers on one port, one
 * `/metrics` summing them, SIGTERM drains every worker (a running call finishes) and exits 0.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProtocol } from '../../src/codec/protocol.js';
import { createClient } from '../../src/client/client.js';
import { createEtcdRegistry } from '../../src/discovery/etcd-registry.js';
import { startEtcd } from '../helpers/etcd.js';
import { serve } from '../helpers/cli.js';
import { processGone } from '../helpers/cluster-app.js';

const IDL = 'protocol Pid { string pid(int delayMs); }';
const dir = mkdtempSync(join(tmpdir(), 'avrpc-threads-'));
const avdl = join(dir, 'pid.avdl');
const handlers = join(dir, 'pid-handlers.mjs');
writeFileSync(avdl, IDL);
// Each worker prints a line when a slow call starts, so that the test signals only once both run.
writeFileSync(
  handlers,
  `export default {
    async pid({ delayMs }) {
      if (delayMs > 0) { process.stdout.write('running ' + process.pid + '\\n'); await new Promise((r) => setTimeout(r, delayMs)); }
      return String(process.pid);
    },
  };\n`,
);

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('serve --threads 2: two workers on one port, one /metrics, SIGTERM drains both and exits 0', async () => {
  const served = await serve(avdl, handlers, '--threads', '2', '--metrics-port', '0', '--grace', '5s');
  try {
    assert.is(served.output().match(/^listening /gm)?.length, 1, served.output());
    assert.ok(served.metricsUrl !== undefined, served.output());
    const protocol = parseProtocol(IDL);
    const clients = [0, 1].map(() => createClient({ protocol, endpoints: [served.address] }));
    const pids = new Set<number>();
    for (let i = 0; i < 3; i++) for (const c of clients) pids.add(Number(await c.call('pid', { delayMs: 0 })));
    assert.is(pids.size, 2, 'both workers answered');

    const text = await (await fetch(served.metricsUrl)).text();
    assert.match(text, /^avrpc_calls_total\{side="server",message="pid",code="OK"\} 6$/m);

    const running = clients.map((c) => c.call('pid', { delayMs: 300 }));
    while ((served.output().match(/^running /gm) ?? []).length < 2) await new Promise((r) => setTimeout(r, 20));
    const status = served.stop();
    assert.equal((await Promise.all(running)).map(Number).sort(), [...pids].sort());
    assert.is(await status, 0);
    assert.match(served.output(), /^closed$/m);
    for (const pid of pids) await processGone(pid);
    await Promise.all(clients.map((c) => c.close()));
  } finally {
    await served.stop();
  }
});

test('serve --threads 2 --registry etcd: the one address registered once, by the primary; deregistered on SIGTERM', async () => {
  const etcd = await startEtcd();
  const registry = createEtcdRegistry({ hosts: etcd.endpoint });
  try {
    const at = ['--registry', 'etcd', '--etcd-endpoints', etcd.endpoint, '--service', 'pid', '--service-version', '1.0.0'];
    const served = await serve(avdl, handlers, '--threads', '2', ...at);
    process.on('exit', () => void served.stop());
    const instances = await registry.resolve('pid');
    assert.equal(
      instances.map((i) => `${i.host}:${i.port}`),
      [served.address],
    );
    const c = createClient({ protocol: parseProtocol(IDL), discovery: { registry, service: 'pid' }, connectionsPerEndpoint: 2 });
    assert.ok(Number(await c.call('pid', { delayMs: 0 })) > 0);
    await c.close();
    assert.is(await served.stop(), 0);
    assert.equal(await registry.resolve('pid'), []);
  } finally {
    await registry.close();
    await etcd.stop();
  }
});

test.run();
