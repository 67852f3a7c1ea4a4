/**
 * A request that does not match its message's request record is refused on the client with
 * INVALID_ARGUMENT before anything is sent, with a message naming the message and the field; never a
 * synchronous throw from `client.call`, never avsc's "Do not know how to serialize a BigInt".
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, type Client, type Protocol } from '../../src/index.js';
import { describeInvalid } from '../../src/codec/invalid-value.js';
import { item, loadEcho, rejection, startServer, type Started } from '../helpers/echo-fixture.js';
import { freePort } from '../helpers/pool-fixture.js';

const test = suite('invalid requests');
let big: Protocol;
let num: Protocol;
let started: Started;
/** Requests the server's handler saw: none of the invalid ones may reach it. */
let handled = 0;

test.before(async () => {
  big = await loadEcho('echo.avdl', 'bigint');
  num = await loadEcho('echo.avdl', 'number');
  started = await startServer({
    protocol: big,
    handlers: {
      echo: (req: { item: unknown }) => {
        handled++;
        return req.item;
      },
      notify: () => {
        handled++;
      },
    },
  });
});

test.after(async () => {
  await started.server.close({ graceMs: 1000 });
});

const bigItem = { id: 1n, name: 'n', tags: ['a'], score: 0.5, blob: Buffer.alloc(1) };

/** [case, longs, request, expected message after "invalid request for <message>: "] */
const CASES: [string, 'bigint' | 'number', unknown, RegExp][] = [
  [
    'a bigint long above 2^63-1',
    'bigint',
    { item: { ...bigItem, id: 2n ** 64n } },
    /^item\.id: 18446744073709551616n is not a valid long$/,
  ],
  [
    'a bigint long below -2^63',
    'bigint',
    { item: { ...bigItem, id: -(2n ** 63n) - 1n } },
    /^item\.id: -9223372036854775809n is not a valid long$/,
  ],
  // A safe-integer number is a valid bigint-mode long (see test/codec/longs-modes.test.ts); these are not.
  ['a fraction where a bigint long is expected', 'bigint', { item: { ...bigItem, id: 5.5 } }, /^item\.id: 5\.5 is not a valid long$/],
  [
    'an unsafe number where a bigint long is expected',
    'bigint',
    { item: { ...bigItem, id: 2 ** 53 } },
    /^item\.id: 9007199254740992 is not a valid long$/,
  ],
  ['a decimal string where a bigint long is expected', 'bigint', { item: { ...bigItem, id: '5' } }, /^item\.id: '5' is not a valid long$/],
  ['a number long beyond 2^53', 'number', { item: { ...item(1), id: 2 ** 60 } }, /^item\.id: 1152921504606847000 is not a valid long$/],
  [
    'a bigint where a number long is expected',
    'number',
    { item: { ...item(1), id: 2n ** 64n } },
    /^item\.id: 18446744073709551616n is not a valid long$/,
  ],
  ['a string field holding a number', 'bigint', { item: { ...bigItem, name: 42 } }, /^item\.name: 42 is not a valid string$/],
  ['an array item of the wrong type', 'bigint', { item: { ...bigItem, tags: ['a', 3] } }, /^item\.tags\.1: 3 is not a valid string$/],
  ['a missing record field', 'bigint', { item: { id: 1n, name: 'n' } }, /^item\.tags: missing \(array<string> required\)$/],
  ['a missing parameter', 'bigint', {}, /^item: missing \(avrpc\.echo\.Item required\)$/],
  ['null instead of the request record', 'bigint', null, /^null is not a valid request \(an object of the parameters by name\)$/],
  ['a string instead of the request record', 'number', 'abc', /^'abc' is not a valid request/],
];

