import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { createStaticRegistry, versionSatisfies, type ServiceInstance } from '../../src/discovery/index.js';

const test = suite('static registry');

const base = { name: 'echo', host: '127.0.0.1', port: 7000 };
const versions = (list: ServiceInstance[]): string[] => list.map((i) => i.version).sort();

/** Asserts `fn` throws (or rejects with) an RpcError with `code` whose message contains `text`. */
async function expectRpcError(fn: () => unknown, code: number, text: string): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assert.instance(err, RpcError);
    assert.is((err as RpcError).code, code, (err as Error).message);
    assert.ok((err as Error).message.includes(text), (err as Error).message);
    return;
  }
  assert.unreachable(`expected RpcError ${code}`);
}

/** Resolves with 'idle' when `promise` has not settled after the pending I/O and microtasks ran. */
function stillPending(promise: Promise<unknown>): Promise<unknown> {
  return Promise.race([promise, new Promise((resolve) => setImmediate(resolve, 'idle'))]);
}

test('register fills defaults; resolve returns frozen instances; deregister removes them once', async () => {
  const registry = createStaticRegistry();
  const reg = await registry.register({ ...base, version: '1.0.0' });
  assert.type(reg.instance.id, 'string');
  assert.ok(reg.instance.id.length > 0);
  assert.is(reg.instance.weight, 1);
  assert.equal(reg.instance.metadata, {});
  const [found] = await registry.resolve('echo');
  assert.equal(found, reg.instance);
  assert.ok(Object.isFrozen(found));
  assert.equal(await registry.resolve('other'), []);
  await reg.deregister();
  await reg.deregister(); // idempotent
  assert.equal(await registry.resolve('echo'), []);
  await registry.close();
});

test("semver: '^2.1' picks 2.3.0, not 3.0.0 nor 2.0.9; non-semver versions match only 'any'", async () => {
  const registry = createStaticRegistry(['2.0.9', '2.3.0', '3.0.0', 'banana'].map((version) => ({ ...base, version })));
  assert.equal(versions(await registry.resolve('echo', { version: '^2.1' })), ['2.3.0']);
  assert.equal(versions(await registry.resolve('echo', { version: '>=2' })), ['2.0.9', '2.3.0', '3.0.0']);
  assert.equal(versions(await registry.resolve('echo')), ['2.0.9', '2.3.0', '3.0.0', 'banana']);
  assert.ok(versionSatisfies('v2.4', '^2.1'), 'short forms are completed');
  assert.not.ok(versionSatisfies('build-2024', '>=1'), 'arbitrary text is never coerced');
  assert.not.ok(versionSatisfies('2.4.0-beta.1', '^2.1'), 'prereleases need a range that names them');
  await expectRpcError(() => registry.resolve('echo', { version: 'not a range' }), Code.INVALID_ARGUMENT, 'resolve: options.version');
  await registry.close();
});

test('ids are unique per service name', async () => {
  const registry = createStaticRegistry([{ ...base, version: '1.0.0', id: 'a' }]);
  await expectRpcError(() => registry.register({ ...base, version: '2.0.0', id: 'a' }), Code.ALREADY_EXISTS, 'echo/a');
  const other = await registry.register({ ...base, name: 'other', version: '1.0.0', id: 'a' });
  assert.is(other.instance.id, 'a');
  await registry.close();
});

test('watch yields the current set first, then one snapshot per change in range', async () => {
  const registry = createStaticRegistry([{ ...base, version: '2.3.0', id: 'a' }]);
  const it = registry.watch('echo', { version: '^2.1' })[Symbol.asyncIterator]();
  assert.equal(versions((await it.next()).value as ServiceInstance[]), ['2.3.0']);

  const next = it.next();
  await registry.register({ ...base, version: '3.0.0', id: 'b' }); // out of range: no snapshot
  assert.is(await stillPending(next), 'idle');
  const c = await registry.register({ ...base, version: '2.5.0', id: 'c' });
  assert.equal(versions((await next).value as ServiceInstance[]), ['2.3.0', '2.5.0']);
  await c.deregister();
  assert.equal(versions((await it.next()).value as ServiceInstance[]), ['2.3.0']);
  await it.return?.();
  assert.equal(await it.next(), { done: true, value: undefined });
  await registry.close();
});

test('watch ends when its signal aborts, and every watch ends when the registry closes', async () => {
  const registry = createStaticRegistry([{ ...base, version: '1.0.0' }]);
  const controller = new AbortController();
  const seen: number[] = [];
  const aborted = (async () => {
    for await (const snapshot of registry.watch('echo', { signal: controller.signal })) {
      seen.push(snapshot.length);
      controller.abort();
    }
  })();
  const closedLoop = (async () => {
    let count = 0;
    for await (const snapshot of registry.watch('echo')) count += snapshot.length;
    return count;
  })();
  await aborted;
  assert.equal(seen, [1]);
  await registry.close();
  assert.is(await closedLoop, 1);
  await expectRpcError(() => registry.resolve('echo'), Code.FAILED_PRECONDITION, 'closed');
  await expectRpcError(() => registry.watch('echo'), Code.FAILED_PRECONDITION, 'closed');
  await expectRpcError(() => registry.register({ ...base, version: '1.0.0' }), Code.FAILED_PRECONDITION, 'closed');
});

test('an already aborted signal yields nothing', async () => {
  const registry = createStaticRegistry([{ ...base, version: '1.0.0' }]);
  const it = registry.watch('echo', { signal: AbortSignal.abort() })[Symbol.asyncIterator]();
  assert.equal(await it.next(), { done: true, value: undefined });
  await registry.close();
});

test('bad input is INVALID_ARGUMENT naming the offending path', async () => {
  await expectRpcError(
    () =>
      createStaticRegistry([
        { ...base, version: '1.0.0' },
        { ...base, version: '1.0.0', port: 0 },
      ]),
    Code.INVALID_ARGUMENT,
    'createStaticRegistry: instances[1].port',
  );
  const registry = createStaticRegistry();
  await expectRpcError(() => registry.register({ ...base, version: '1/0' }), Code.INVALID_ARGUMENT, 'register: input.version');
  await expectRpcError(() => registry.register({ ...base, version: '1.0.0', weight: -1 }), Code.INVALID_ARGUMENT, 'input.weight');
  await expectRpcError(
    () => registry.register({ ...base, version: '1.0.0', metadata: { zone: 1 as unknown as string } }),
    Code.INVALID_ARGUMENT,
    'input.metadata.zone',
  );
  await expectRpcError(() => registry.resolve(''), Code.INVALID_ARGUMENT, 'resolve: name');
  await expectRpcError(() => registry.watch('echo', { version: '^^' }), Code.INVALID_ARGUMENT, 'watch: options.version');
  await registry.close();
});

test.run();
