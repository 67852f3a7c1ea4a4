/**
 * The resolver cache: peer protocols and resolutions keyed by fingerprint (not by name), parsed and
 * built once, and bounded (LRU) so that peers with ever new protocols cannot grow it. Real protocols
 * and real avsc resolvers; avsc is only counted, not replaced.
 */
import { createHash } from 'node:crypto';
import avro from 'avsc';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ResolverCache } from '../../src/codec/resolver-cache.js';
import { parseProtocol } from '../../src/index.js';

const test = suite('resolver cache');
const md5 = (text: string): string => createHash('md5').update(text).digest('hex');

const local = parseProtocol('@namespace("t") protocol P { record R { long id; } R get(R r); }');
/** Protocol `P` version `n`: R gains a field with a default, so every version has its own fingerprint. */
const version = (n: number): string =>
  JSON.stringify({
    protocol: 'P',
    namespace: 't',
    types: [
      {
        type: 'record',
        name: 'R',
        fields: [
          { name: 'id', type: 'long' },
          { name: `f${n}`, type: 'int', default: n },
        ],
      },
    ],
    messages: { get: { request: [{ name: 'r', type: 'R' }], response: 'R' } },
  });

/** Runs `fn` while counting avsc protocol parses and resolver builds. */
function counting<T>(fn: () => T): { value: T; parses: number; resolvers: number } {
  const service = avro.Service as unknown as { forProtocol: (...a: unknown[]) => unknown };
  const type = avro.Type.prototype as unknown as { createResolver: (...a: unknown[]) => unknown };
  const forProtocol = service.forProtocol;
  const createResolver = type.createResolver;
  const counts = { parses: 0, resolvers: 0 };
  service.forProtocol = function (this: unknown, ...a: unknown[]) {
    counts.parses++;
    return forProtocol.apply(this, a);
  };
  type.createResolver = function (this: unknown, ...a: unknown[]) {
    counts.resolvers++;
    return createResolver.apply(this, a);
  };
  try {
    return { value: fn(), ...counts };
  } finally {
    service.forProtocol = forProtocol;
    type.createResolver = createResolver;
  }
}

test('a peer text is parsed once: learning it again (a reconnect) returns the same protocol without parsing', () => {
  const cache = new ResolverCache(local);
  const first = counting(() => cache.learn(version(1)));
  assert.is(first.parses, 1);
  const again = counting(() => cache.learn(version(1)));
  assert.is(again.parses, 0, 'no second parse');
  assert.is(again.value, first.value);
  assert.is(cache.protocol(first.value.id), first.value);
});

test('resolutions are built once per fingerprint', () => {
  const cache = new ResolverCache(local);
  const remote = cache.learn(version(1));
  // Each side builds what it reads on first use (a server its requests, a client its responses).
  const built = counting(() => {
    const codec = cache.codec(remote);
    void codec.requests;
    void codec.responses;
    return codec;
  });
  assert.ok(built.resolvers > 0, 'the first connection builds resolvers');
  assert.ok(built.value.requests[0]!.resolver !== undefined, 'a real resolver for a different schema');
  const reused = counting(() => {
    const codec = cache.codec(cache.learn(version(1)));
    void codec.requests;
    void codec.responses;
    return codec;
  });
  assert.is(reused.resolvers, 0);
  assert.is(reused.value, built.value);
});

test('keyed by fingerprint, not by name: the same protocol name with another text is another entry', () => {
  const cache = new ResolverCache(local);
  const a = cache.learn(version(1));
  const b = cache.learn(version(1).replace('"protocol":"P"', '"protocol": "P"'));
  assert.is(a.name, b.name);
  assert.is.not(a.id, b.id);
  assert.is.not(cache.codec(a), cache.codec(b));
});

test('our own protocol is known without a parse, and never evicted', () => {
  const cache = new ResolverCache(local, 2);
  const mine = counting(() => cache.learn(local.text));
  assert.is(mine.parses, 0);
  assert.is(mine.value, local);
  for (let n = 0; n < 5; n++) cache.learn(version(n));
  assert.is(cache.protocol(local.id), local);
  const same = cache.codec(local);
  assert.is(same.requests[0]!.resolver, undefined, 'same fingerprint: the direct path');
});

test('bounded: past maxEntries the least recently used peer protocols and resolutions are dropped', () => {
  const cache = new ResolverCache(local, 2);
  const p1 = cache.learn(version(1));
  const c1 = cache.codec(p1);
  const p2 = cache.learn(version(2));
  cache.codec(p2);
  assert.is(cache.protocol(p1.id), p1, 'touches p1: p2 is now the least recently used');
  assert.is(cache.codec(p1), c1);
  const p3 = cache.learn(version(3));
  cache.codec(p3);
  assert.is(cache.protocol(p2.id), undefined, 'p2 evicted');
  assert.is(cache.protocol(p1.id), p1);
  assert.is(cache.protocol(p3.id), p3);
  for (let n = 10; n < 50; n++) cache.codec(cache.learn(version(n)));
  const kept = [1, 3, ...Array.from({ length: 40 }, (_, i) => 10 + i)].filter((n) => cache.protocol(md5(version(n))) !== undefined);
  assert.equal(kept, [48, 49], 'never more than maxEntries');
  const rebuilt = counting(() => cache.learn(version(2)));
  assert.is(rebuilt.parses, 1, 'an evicted protocol is parsed again when it comes back');
});

test('a bad peer text is refused with INVALID_ARGUMENT and not cached', () => {
  const cache = new ResolverCache(local);
  for (const text of ['{"protocol"', '{"protocol":"X","messages":{"m":{"request":[],"response":"Nope"}}}']) {
    const err = (() => {
      try {
        cache.learn(text);
      } catch (e) {
        return e as { code?: unknown };
      }
      return undefined;
    })();
    assert.is(err?.code, 3, text);
  }
});

test.run();