for (const [name, longs, request, expected] of CASES) {
  test(`${name}: INVALID_ARGUMENT naming the field, for a two-way and a one-way message`, async () => {
    const client = createClient({ protocol: longs === 'bigint' ? big : num, endpoints: [started.endpoint] });
    try {
      for (const message of ['echo', 'notify']) {
        const before = handled;
        let pending: Promise<unknown> | undefined;
        assert.not.throws(() => {
          pending = client.call(message, request as object);
        }, 'client.call never throws');
        const err = await rejection(pending!);
        assert.is(err.code, Code.INVALID_ARGUMENT, `${err.codeName}: ${err.message}`);
        assert.is(err.isRemote, false, 'refused by the client, not the server');
        assert.ok(err.message.startsWith(`invalid request for ${message}: `), err.message);
        assert.match(err.message.slice(`invalid request for ${message}: `.length), expected);
        assert.not.match(err.message, /serialize a BigInt/);
        assert.is(handled, before, 'nothing reached the handler');
      }
      // The connection is still good for valid calls.
      const ok = await client.call<{ name: string }>('echo', { item: longs === 'bigint' ? bigItem : item(2) });
      assert.is(ok.name, longs === 'bigint' ? 'n' : 'item-2');
    } finally {
      await client.close();
    }
  });
}

test('with no server reachable, an invalid request is refused at once with INVALID_ARGUMENT, not UNAVAILABLE', async () => {
  const client: Client = createClient({ protocol: big, endpoints: [`127.0.0.1:${await freePort()}`], waitForReadyMs: 60_000 });
  try {
    const err = await rejection(client.call('echo', { item: { ...bigItem, id: 2n ** 63n } }));
    assert.is(err.code, Code.INVALID_ARGUMENT, `${err.codeName}: ${err.message}`);
    assert.match(err.message, /^invalid request for echo: item\.id: 9223372036854775808n is not a valid long$/);
  } finally {
    await client.close();
  }
});

test('invalid call options reject INVALID_ARGUMENT naming the option, before anything is sent', async () => {
  const client = createClient({ protocol: big, endpoints: [started.endpoint] });
  const cases: [object, string][] = [
    [{ timeoutMs: -1 }, 'options.timeoutMs must be a number >= 0, got -1'],
    [{ timeoutMs: '5' }, 'options.timeoutMs must be a number >= 0, got "5"'],
    [{ timeoutMs: NaN }, 'options.timeoutMs must be a number >= 0, got NaN'],
    [{ signal: {} }, 'options.signal must be an AbortSignal, got an object'],
    [{ signal: 'abort' }, 'options.signal must be an AbortSignal, got "abort"'],
    [{ metadata: { tenant: 1 } }, 'options.metadata.tenant must be a string, got 1'],
    [{ metadata: 'k=v' }, 'options.metadata must be an object of string values, got "k=v"'],
    [{ metadata: null }, 'options.metadata must be an object of string values, got null'],
  ];
  try {
    const before = handled;
    for (const [options, message] of cases) {
      let pending: Promise<unknown> | undefined;
      assert.not.throws(() => {
        pending = client.call('echo', { item: bigItem }, options);
      });
      const err = await rejection(pending!);
      assert.is(err.code, Code.INVALID_ARGUMENT, `${err.codeName}: ${err.message}`);
      assert.is(err.message, `call: ${message}`);
    }
    assert.is(handled, before, 'nothing reached the handler');
  } finally {
    await client.close();
  }
});

test('describeInvalid: undefined for a valid value, a path for nested values, never a throw', () => {
  const request = big.message('echo')!.request;
  assert.is(describeInvalid(request, { item: bigItem }), undefined);
  assert.is(describeInvalid(big.message('echo')!.response, { ...bigItem, score: 'x' }), "score: 'x' is not a valid double");
  const cyclic: Record<string, unknown> = { ...bigItem };
  cyclic['name'] = cyclic;
  assert.match(describeInvalid(request, { item: cyclic })!, /^item\.name: .* is not a valid string$/);
});

test('a handler returning an out-of-range bigint: INTERNAL naming the response field', async () => {
  const s = await startServer({ protocol: big, handlers: { echo: (req: { item: object }) => ({ ...req.item, id: 2n ** 70n }) } });
  const client = createClient({ protocol: big, endpoints: [s.endpoint] });
  try {
    const err = await rejection(client.call('echo', { item: bigItem }));
    assert.is(err.code, Code.INTERNAL);
    assert.is(err.message, 'handler of echo returned an invalid response: id: 1180591620717411303424n is not a valid long');
  } finally {
    await client.close();
    await s.server.close({ graceMs: 1000 });
  }
});

test.run();
