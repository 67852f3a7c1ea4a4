import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { IdMap } from '../../src/connection/id-map.js';

/** The id map connections keep their calls in: it must agree with a Map on any sequence of operations. */
const test = suite('id-map');

/** A small deterministic PRNG (xorshift32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function agree(ids: (r: () => number, step: number) => number, seed: number): void {
  const r = rng(seed);
  const map = new IdMap<string>();
  const ref = new Map<number, string>();
  for (let step = 0; step < 20_000; step++) {
    const id = ids(r, step);
    const op = r() % 8;
    if (op < 4) {
      map.set(id, `v${step}`);
      ref.set(id, `v${step}`);
    } else if (op < 7) {
      assert.is(map.delete(id), ref.delete(id), `delete ${id} at step ${step}`);
    } else {
      assert.is(map.get(id), ref.get(id), `get ${id} at step ${step}`);
      assert.is(map.has(id), ref.has(id));
    }
    assert.is(map.size, ref.size);
  }
  for (const [id, v] of ref) assert.is(map.get(id), v);
  assert.equal([...map.values()].sort(), [...ref.values()].sort());
  map.clear();
  assert.is(map.size, 0);
  assert.is(map.get([...ref.keys()][0] ?? 1), undefined);
}

test('agrees with a Map: ids from a small range (long probe runs, many deletions)', () => {
  agree((r) => r() % 300, 1);
});

test('agrees with a Map: sequential ids near the u32 wrap, a window in flight', () => {
  agree((r, step) => (0xffffff00 + step - (r() % 200)) >>> 0, 2);
});

test('agrees with a Map: ids with a power-of-two stride, and random u32 ids', () => {
  agree((r) => (r() % 500) * 1024, 3);
  agree((r) => r(), 4);
});

test('values() is a snapshot: deleting while going through it is safe', () => {
  const map = new IdMap<number>();
  for (let id = 1; id <= 200; id++) map.set(id, id);
  for (const v of map.values()) map.delete(v);
  assert.is(map.size, 0);
  assert.equal(map.values(), []);
});

test.run();
