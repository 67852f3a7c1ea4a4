import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createClient, type Client, type Protocol } from '../../src/index.js';
import { FrameType } from '../../src/framing/frame.js';
import { item, loadEcho, rejection, startServer, until, type Item, type Started } from '../helpers/echo-fixture.js';
import { RawClient, errorOf, rawFrame, requestFrame } from '../helpers/raw-client.js';

/** What a caller sees for each way a handler or a request can go wrong. */
const test = suite('handler errors');
let protocol: Protocol;
let started: Started;
let client: Client;
let fail: (req: { reason: string }) => unknown;
const notified: number[] = [];

test.before(async () => {
  protocol = await loadEcho();
  started = await startServer({
    protocol,
    handlers: {
      echo: (req: { item: Item }) => {
        switch (req.item.name) {
          case 'throw-error':
            throw new Error('boom: the handler broke');
          case 'throw-string':
            throw 'plain string';
          case 'reject-rpc':
            return Promise.reject(new RpcError(Code.PERMISSION_DENIED, 'not for you', { metadata: { why: 'acl' } }));
          case 'bad-response':
            return { id: 1 }; // not an Item
          default:
            return req.item;
        }
      },
      fail: (req: { reason: string }) => fail(req),
      notify: (req: { item: Item }) => {
        notified.push(req.item.id);
        if (req.item.id < 0) throw new Error('one-way failures are not reported');
      },
    },
  });
  client = createClient({ protocol, endpoints: [started.endpoint] });
});

test.after(async () => {
  await client.close();
  await started.server.close({ graceMs: 1000 });
});

const named = (name: string) => ({ item: { ...item(1), name } });

test('a handler throwing an Error gives INTERNAL with its message and no stack', async () => {
  const err = await rejection(client.call('echo', named('throw-error')));
  assert.is(err.code, Code.INTERNAL);
  assert.is(err.isRemote, true);
  assert.is(err.message, 'boom: the handler broke');
  assert.not.match(err.message, /\bat\b|\.js|handler-errors/);
});

test('a handler throwing a non-Error gives INTERNAL with its text', async () => {
  const err = await rejection(client.call('echo', named('throw-string')));
  assert.is(err.code, Code.INTERNAL);
  assert.is(err.message, 'plain string');
});

test('a handler rejecting with RpcError keeps its code, message and metadata', async () => {
  const err = await rejection(client.call('echo', named('reject-rpc')));
  assert.is(err.code, Code.PERMISSION_DENIED);
  assert.is(err.message, 'not for you');
  assert.equal({ ...err.metadata }, { why: 'acl' });
});

test('a handler returning a value that is not the response type gives INTERNAL', async () => {
  const err = await rejection(client.call('echo', named('bad-response')));
  assert.is(err.code, Code.INTERNAL);
  assert.match(err.message, /invalid response/);
});

test('a thrown declared Avro error (EchoError) arrives in err.details', async () => {
  fail = (req) => {
    throw { reason: req.reason };
  };
  const err = await rejection(client.call('fail', { reason: 'disk full' }));
  assert.is(err.code, Code.UNKNOWN);
  assert.equal({ ...(err.details as object) }, { reason: 'disk full' });
});

test('an RpcError carrying a declared error keeps its code and its details', async () => {
  const EchoError = protocol.type('EchoError')!;
  fail = (req) => {
    throw new RpcError(Code.FAILED_PRECONDITION, 'refused', { details: EchoError.clone({ reason: req.reason }) });
  };
  const err = await rejection(client.call('fail', { reason: 'quota' }));
  assert.is(err.code, Code.FAILED_PRECONDITION);
  assert.is(err.message, 'refused');
  assert.equal({ ...(err.details as object) }, { reason: 'quota' });
});

test('a message unknown to the client protocol rejects UNIMPLEMENTED locally', async () => {
  const err = await rejection(client.call('nope', {}));
  assert.is(err.code, Code.UNIMPLEMENTED);
  assert.is(err.isRemote, false);
});

