/**
 * `avrpc serve --grpc-port`: a grpc-js client calls the served handlers, with the token of
 * `--token` as a Bearer credential.
 */
import * as grpc from '@grpc/grpc-js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadProtocol, type Protocol } from '../../src/index.js';
import { KITCHEN, KITCHEN_HANDLERS, avrpc, serveWithEnv } from '../helpers/cli.js';
import { avroClient, unary } from './grpc-client.js';

const test = suite('serve --grpc-port');

let protocol: Protocol;

test.before(async () => {
  protocol = await loadProtocol(KITCHEN, { longs: 'bigint' });
});

test('serve --grpc-port 0 prints the gRPC address and serves its handlers there', async () => {
  const served = await serveWithEnv({ AVRPC_TOKEN: 's3cret' }, KITCHEN, KITCHEN_HANDLERS, '--longs', 'bigint', '--grpc-port', '0');
  try {
    const m = /^grpc 127\.0\.0\.1:(\d+)$/m.exec(served.output());
    assert.ok(m !== null, served.output());
    const client = avroClient(protocol, Number(m[1]));
    try {
      const md = new grpc.Metadata();
      md.set('authorization', 'Bearer s3cret');
      const ok = await unary(client, 'fail', { reason: 'gone', code: 0n }, md);
      assert.is(ok.error?.code, grpc.status.NOT_FOUND);
      assert.is(ok.error?.details, 'not found: gone');
      const refused = await unary(client, 'fail', { reason: 'gone', code: 0n });
      assert.is(refused.error?.code, grpc.status.UNAUTHENTICATED);
    } finally {
      client.close();
    }
  } finally {
    assert.is(await served.stop(), 0);
  }
});

test('--grpc-port with --threads is a usage error', async () => {
  const r = await avrpc('serve', KITCHEN, KITCHEN_HANDLERS, '--grpc-port', '0', '--threads', '2');
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, '--grpc-port cannot be combined with --threads');
});

test.run();
