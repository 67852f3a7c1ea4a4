import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { makeTestCerts, type TestCerts } from '../helpers/certs.js';
import { pattern, startPair } from '../helpers/large.js';

/** Fragments over TLS: the same writer (corked writes of views) and reader, under a TLS socket. */
const test = suite('large messages over TLS');
const MiB = 1024 * 1024;
let certs: TestCerts;

test.before(async () => {
  certs = await makeTestCerts();
});

test.after(async () => {
  await certs.cleanup();
});

test('multi-MB echo and interleaving over TLS, compressed and fragmented', async () => {
  const pair = await startPair(
    { tls: { cert: certs.serverCert, key: certs.serverKey }, compressAboveBytes: 4096, maxFrameBytes: MiB },
    { tls: { ca: certs.ca }, compressAboveBytes: 4096, maxFrameBytes: MiB },
  );
  try {
    const data = pattern(6 * MiB, 3);
    const order: string[] = [];
    const big = pair.client.call('echo', { data }).then((out) => {
      order.push('large');
      return out as Buffer;
    });
    const small = pair.client.call('ping', { s: 'tls' }).then(() => order.push('small'));
    const [out] = await Promise.all([big, small]);
    assert.ok(out.equals(data));
    assert.equal(order, ['small', 'large']);
    assert.is(pair.serverCounters.connections, 1);
  } finally {
    await pair.close();
  }
});

test.run();
