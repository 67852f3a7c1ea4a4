import avro from 'avsc';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, parseProtocol, type Client, type Protocol, type RpcError } from '../../src/index.js';
import { item, loadEcho, rejection, startServer, until, type Started } from '../helpers/echo-fixture.js';

/**
 * Clients and servers built from different versions of the echo protocol (protocol/echo-v0.avdl,
 * echo.avdl, echo-v2.avdl) interoperate wherever Avro schema resolution allows, with correct values,
 * and fail with a clear code where it does not.
 */
const test = suite('schema evolution');
const versions: Record<string, Protocol> = {};

test.before(async () => {
  versions['v0'] = await loadEcho('echo-v0.avdl');
  versions['v1'] = await loadEcho('echo.avdl');
  versions['v2'] = await loadEcho('echo-v2.avdl');
});

type Any = Record<string, unknown>;

interface Pair {
  server: Started;
  client: Client;
  /** Requests as the server's handler decoded them. */
  seen: Any[];
  close(): Promise<void>;
}

async function pair(
  clientVersion: string,
  serverVersion: string,
  extra: { idleTimeoutMs?: number; opened?: () => void } = {},
): Promise<Pair> {
  const protocol = versions[serverVersion]!;
  const seen: Any[] = [];
  const handlers: Record<string, (req: Any) => unknown> = {
    echo: (req) => {
      seen.push(req['item'] as Any);
      return req['item'];
    },
    fail: (req) => {
      seen.push(req);
      throw { reason: `bad ${String(req['reason'])}` };
    },
  };
  if (protocol.message('version')) handlers['version'] = () => serverVersion;
  const server = await startServer({
    protocol,
    handlers,
    ...(extra.idleTimeoutMs ? { idleTimeoutMs: extra.idleTimeoutMs } : {}),
    ...(extra.opened ? { observer: { connectionOpened: extra.opened } } : {}),
  });
  const client = createClient({ protocol: versions[clientVersion]!, endpoints: [server.endpoint] });
  return {
    server,
    client,
    seen,
    async close() {
      await client.close();
      await server.server.close({ graceMs: 1000 });
    },
  };
}

/**
 * Calls `echo` from a `clientVersion` client on a `serverVersion` server whose schemas do not resolve:
 * asserts FAILED_PRECONDITION; returns the error and how many requests the server's handler saw.
 */
async function refusedEcho(clientVersion: string, serverVersion: string, request: object): Promise<{ err: RpcError; seen: number }> {
  const p = await pair(clientVersion, serverVersion);
  try {
    const err = await rejection(p.client.call('echo', request));
    assert.is(err.code, Code.FAILED_PRECONDITION, `${err.codeName}: ${err.message}`);
    return { err, seen: p.seen.length };
  } finally {
    await p.close();
  }
}

const plain = (v: unknown): Any => JSON.parse(JSON.stringify(v)) as Any;

test('old client (v1) -> new server (v2): the server sees the added field defaulted, the client gets its fields back', async () => {
  const p = await pair('v1', 'v2');
  try {
    const sent = item(3, 4);
    const got = await p.client.call<Any>('echo', { item: sent });
    assert.equal(plain(got), plain(sent), 'the v1 client reads exactly the v1 fields back');
    assert.equal(plain(p.seen[0]), plain({ ...sent, note: null }), 'the v2 handler sees note = its default');
  } finally {
    await p.close();
  }
});

test('new client (v2) -> old server (v1): the added field is dropped by the old server and defaulted on the way back', async () => {
  const p = await pair('v2', 'v1');
  try {
    const sent = { ...item(5, 3), note: 'only v2 knows' };
    const got = await p.client.call<Any>('echo', { item: sent });
    assert.equal(plain(p.seen[0]), plain(item(5, 3)), 'the v1 handler sees the v1 fields only');
    assert.equal(plain(got), plain({ ...item(5, 3), note: null }));
  } finally {
    await p.close();
  }
});

test('much older client (v0, no blob) -> v2 server, and back: the field absent from v0 takes its default', async () => {
  const p = await pair('v0', 'v2');
  try {
    const sent = { id: 9, name: 'old', tags: ['x', 'y'], score: 2.25 };
    const got = await p.client.call<Any>('echo', { item: sent });
    assert.equal(plain(got), sent);
    assert.equal(plain(p.seen[0]), plain({ ...sent, blob: Buffer.alloc(0), note: null }));
  } finally {
    await p.close();
  }
  const q = await pair('v2', 'v0');
  try {
    const got = await q.client.call<Any>('echo', { item: { ...item(10, 5), note: 'n' } });
    const { blob: _drop, ...v0Fields } = item(10, 5);
    assert.equal(plain(q.seen[0]), plain(v0Fields));
    assert.equal(plain(got), plain({ ...v0Fields, blob: Buffer.alloc(0), note: null }));
  } finally {
    await q.close();
  }
});

test('a widened union: an old client sends the narrow type, the new server reads it', async () => {
  const p = await pair('v1', 'v2');
  try {
    const err = await rejection(p.client.call('fail', { reason: 'full' }));
    assert.is(err.code, Code.UNKNOWN);
    assert.equal(plain(err.details), { reason: 'bad full' }, 'the declared error crosses versions');
    assert.equal(plain(p.seen[0]), { reason: 'full' });
  } finally {
    await p.close();
  }
});

