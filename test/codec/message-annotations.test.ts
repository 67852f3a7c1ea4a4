/**
 * Message annotations (`@idempotent(true)`) on messages of any response type. avsc's IDL reader puts
 * them on the response schema, which for a named type gives `{"type": "Item", "idempotent": true}`:
 * a reference with attributes that avsc itself then rejects ("unknown type Item"). Regression tests:
 * such protocols parse, the flag is read, fingerprints and handshakes work, and retries use the flag.
 */
import { createHash } from 'node:crypto';
import avro from 'avsc';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Code,
  Protocol,
  RpcError,
  createClient,
  createServer,
  parseProtocol,
  type Client,
  type ConnectionView,
  type Server,
} from '../../src/index.js';
import { protocolToIdl } from '../../src/cli/idl-printer.js';
import { until } from '../helpers/echo-fixture.js';

const test = suite('message annotations');

const IDL = `
@namespace("avrpc.test")
protocol Store {
  record Item { long id; string name; }
  @idempotent(true) Item get(long id);
  @idempotent(true) string label(long id);
  @idempotent(true) array<Item> list();
  @idempotent(true) map<long> counts();
  @idempotent(true) @owner("team-a") Item peek(long id);
  Item put(Item item);
}`;

/** The same protocol one version later: Item gained a field with a default (a different fingerprint). */
const IDL_V2 = IDL.replace('record Item { long id; string name; }', 'record Item { long id; string name; string note = "-"; }');

test('a named response type with @idempotent(true) parses and keeps its type', () => {
  const p = parseProtocol(IDL);
  const get = p.message('get')!;
  assert.is(get.response.typeName, 'record');
  assert.is(get.response.name, 'avrpc.test.Item');
  assert.is(p.message('list')!.response.typeName, 'array');
  assert.is(p.message('label')!.response.typeName, 'string');
  assert.equal(get.response.toBuffer({ id: 7, name: 'x' }).toString('hex'), Buffer.from([14, 2, 0x78]).toString('hex'));
});

test('the idempotent flag is read for every response shape, and only where annotated', () => {
  const p = parseProtocol(IDL);
  const flags = Object.fromEntries(p.messages.map((m) => [m.name, m.idempotent]));
  assert.equal(flags, { get: true, label: true, list: true, counts: true, peek: true, put: false });
});

test('the annotations move to the message in the protocol text, which parses back to the same flags', () => {
  const p = parseProtocol(IDL);
  const json = JSON.parse(p.text) as { messages: Record<string, Record<string, unknown>> };
  assert.is(json.messages['get']!['response'], 'Item');
  assert.is(json.messages['get']!['idempotent'], true);
  assert.equal([json.messages['peek']!['idempotent'], json.messages['peek']!['owner']], [true, 'team-a']);
  const again = parseProtocol(p.text);
  assert.is(again.id, p.id, 'the text is a fixed point: same fingerprint');
  assert.equal(
    again.messages.map((m) => m.idempotent),
    p.messages.map((m) => m.idempotent),
  );
});

test('the IDL printer (avrpc describe) writes the annotations back; reparsed, the fingerprint is unchanged', () => {
  const p = parseProtocol(IDL);
  const idl = protocolToIdl(p.text);
  assert.match(idl, /@idempotent\(true\) Item get\(long id\);/);
  assert.match(idl, /@idempotent\(true\) @owner\("team-a"\) Item peek\(long id\);/);
  assert.is(parseProtocol(idl).id, p.id);
});

test("a peer's text in avsc's raw form is accepted verbatim: its fingerprint is the MD5 of that text", () => {
  // What an avsc-based peer that does not lift annotations would send in its handshake.
  const text = JSON.stringify(avro.readProtocol(IDL));
  assert.match(text, /"response":\{"idempotent":true,"type":"Item"\}/);
  const p = new Protocol(text); // as the handshake builds a peer's protocol from its text
  assert.is(p.text, text);
  assert.is(p.id, createHash('md5').update(text).digest('hex'));
  assert.is(p.message('get')!.idempotent, true);
});

