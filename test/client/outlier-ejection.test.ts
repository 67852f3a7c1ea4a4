/**
 * Outlier detection: an endpoint that accepts connections but fails its calls is ejected from
 * balancing after `ejectAfterFailures` consecutive failures, and probed back after `ejectMs`.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import { Code } from '../../src/errors/code.js';
import { poolProtocol, rejection, startServer, until, type TestServer } from '../helpers/pool-fixture.js';

const test = suite('outlier ejection');
let good: TestServer;
let bad: TestServer;
let client: Client;

test.before(async () => {
  good = await startServer('good');
  bad = await startServer('bad');
});

test.after(async () => {
  await client?.close();
  await Promise.all([good.close(), bad.close()]);
});

test('consecutive failures eject an endpoint; it gets no calls until probed back, then serves again', async () => {
  client = createClient({
    protocol: poolProtocol(),
    endpoints: [good.endpoint, bad.endpoint],
    ejectAfterFailures: 3,
    ejectMs: 400,
  });
  await client.call('write', { delayMs: 0 });
  await until(() => client.stats().every((e) => e.ready === 1), 5000, 'both ready');
  bad.failWith = new Error('disk on fire');

  // Sequential calls: least-connections ties between the two, so "bad" gets about half until ejected.
  let internal = 0;
  let ok = 0;
  while ((bad.ran.write ?? 0) < 3) {
    const r = await client.call('write', { delayMs: 0 }).then(
      () => 'ok',
      (e: unknown) => e,
    );
    if (r === 'ok') ok++;
    else if ((r as { code?: number }).code === Code.INTERNAL) internal++;
    else throw r;
    assert.ok(ok + internal < 500, 'bad server never picked');
  }
  assert.is(internal, 3, 'each failure reached the caller once (INTERNAL is not retried)');
  const badStats = client.stats().find((e) => e.endpoint === bad.endpoint)!;
  assert.is(badStats.ejected, true, 'ejected after 3 consecutive failures');
  assert.is(badStats.ready, 1, 'its socket stays open: ejected, not disconnected');

  const ranBefore = bad.ran.write;
  for (let i = 0; i < 50; i++) assert.is(await client.call('write', { delayMs: 0 }), 'good');
  assert.is(bad.ran.write, ranBefore, 'no calls while ejected');

  // It recovers; after ejectMs it is probed again and takes calls.
  bad.failWith = undefined;
  let backOnBad = 0;
  await until(() => client.stats().find((e) => e.endpoint === bad.endpoint)!.ejected === false, 5000, 'ejection over');
  for (let i = 0; i < 200 && backOnBad === 0; i++) {
    if ((await client.call('write', { delayMs: 0 })) === 'bad') backOnBad++;
  }
  assert.is(backOnBad, 1, 'probed back and serving');
});

test('ejection never removes the last endpoints: with every endpoint failing, calls still reach one', async () => {
  good.failWith = new Error('also broken');
  bad.failWith = new Error('still broken');
  const before = (good.ran.read ?? 0) + (bad.ran.read ?? 0);
  for (let i = 0; i < 20; i++) {
    const err = await rejection(client.call('read', { delayMs: 0 }));
    assert.is(err.code, Code.INTERNAL, err.message);
  }
  assert.is((good.ran.read ?? 0) + (bad.ran.read ?? 0) - before, 20, 'every call reached a server');
  good.failWith = undefined;
  bad.failWith = undefined;
});

test.run();
