/**
 * loadProtocol: a path or a file URL; Avro IDL with its imports (idl and schema) resolved relative to
 * the importing file, or protocol JSON (.avpr); every bad source rejects with an RpcError
 * INVALID_ARGUMENT naming the file and the reason (fixtures in test/fixtures/protocols).
 */
import { relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, Protocol, RpcError, createClient, createServer, loadProtocol, parseProtocol } from '../../src/index.js';
import { repoPath } from '../helpers/repo.js';

const test = suite('loadProtocol');
const SHOP_IDL = repoPath('test/fixtures/protocols/shop.avdl');
const SHOP_JSON = repoPath('test/fixtures/protocols/shop.avpr');
const bad = (file: string): string => repoPath('test/fixtures/protocols/bad', file);

/** The RpcError `p` rejects with (fails on a resolve or on any other error class). */
async function refusal(p: Promise<unknown>): Promise<RpcError> {
  const got = await p.then(
    (v) => new Error(`resolved with ${String(v)}`),
    (e: unknown) => e,
  );
  if (!(got instanceof RpcError)) throw new Error(`expected an RpcError, got ${String(got)}`);
  return got;
}

test('a .avdl path: imports (an IDL file that imports a schema file) are resolved', async () => {
  const p = await loadProtocol(SHOP_IDL);
  assert.is(p.name, 'avrpc.fixture.Shop');
  assert.equal(
    p.messages.map((m) => m.name),
    ['place', 'total', 'forget', 'clear'],
  );
  for (const name of ['Order', 'Refused', 'Money', 'Currency']) assert.ok(p.type(name), `type ${name} from an import`);
  const place = p.message('place')!;
  const fields = (place.request as unknown as { fields: { name: string; type: { name?: string } }[] }).fields;
  assert.equal(
    fields.map((f) => [f.name, f.type.name]),
    [['order', 'avrpc.fixture.Order']],
  );
  assert.ok(place.errors.toString().includes('avrpc.fixture.Refused'), 'declared error from an imported file');
  assert.is(p.message('total')!.response.name, 'avrpc.fixture.Money');
  assert.is(p.message('total')!.idempotent, true);
  assert.is(p.message('forget')!.oneWay, true);
  assert.is(p.message('clear')!.oneWay, false, '`void` without `oneway` is two-way, as in Avro IDL');
});

test('a relative path (to the working directory), a file: URL and a file: URL string load the same protocol', async () => {
  const byPath = await loadProtocol(SHOP_IDL);
  const ids = await Promise.all([
    loadProtocol(relative(process.cwd(), SHOP_IDL)),
    loadProtocol(pathToFileURL(SHOP_IDL)),
    loadProtocol(pathToFileURL(SHOP_IDL).href),
  ]);
  assert.equal(
    ids.map((p) => p.id),
    [byPath.id, byPath.id, byPath.id],
  );
});

test('a .avpr (JSON) file loads to the same protocol and fingerprint as its IDL', async () => {
  const idl = await loadProtocol(SHOP_IDL);
  const json = await loadProtocol(SHOP_JSON);
  assert.is(json.id, idl.id);
  assert.is(json.text, idl.text);
  assert.equal(
    json.messages.map((m) => [m.name, m.oneWay, m.idempotent]),
    idl.messages.map((m) => [m.name, m.oneWay, m.idempotent]),
  );
});

