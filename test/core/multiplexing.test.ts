import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client, type Protocol } from '../../src/index.js';
import { deferred, item, loadEcho, startServer, type Item, type Started } from '../helpers/echo-fixture.js';

/** Many calls on one socket, answered out of order: each caller gets its own answer. */
const test = suite('multiplexing');
let protocol: Protocol;

test.before(async () => {
  protocol = await loadEcho();
});

/** Deterministic shuffle (seeded LCG), so a failure reproduces. */
function shuffle<T>(list: T[], seed: number): T[] {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

test('10,000 concurrent calls on one socket, released in shuffled order, each matched to its caller', async () => {
  const N = 10_000;
  const held: Array<{ id: number; release: () => void }> = [];
  const allArrived = deferred();
  const peerPorts = new Set<number>();
  let started: Started | undefined;
  let client: Client | undefined;
  try {
    started = await startServer({
      protocol,
      handlers: {
        echo: (req: { item: Item }, ctx) => {
          peerPorts.add(ctx.peer.port);
          if (req.item.id < 0) return req.item; // warm-up call
          const d = deferred<Item>();
          held.push({ id: req.item.id, release: () => d.resolve(req.item) });
          if (held.length === N) allArrived.resolve();
          return d.promise;
        },
      },
    });
    client = createClient({ protocol, endpoints: [started.endpoint], connectionsPerEndpoint: 1 });
    await client.call('echo', { item: item(-1) });
    const calls: Array<Promise<Item>> = [];
    for (let i = 0; i < N; i++) calls.push(client.call<Item>('echo', { item: item(i) }));
    await allArrived.promise;
    assert.is(held.length, N);
    // Release in a shuffled order, a few hundred per macrotask, so answers leave in many batches.
    const order = shuffle(held, 42);
    const releaseOrder = order.map((h) => h.id);
    const settleOrder: number[] = [];
    calls.forEach(
      (p, i) =>
        void p.then(
          () => settleOrder.push(i),
          () => undefined,
        ),
    );
    for (let k = 0; k < order.length; k += 250) {
      for (const h of order.slice(k, k + 250)) h.release();
      await new Promise((r) => setImmediate(r));
    }
    const results = await Promise.all(calls);
    for (let i = 0; i < N; i++) {
      const r = results[i]!;
      if (r.id !== i || r.name !== `item-${i}` || r.score !== i / 4 || r.blob[0] !== (i & 0xff)) {
        assert.unreachable(`call ${i} got the answer for ${r.id}`);
      }
    }
    assert.equal(settleOrder, releaseOrder, 'callers settle in the order the server answered');
    assert.ok(
      settleOrder.some((id, pos) => id !== pos),
      'the answers really came out of order',
    );
    assert.is(peerPorts.size, 1, 'all calls travelled on one socket');
    assert.is(started.server.connections, 1);
  } finally {
    for (const h of held) h.release();
    await client?.close();
    await started?.server.close({ graceMs: 1000 });
  }
});

test('random handler delays: answers interleave arbitrarily and still reach their callers', async () => {
  const N = 2000;
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) % 5;
  const started = await startServer({
    protocol,
    handlers: {
      echo: (req: { item: Item }) => new Promise((resolve) => setTimeout(() => resolve(req.item), rand())),
    },
  });
  const client = createClient({ protocol, endpoints: [started.endpoint], connectionsPerEndpoint: 1 });
  try {
    const results = await Promise.all(Array.from({ length: N }, (_, i) => client.call<Item>('echo', { item: item(i) })));
    results.forEach((r, i) => assert.is(r.id, i));
    assert.equal(
      client.stats().map((s) => s.connections),
      [1],
    );
  } finally {
    await client.close();
    await started.server.close({ graceMs: 1000 });
  }
});

test('request ids wrap around past 2^32-1 and skip ids still in use', async () => {
  const { CallTable, ClientCall } = await import('../../src/client/call-table.js');
  const table = new CallTable();
  const owner = { attemptFailed: () => undefined };
  const msg = protocol.message('echo')!;
  const mk = () =>
    new ClientCall(
      msg,
      {},
      undefined,
      -1,
      () => undefined,
      () => undefined,
      owner,
    );
  table.setLastId(0xfffffffe);
  const a = mk();
  const b = mk();
  table.add(a);
  table.add(b);
  assert.equal([a.id, b.id], [0xffffffff, 1], 'wraps to 1, never 0');
  const c = mk();
  table.setLastId(0xfffffffe);
  table.add(c);
  assert.is(c.id, 2, 'skips 0xffffffff and 1, still in use');
});

test('call table: finds every call by id as it grows, ignores stale ids, drains oldest first', async () => {
  const { CallTable, ClientCall } = await import('../../src/client/call-table.js');
  const table = new CallTable();
  const owner = { attemptFailed: () => undefined };
  const msg = protocol.message('echo')!;
  const mk = () =>
    new ClientCall(
      msg,
      {},
      undefined,
      -1,
      () => undefined,
      () => undefined,
      owner,
    );
  // A long-lived call, then churn past the first slots, then enough at once to make it grow.
  const old = mk();
  table.add(old);
  for (let i = 0; i < 1000; i++) {
    const c = mk();
    table.add(c);
    assert.is(table.take(c.id), c);
    assert.is(table.take(c.id), undefined, 'taken twice');
  }
  const many = Array.from({ length: 300 }, mk);
  for (const c of many) table.add(c);
  const ids = new Set([old.id, ...many.map((c) => c.id)]);
  assert.is(ids.size, 301, 'ids unique');
  assert.is(table.size, 301);
  assert.is(table.take(old.id + 1_000_000), undefined, 'unknown id');
  const taken = many.filter((_, i) => i % 3 === 0);
  for (const c of taken) assert.is(table.take(c.id), c);
  const left = [old, ...many.filter((_, i) => i % 3 !== 0)];
  assert.is(table.size, left.length);
  assert.equal(table.drain(), left, 'oldest first');
  assert.is(table.size, 0);
  assert.equal(table.drain(), []);
});

test.run();
