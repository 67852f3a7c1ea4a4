/**
 * `server.listen({ register })`: when the registry refuses the registration after the socket is
 * bound, listen rejects with the registry's error and leaves nothing bound, so the port is free and
 * listen may be tried again.
 */
import { connect, createServer as createNetServer } from 'node:net';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer } from '../../src/server/server.js';
import { createStaticRegistry } from '../../src/discovery/index.js';
import type { Registry } from '../../src/discovery/registry.js';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { poolProtocol, rejection } from '../helpers/pool-fixture.js';

const test = suite('listen with registration');

const handlers = { read: () => 'x', write: () => 'x', spin: () => 'x' };

/** A registry whose register fails as an unreachable etcd would. */
function refusingRegistry(): Registry & { attempts: number; ports: number[] } {
  const inner = createStaticRegistry();
  const r = {
    attempts: 0,
    ports: [] as number[],
    register: async (input: { port: number }) => {
      r.attempts++;
      r.ports.push(input.port);
      throw new RpcError(Code.UNAVAILABLE, 'registry unreachable');
    },
    resolve: inner.resolve.bind(inner),
    watch: inner.watch.bind(inner),
    close: inner.close.bind(inner),
  };
  return r as unknown as Registry & { attempts: number; ports: number[] };
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
async function accepting(port: number): Promise<boolean> {
  const socket = connect({ host: '127.0.0.1', port });
  const result = await new Promise<boolean>((resolve) => {
    socket.once('connect', () => resolve(true));
    socket.once('error', () => resolve(false));
  });
  socket.destroy();
  return result;
}

test('a refused registration rejects listen and closes the bound socket; the same port can be bound again', async () => {
  const registry = refusingRegistry();
  const server = createServer({ protocol: poolProtocol(), handlers });
  const err = await rejection(server.listen({ host: '127.0.0.1', port: 0, register: { registry, name: 'pool', version: '1.0.0' } }));
  assert.is(err.code, Code.UNAVAILABLE, err.message);
  assert.is(err.message, 'registry unreachable');
  assert.is(registry.attempts, 1);
  const port = registry.ports[0]!;
  assert.ok(port > 0);
  assert.is(await accepting(port), false, 'nothing listens on the port any more');
  // The port is free: another socket can take it.
  const other = createNetServer();
  other.listen(port, '127.0.0.1');
  await once(other, 'listening');
  other.close();
  await once(other, 'close');
  // And the server may listen again (here without registering).
  const bound = await server.listen({ host: '127.0.0.1', port: 0 });
  assert.ok(await accepting(bound.port));
  await server.close({ graceMs: 100 });
  await registry.close();
});

test('a failed bind (port in use) rejects listen, and listen may be tried again', async () => {
  const taken = createNetServer();
  taken.listen(0, '127.0.0.1');
  await once(taken, 'listening');
  const port = (taken.address() as { port: number }).port;
  const server = createServer({ protocol: poolProtocol(), handlers });
  const err = await rejection(server.listen({ host: '127.0.0.1', port }));
  assert.match(err.message, 'EADDRINUSE');
  taken.close();
  await once(taken, 'close');
  const bound = await server.listen({ host: '127.0.0.1', port: 0 });
  assert.ok(bound.port > 0);
  await server.close({ graceMs: 100 });
});

test.run();