test('a client from the .avpr calls a server from the .avdl: values, declared errors and one-way calls', async () => {
  const forgotten: bigint[] = [];
  const server = createServer({
    protocol: await loadProtocol(SHOP_IDL, { longs: 'bigint' }),
    handlers: {
      place: (req: { order: { id: bigint; items: string[] } }) => {
        if (req.order.items.length === 0) throw { why: 'empty order' };
        return { ...req.order, note: 'placed' };
      },
      total: (req: { orders: { total: { cents: bigint } }[] }) => ({
        cents: req.orders.reduce((n, o) => n + o.total.cents, 0n),
        currency: 'EUR',
      }),
      forget: (req: { id: bigint }) => {
        forgotten.push(req.id);
      },
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({
    protocol: await loadProtocol(pathToFileURL(SHOP_JSON), { longs: 'bigint' }),
    endpoints: [`127.0.0.1:${port}`],
  });
  try {
    const order = { id: 2n ** 62n, items: ['tea'], total: { cents: 250n, currency: 'EUR' }, note: null };
    const placed = await client.call<{ id: bigint; note: string }>('place', { order });
    assert.equal([placed.id, placed.note], [2n ** 62n, 'placed']);
    const sum = await client.call<{ cents: bigint; currency: string }>('total', { orders: [order, order] });
    assert.equal([sum.cents, sum.currency], [500n, 'EUR']);
    const refused = await refusal(client.call('place', { order: { ...order, items: [] } }));
    assert.is(refused.code, Code.UNKNOWN);
    assert.equal({ ...(refused.details as object) }, { why: 'empty order' });
    assert.is(await client.call('forget', { id: 9n }), undefined);
    await client.call('total', { orders: [] }); // the one-way call is handled before the next answer
    assert.equal(forgotten, [9n]);
  } finally {
    await client.close();
    await server.close({ graceMs: 1000 });
  }
});

/** [what, source, message pattern] */
const BAD: [string, () => unknown, RegExp][] = [
  ['IDL with a syntax error', () => bad('syntax.avdl'), /^cannot load protocol \S*bad\/syntax\.avdl: .*expected/],
  [
    'IDL importing a file that does not exist',
    () => bad('missing-import.avdl'),
    /^cannot load protocol \S*missing-import\.avdl \(in \S*does-not-exist\.avdl\): ENOENT/,
  ],
  [
    'IDL importing a file with a syntax error',
    () => bad('imports-broken.avdl'),
    /^cannot load protocol \S*imports-broken\.avdl \(in \S*bad\/syntax\.avdl\): /,
  ],
  ['truncated JSON', () => bad('truncated.avpr'), /^cannot load protocol \S*truncated\.avpr: invalid protocol JSON: /],
  [
    'JSON naming an undefined type',
    () => bad('unknown-type.avpr'),
    /^cannot load protocol \S*unknown-type\.avpr: invalid Avro protocol: undefined type name: Nowhere$/,
  ],
  ['a file that does not exist', () => bad('nowhere.avdl'), /^cannot load protocol \S*nowhere\.avdl: ENOENT/],
  ['a JSON file that does not exist', () => bad('nowhere.avpr'), /^cannot load protocol \S*nowhere\.avpr: ENOENT/],
  ['an http: URL', () => new URL('http://127.0.0.1/echo.avdl'), /^loadProtocol: only paths and file: URLs can be loaded/],
  ['an http: URL string', () => 'http://127.0.0.1/echo.avdl', /^loadProtocol: only paths and file: URLs can be loaded/],
  [
    'a file: URL with a host',
    () => 'file://elsewhere/echo.avdl',
    /^loadProtocol: File URL host must be "localhost" or empty on \S+: file:\/\/elsewhere\/echo\.avdl$/,
  ],
  ['a malformed URL', () => 'http://[oops/echo.avdl', /^loadProtocol: invalid URL http:\/\/\[oops\/echo\.avdl$/],
  ['not a string', () => 42, /^loadProtocol: source must be a file path or a file: URL$/],
  ['an empty path', () => '', /^loadProtocol: source must be a file path or a file: URL$/],
];

for (const [what, source, pattern] of BAD) {
  test(`${what}: rejects INVALID_ARGUMENT naming the file and the reason`, async () => {
    const err = await refusal(loadProtocol(source() as string));
    assert.is(err.code, Code.INVALID_ARGUMENT, `${err.codeName}: ${err.message}`);
    assert.match(err.message, pattern);
  });
}

test('parseProtocol and the Protocol constructor throw INVALID_ARGUMENT, never a bare SyntaxError', () => {
  for (const source of ['{"protocol": ', '', 'protocol {', '[1, 2]', '{"messages": {}}']) {
    const err = (() => {
      try {
        parseProtocol(source);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.instance(err, RpcError, JSON.stringify(source));
    assert.is((err as RpcError).code, Code.INVALID_ARGUMENT);
  }
  const peer = (() => {
    try {
      return new Protocol('{"protocol"');
    } catch (e) {
      return e;
    }
  })();
  assert.instance(peer, RpcError);
  assert.match((peer as RpcError).message, /^invalid protocol JSON: /);
});

test.run();