test('a message the server has no handler for gives UNIMPLEMENTED from the server', async () => {
  const partial = await startServer({ protocol, handlers: { echo: (req: { item: Item }) => req.item } });
  const c = createClient({ protocol, endpoints: [partial.endpoint] });
  try {
    const err = await rejection(c.call('fail', { reason: 'x' }));
    assert.is(err.code, Code.UNIMPLEMENTED);
    assert.is(err.isRemote, true);
    assert.is((await c.call<Item>('echo', { item: item(3) })).id, 3);
  } finally {
    await c.close();
    await partial.server.close({ graceMs: 1000 });
  }
});

test('a raw REQUEST naming a message index the protocol lacks gives UNIMPLEMENTED', async () => {
  const raw = await RawClient.connect(started.port);
  try {
    raw.write(rawFrame(FrameType.REQUEST, 0, 9, Buffer.from([0x00, 0x63]))); // index 99, empty payload
    const f = await raw.frame();
    assert.is(f.id, 9);
    assert.is(errorOf(f).code, Code.UNIMPLEMENTED);
  } finally {
    await raw.close();
  }
});

test('an undecodable request payload gives INVALID_ARGUMENT and the connection lives on', async () => {
  const raw = await RawClient.connect(started.port);
  try {
    const good = requestFrame(protocol, 1, 'echo', { item: item(4) });
    // Truncated: the length prefix still says the old size, so shorten the body and fix the prefix.
    const truncated = Buffer.from(good.subarray(0, good.length - 3));
    truncated.writeUInt32BE(truncated.length - 10, 0);
    truncated.writeUInt32BE(2, 6);
    raw.write(truncated);
    // Trailing garbage after a valid payload.
    const trailing = Buffer.concat([good, Buffer.from([1, 2, 3])]);
    trailing.writeUInt32BE(trailing.length - 10, 0);
    trailing.writeUInt32BE(3, 6);
    raw.write(trailing);
    // A string length that is negative (zig-zag 0x01 = -1) where the item's name begins.
    const bad = Buffer.from(good);
    bad.writeUInt32BE(4, 6);
    bad[10 + 2 + 1] = 0x01; // index (2 bytes), then id 4 (0x08, 1 byte), then the name length
    raw.write(bad);
    raw.write(requestFrame(protocol, 5, 'echo', { item: item(5) }));
    const answers = [await raw.frame(), await raw.frame(), await raw.frame(), await raw.frame()];
    assert.equal(
      answers.map((f) => f.id),
      [2, 3, 4, 5],
    );
    for (const f of answers.slice(0, 3)) {
      const e = errorOf(f);
      assert.is(e.code, Code.INVALID_ARGUMENT, `id ${f.id}: ${e.message}`);
    }
    assert.is(answers[3]!.type, FrameType.RESPONSE);
  } finally {
    await raw.close();
  }
});

test('one-way messages resolve once written and reach the handler; their failures send nothing back', async () => {
  notified.length = 0;
  assert.is(await client.call('notify', { item: item(-1) }), undefined);
  assert.is(await client.call('notify', { item: item(11) }), undefined);
  await until(() => notified.length === 2, 'both one-way calls to reach the handler');
  assert.equal(notified, [-1, 11]);
  assert.is((await client.call<Item>('echo', { item: item(12) })).id, 12, 'nothing stray came back');
});

test('a one-way message whose handler throws answers nothing on the wire', async () => {
  const raw = await RawClient.connect(started.port);
  try {
    raw.write(requestFrame(protocol, 1, 'notify', { item: item(-1) }, { oneWay: true }));
    raw.write(requestFrame(protocol, 2, 'echo', { item: item(2) }));
    const f = await raw.frame();
    assert.equal([f.type, f.id], [FrameType.RESPONSE, 2], 'the first frame back answers the two-way call');
  } finally {
    await raw.close();
  }
});

test.run();