test('an annotated union response (refused by avsc) gives a clear INVALID_ARGUMENT; JSON can say it', () => {
  const err = (() => {
    try {
      parseProtocol('protocol U { @idempotent(true) union { null, string } find(); }');
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  assert.instance(err, RpcError);
  assert.is((err as RpcError).code, Code.INVALID_ARGUMENT);
  assert.match((err as RpcError).message, /^invalid Avro IDL: union annotations are not supported/);
  const json = parseProtocol(
    '{"protocol": "U", "messages": {"find": {"request": [], "response": ["null", "string"], "idempotent": true}}}',
  );
  assert.is(json.message('find')!.idempotent, true);
});

test('a JSON protocol with "idempotent": true on the message is read too', () => {
  const p = parseProtocol(
    JSON.stringify({
      protocol: 'J',
      namespace: 'j',
      types: [{ type: 'record', name: 'Item', fields: [{ name: 'id', type: 'long' }] }],
      messages: { get: { request: [], response: 'Item', idempotent: true }, put: { request: [], response: 'Item' } },
    }),
  );
  assert.is(p.message('get')!.idempotent, true);
  assert.is(p.message('put')!.idempotent, false);
});

test('an annotated reference in a field moves to the field; protocols without one keep their text', () => {
  const p = parseProtocol(
    `protocol F { record Item { long id; } record Box { @deprecated(true) Item item; } Box open(@note("x") Item item); }`,
  );
  const json = JSON.parse(p.text) as { types: { name: string; fields?: { name: string; type: unknown; deprecated?: unknown }[] }[] };
  const box = json.types.find((t) => t.name === 'Box')!;
  assert.equal(box.fields![0], { type: 'Item', deprecated: true, name: 'item' });
  const plain = { protocol: 'P', messages: { m: { request: [], response: { type: 'string', idempotent: true } } } };
  assert.is(new Protocol(plain).text, JSON.stringify(plain));
});

interface Store {
  server: Server;
  endpoint: string;
  ran: number;
  /** When set, `get` never answers and kills its server. */
  doomed: boolean;
}

/** A server answering `get` with an Item named after it. */
async function startStore(protocol: Protocol, name: string): Promise<Store> {
  const state: Store = { server: undefined as unknown as Server, endpoint: '', ran: 0, doomed: false };
  state.server = createServer({
    protocol,
    handlers: {
      get: (req: { id: number }) => {
        state.ran++;
        if (state.doomed) {
          void state.server.close({ graceMs: 0 });
          return new Promise(() => {});
        }
        return { id: req.id, name, note: 'from v2' };
      },
    },
  });
  const { port } = await state.server.listen({ host: '127.0.0.1', port: 0 });
  state.endpoint = `127.0.0.1:${port}`;
  return state;
}

test('handshake between different versions of an annotated protocol: both sides learn the other text', async () => {
  const server = await startStore(parseProtocol(IDL_V2), 'v2');
  const client = createClient({ protocol: parseProtocol(IDL), endpoints: [server.endpoint] });
  try {
    assert.equal({ ...(await client.call('get', { id: 41 }, { timeoutMs: 5000 })) }, { id: 41, name: 'v2' });
    assert.equal({ ...(await client.call('get', { id: 42 }, { timeoutMs: 5000 })) }, { id: 42, name: 'v2' });
  } finally {
    await client.close();
    await server.server.close({ graceMs: 1000 });
  }
});

test('an @idempotent(true) call with a named response type is retried on another server when its server dies', async () => {
  const protocol = parseProtocol(IDL);
  const a = await startStore(protocol, 'A');
  const b = await startStore(protocol, 'B');
  const preferA = (cs: readonly ConnectionView[]): ConnectionView => cs.find((v) => v.endpointKey === a.endpoint) ?? cs[0]!;
  const client: Client = createClient({ protocol, endpoints: [a.endpoint, b.endpoint], balancer: preferA });
  try {
    await client.call('get', { id: 0 });
    await until(() => client.stats().every((e) => e.ready === 1), 'both endpoints ready');
    a.ran = 0;
    a.doomed = true;
    const got = await client.call<{ name: string }>('get', { id: 1 }, { timeoutMs: 5000 });
    assert.is(got.name, 'B');
    assert.is(a.ran, 1, 'the first attempt ran on A');
    assert.is(b.ran, 1, 'the retry ran on B');
  } finally {
    await client.close();
    await Promise.all([a.server.close({ graceMs: 0 }), b.server.close({ graceMs: 1000 })]);
  }
});

test.run();
