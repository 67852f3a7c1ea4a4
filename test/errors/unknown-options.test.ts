/**
 * Issue 14: an option name no resolver knows (`timeoutMS`, `maxConcurentCalls`) used to be ignored,
 * leaving its default in force. Every public options object now refuses it with INVALID_ARGUMENT,
 * naming its path and the closest known name.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Code,
  RpcError,
  createClient,
  createDnsRegistry,
  createEtcdRegistry,
  createHmacAuth,
  createPrometheusObserver,
  createServer,
  createStaticRegistry,
  describeServer,
  loadProtocol,
  parseProtocol,
  type Protocol,
} from '../../src/index.js';
import { closestName, editDistance } from '../../src/util/validate.js';
import { repoPath } from '../helpers/repo.js';

const test = suite('unknown option names');
let protocol: Protocol;

test.before(async () => {
  protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
});

/** The message of the INVALID_ARGUMENT that `f` throws or rejects with. */
async function refusal(f: () => unknown): Promise<string> {
  let caught: unknown;
  try {
    await f();
  } catch (err) {
    caught = err;
  }
  assert.instance(caught, RpcError, 'must throw an RpcError');
  assert.is((caught as RpcError).code, Code.INVALID_ARGUMENT, (caught as Error).message);
  return (caught as Error).message;
}

const any = (o: object): never => o as never;

test('createServer and createClient name the unknown option and the closest valid one', async () => {
  assert.is(
    await refusal(() => createServer(any({ protocol, handlers: {}, maxConcurentCalls: 10 }))),
    'createServer: options.maxConcurentCalls: unknown option; did you mean maxConcurrentCalls?',
  );
  assert.is(
    await refusal(() => createClient(any({ protocol, endpoints: ['127.0.0.1:1'], timeoutMS: 10 }))),
    'createClient: options.timeoutMS: unknown option; did you mean timeoutMs?',
  );
  assert.is(
    await refusal(() => createClient(any({ protocol, endpoints: ['127.0.0.1:1'], credential: 'x' }))),
    'createClient: options.credential: unknown option; did you mean credentials?',
  );
  // Far from every name: no guess.
  assert.is(
    await refusal(() => createServer(any({ protocol, handlers: {}, colour: 'blue' }))),
    'createServer: options.colour: unknown option',
  );
});

test('nested option objects: tls, workers, discovery, backoff', async () => {
  assert.is(
    await refusal(() => createServer(any({ protocol, handlers: {}, tls: { cert: 'c', key: 'k', rejectUnauthorised: false } }))),
    'createServer: options.tls.rejectUnauthorised: unknown option; did you mean rejectUnauthorized?',
  );
  assert.is(
    await refusal(() => createClient(any({ protocol, endpoints: ['127.0.0.1:1'], tls: { serverName: 'x' } }))),
    'createClient: options.tls.serverName: unknown option; did you mean servername?',
  );
  assert.is(
    await refusal(() =>
      createServer(any({ protocol, handlers: { echo: () => null }, workers: { module: 'x.js', messages: ['echo'], thread: 2 } })),
    ),
    'createServer: options.workers.thread: unknown option; did you mean threads?',
  );
  const registry = createStaticRegistry();
  try {
    assert.is(
      await refusal(() => createClient(any({ protocol, discovery: { registry, service: 'echo', versions: '^1' } }))),
      'createClient: options.discovery.versions: unknown option; did you mean version?',
    );
  } finally {
    await registry.close();
  }
  assert.is(
    await refusal(() => createClient(any({ protocol, endpoints: ['127.0.0.1:1'], backoff: { initialMS: 5 } }))),
    'createClient: options.backoff.initialMS: unknown option; did you mean initialMs?',
  );
});

test('per-call options reject the call, listen and close options throw', async () => {
  const server = createServer({ protocol, handlers: { echo: (r: { item: unknown }) => r.item } });
  assert.is(await refusal(() => server.listen(any({ prot: 0 }))), 'server.listen: options.prot: unknown option; did you mean port?');
  const { port } = await server.listen({ port: 0 });
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  try {
    assert.is(
      await refusal(() => client.call('echo', { item: {} }, any({ timeoutMS: 5 }))),
      'call: options.timeoutMS: unknown option; did you mean timeoutMs?',
    );
    assert.is(
      await refusal(() => client.call('echo', { item: {} }, any({ deadline: 5 }))),
      'call: options.deadline: unknown option; known options: timeoutMs, signal, metadata, onHeader, onTrailer, waitForReady',
    );
    const item = { id: 1, name: 'n', tags: [], score: 0, blob: Buffer.alloc(0) };
    assert.is((await client.call('echo', { item }, { timeoutMs: 1000, metadata: {} })).name, 'n', 'known options still work');
    assert.is(
      await refusal(() => server.close(any({ graceMS: 5 }))),
      'server.close: options.graceMS: unknown option; did you mean graceMs?',
    );
  } finally {
    await client.close();
    await server.close();
  }
});

test('the other public factories: HMAC auth, registries, observer, describe, protocols', async () => {
  assert.match(
    await refusal(() => createHmacAuth(any({ secret: 'x'.repeat(32), ttl: 5 }))),
    'createHmacAuth: options.ttl: unknown option; did you mean ttlMs?',
  );
  assert.match(
    await refusal(() => createEtcdRegistry(any({ hosts: 'http://127.0.0.1:2379', ttlSecs: 5 }))),
    'createEtcdRegistry: options.ttlSecs: unknown option; did you mean ttlSec?',
  );
  assert.match(
    await refusal(() => createDnsRegistry(any({ pollMS: 5 }))),
    'createDnsRegistry: options.pollMS: unknown option; did you mean pollMs?',
  );
  assert.match(
    await refusal(() => createPrometheusObserver(any({ sides: 'client' }))),
    'createPrometheusObserver: options.sides: unknown option; did you mean side?',
  );
  assert.match(
    await refusal(() => describeServer('127.0.0.1:1', any({ timeout: 5 }))),
    'describeServer: options.timeout: unknown option; did you mean timeoutMs?',
  );
  assert.match(
    await refusal(() => parseProtocol(protocol.text, any({ long: 'bigint' }))),
    'Protocol: options.long: unknown option; did you mean longs?',
  );
  const registry = createStaticRegistry();
  try {
    assert.match(
      await refusal(() => registry.resolve('echo', any({ versoin: '^1' }))),
      'resolve: options.versoin: unknown option; did you mean version?',
    );
  } finally {
    await registry.close();
  }
});

test('editDistance counts swaps as one edit; closestName ignores case and gives up when far', () => {
  assert.is(editDistance('maxConcurentCalls', 'maxConcurrentCalls'), 1);
  assert.is(editDistance('tiemoutMs', 'timeoutMs'), 1);
  assert.is(editDistance('', 'abc'), 3);
  assert.is(closestName('timeoutMS', ['timeoutMs', 'signal']), 'timeoutMs');
  assert.is(closestName('TIMEOUTMS', ['timeoutMs', 'signal']), 'timeoutMs');
  assert.is(closestName('zzz', ['timeoutMs', 'signal']), undefined);
});

test.run();
