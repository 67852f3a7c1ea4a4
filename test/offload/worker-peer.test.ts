/**
 * What a worker handler sees of `ctx.peer.principal`: a principal that structured clone refuses (it
 * holds a function) no longer fails every call of its connection with INTERNAL; the worker gets a
 * copy with its data and without its functions. A class instance arrives as its data (plain object).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, createServer } from '../../src/index.js';
import { cloneableCopy } from '../../src/server/offload/worker-peer.js';
import { bulkProtocol } from './bulk-protocol.js';

const protocol = bulkProtocol();

class User {
  constructor(
    readonly id: string,
    readonly roles: string[],
  ) {}
  can(role: string): boolean {
    return this.roles.includes(role);
  }
}

/** The `info` a worker handler reports about the principal, for a server whose `authenticate` returns `principal()`. */
async function seenByWorker(principal: () => unknown): Promise<Record<string, string>[]> {
  const warnings: string[] = [];
  const server = createServer({
    protocol,
    handlers: {},
    authenticate: () => principal(),
    logger: { debug() {}, info() {}, warn: (_: object, msg?: string) => warnings.push(msg ?? ''), error() {} },
    workers: { module: new URL('./bulk-handlers.js', import.meta.url), messages: ['echo'], threads: 1, offload: 'always' },
  });
  const { port } = await server.listen();
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], credentials: 'token' });
  try {
    const out: Record<string, string>[] = [];
    for (let i = 0; i < 3; i++)
      out.push(((await client.call('echo', { rows: [], action: 'principal' })) as { info: Record<string, string> }).info);
    return out;
  } finally {
    await client.close();
    await server.close();
  }
}

test('a principal holding a function reaches the worker without it, on every call', async () => {
  const infos = await seenByWorker(() => ({ id: 'alice', roles: ['admin'], can: () => true, nested: { level: 3, check: () => false } }));
  for (const info of infos) {
    assert.is(info.type, 'object');
    assert.equal(JSON.parse(info.json!), { id: 'alice', roles: ['admin'], nested: { level: 3 } });
  }
  // Unchanged: a class instance arrives as its data (structured clone drops prototypes), a plain
  // object or a string as it is.
  assert.equal(JSON.parse((await seenByWorker(() => new User('bob', ['reader'])))[0]!.json!), { id: 'bob', roles: ['reader'] });
  assert.equal(JSON.parse((await seenByWorker(() => ({ id: 'carol', n: 1 })))[0]!.json!), { id: 'carol', n: 1 });
  assert.is((await seenByWorker(() => 'dave'))[0]!.json, '"dave"');
});

test('cloneableCopy drops functions and symbols, keeps cloneable values and cycles', () => {
  const when = new Date(0);
  const p: Record<string, unknown> = { id: 'x', at: when, list: [1, () => 2, { f: () => 3, k: 'v' }], s: Symbol('s'), big: 10n };
  p.self = p;
  const out = cloneableCopy(p, new Map()) as Record<string, unknown>;
  const clone = structuredClone(out) as Record<string, unknown>;
  assert.is(clone.id, 'x');
  assert.equal(clone.at, when);
  assert.equal(clone.list, [1, undefined, { k: 'v' }]);
  assert.not.ok('s' in clone);
  assert.is(clone.big, 10n);
  assert.is(clone.self, clone);
});

test.run();
