/**
 * The worker module is checked at `listen`, not at the first call: a module that does not load, or
 * lacks a listed message's handler, makes `listen` reject with INVALID_ARGUMENT naming it (and the
 * message), and leaves no worker thread behind (the runner fails a file whose process does not exit).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createServer, RpcError, type Server } from '../../src/index.js';
import { bulkProtocol } from './bulk-protocol.js';

const protocol = bulkProtocol();

async function listenError(server: Server): Promise<RpcError> {
  try {
    await server.listen();
  } catch (err) {
    assert.instance(err, RpcError);
    return err as RpcError;
  } finally {
    await server.close();
  }
  assert.unreachable('listen should reject');
  throw new Error('unreachable');
}

test('listen rejects a worker module that does not load, naming it', async () => {
  const module = new URL('./no-such-module.js', import.meta.url);
  const err = await listenError(
    createServer({ protocol, handlers: {}, workers: { module, messages: ['echo'], threads: 1, offload: 'always' } }),
  );
  assert.is(err.code, Code.INVALID_ARGUMENT);
  assert.match(err.message, 'options.workers.module');
  assert.match(err.message, module.href);
  assert.match(err.message, 'does not load');
});

test('listen rejects a worker module without a handler for a listed message, naming both', async () => {
  const module = new URL('./no-echo-handlers.js', import.meta.url);
  const err = await listenError(
    createServer({ protocol, handlers: {}, workers: { module, messages: ['echo'], threads: 1, offload: 'always' } }),
  );
  assert.is(err.code, Code.INVALID_ARGUMENT);
  assert.match(err.message, module.href);
  assert.match(err.message, "exports no function for message 'echo'");
});

test("the check covers 'auto' too (large requests would reach the worker)", async () => {
  const module = new URL('./no-echo-handlers.js', import.meta.url);
  const echo = (): never => {
    throw new Error('inline');
  };
  const err = await listenError(
    createServer({ protocol, handlers: { echo }, workers: { module, messages: ['echo'], threads: 1, offload: 'auto' } }),
  );
  assert.is(err.code, Code.INVALID_ARGUMENT);
  assert.match(err.message, "'echo'");
});

test.run();