test('where resolution is impossible the call fails FAILED_PRECONDITION, never with misread values', async () => {
  // v2 -> v1: a union { string, int } cannot be read as a string.
  const p = await pair('v2', 'v1');
  try {
    const err = await rejection(p.client.call('fail', { reason: 'x' }));
    assert.is(err.code, Code.FAILED_PRECONDITION);
    const missing = await rejection(p.client.call('version', {}));
    assert.is(missing.code, Code.UNIMPLEMENTED, 'a message the old server does not have');
    assert.is((await p.client.call<Any>('echo', { item: item(1) }))['id'], 1, 'other messages still work');
  } finally {
    await p.close();
  }
  // v0 -> v1: v1's blob has no default, so the v1 server cannot read a v0 Item.
  assert.is((await refusedEcho('v0', 'v1', { item: { id: 1, name: 'a', tags: [], score: 0 } })).seen, 0);
  // v1 -> v0: the server reads the request, but the client cannot read a v0 Item (no blob, no default).
  assert.is((await refusedEcho('v1', 'v0', { item: item(2) })).seen, 0, 'a call whose answer cannot be read is not sent');
});

test('a record where the peer has a string: FAILED_PRECONDITION naming the message, the field and both types', async () => {
  // avsc throws a bare TypeError here ("Cannot read properties of undefined"), which used to be the whole message.
  const variant = (change: (echo: { request: Array<{ name: string; type: unknown }>; response: unknown }) => void): Protocol => {
    const json = JSON.parse(versions['v1']!.text) as { messages: Record<string, unknown> };
    const echo = structuredClone(json.messages['echo']) as { request: Array<{ name: string; type: unknown }>; response: unknown };
    change(echo);
    return parseProtocol(JSON.stringify({ ...json, messages: { ...json.messages, echo } }));
  };
  versions['string-request'] = variant((echo) => {
    echo.request[0]!.type = 'string';
  });
  versions['string-response'] = variant((echo) => {
    echo.response = 'string';
  });
  // The server cannot read the request.
  const request = await refusedEcho('string-request', 'v1', { item: 'not a record' });
  assert.is(request.err.message, 'message echo: incompatible schemas: field item: cannot read "string" as "avrpc.echo.Item"');
  assert.is(request.seen, 0);
  // The client cannot read the response.
  const response = await refusedEcho('v1', 'string-response', { item: item(1) });
  assert.is(response.err.message, 'message echo: cannot read the server\'s response: cannot read "string" as "avrpc.echo.Item"');
});

test('a server error union the client cannot resolve: FAILED_PRECONDITION before the call is sent, never a declared error it cannot read', async () => {
  // Like v1, but `fail` may also throw a new error type: the v1 client cannot resolve the wider error union.
  const wider = parseProtocol(
    versions['v1']!.text.replace(
      '"errors":["EchoError"]',
      '"errors":["EchoError",{"type":"error","name":"EchoBusy","fields":[{"name":"retryAfterMs","type":"int"}]}]',
    ),
  );
  assert.is.not(wider.id, versions['v1']!.id);
  let ran = 0;
  const server = await startServer({
    protocol: wider,
    handlers: {
      fail: () => {
        ran++;
        throw { retryAfterMs: 50 };
      },
    },
  });
  const client = createClient({ protocol: versions['v1']!, endpoints: [server.endpoint] });
  try {
    const err = await rejection(client.call('fail', { reason: 'x' }));
    assert.is(err.code, Code.FAILED_PRECONDITION, `${err.codeName}: ${err.message}`);
    assert.is(
      err.message,
      'message fail: cannot read the server\'s errors: cannot read "avrpc.echo.EchoBusy" as ["string","avrpc.echo.EchoError"]',
    );
    assert.is(ran, 0, 'the handler never ran');
  } finally {
    await client.close();
    await server.server.close({ graceMs: 1000 });
  }
});

test('a second connection reuses the cached protocol and resolvers: no resolver is built again', async () => {
  let opened = 0;
  const p = await pair('v1', 'v2', {
    idleTimeoutMs: 20,
    opened: () => {
      opened++;
    },
  });
  const proto = avro.Type.prototype as unknown as { createResolver: (...args: unknown[]) => unknown };
  const original = proto.createResolver;
  let built = 0;
  try {
    assert.is((await p.client.call<Any>('echo', { item: item(1) }))['id'], 1);
    proto.createResolver = function (this: unknown, ...args: unknown[]) {
      built++;
      return original.apply(this, args);
    };
    // The server closes idle connections; the client reconnects and handshakes again.
    await until(() => opened >= 2 && p.client.stats()[0]!.ready === 1, 'a second connection');
    const got = await p.client.call<Any>('echo', { item: item(2, 6) });
    assert.equal(plain(got), plain(item(2, 6)));
    assert.equal(plain(p.seen[1]), plain({ ...item(2, 6), note: null }));
    assert.is(built, 0, 'neither side built a resolver for the second connection');
  } finally {
    proto.createResolver = original;
    await p.close();
  }
});

test.run();
