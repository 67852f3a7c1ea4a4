/**
 * A typed server and client (API types in the shape `avrpc gen` writes) over real loopback sockets:
 * the types change nothing at run time, results are the handlers' values, and a declared error says
 * which one it is in `errorType`, so a `CallError` switch works.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createClient, createServer, type CallError } from '../../src/index.js';
import { item, loadEcho } from '../helpers/echo-fixture.js';
import type { EchoApi, StreamApi, Item } from '../types/fixtures/apis.js';

const test = suite('typed client and server');

test('a typed unary call, a one-way call and a declared error', async () => {
  const protocol = await loadEcho();
  const notified: number[] = [];
  const server = createServer<EchoApi>({
    protocol,
    handlers: {
      echo: ({ item }) => ({ ...item, name: item.name.toUpperCase() }),
      fail: ({ reason }) => {
        throw new RpcError(Code.FAILED_PRECONDITION, `refused: ${reason}`, { details: { reason } });
      },
      notify: ({ item }) => void notified.push(item.id),
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient<EchoApi>({ protocol, endpoints: [`127.0.0.1:${port}`] });
  try {
    const got: Item = await client.call('echo', { item: item(3) });
    assert.is(got.name, 'ITEM-3');
    await client.call('notify', { item: item(4) });
    const err = (await client.call('fail', { reason: 'no' }).catch((e: unknown) => e)) as CallError<EchoApi, 'fail'>;
    assert.instance(err, RpcError);
    assert.is(err.code, Code.FAILED_PRECONDITION);
    assert.is(err.errorType, 'avrpc.echo.EchoError');
    if (err.errorType === 'avrpc.echo.EchoError') assert.is(err.details.reason, 'no');
    const plain = (await client.call('echo', { item: { ...item(1), id: 1.5 } }).catch((e: unknown) => e)) as CallError<EchoApi, 'echo'>;
    assert.is(plain.code, Code.INVALID_ARGUMENT);
    assert.is(plain.errorType, undefined, 'an error without a declared value has no errorType');
    while (notified.length === 0) await new Promise((r) => setTimeout(r, 5));
    assert.equal(notified, [4]);
  } finally {
    await client.close();
    await server.close();
  }
});

test('typed streams of each kind', async () => {
  const protocol = await loadEcho('stream.avdl');
  const server = createServer<StreamApi>({
    protocol,
    handlers: {
      watch: async function* ({ from, count, failAfter }) {
        for (let i = 0; i < count; i++) {
          if (i === failAfter) throw { reason: 'stop', after: i };
          yield item(from + i);
        }
      },
      upload: async (requests) => {
        let count = 0;
        let bytes = 0;
        for await (const { item } of requests) {
          count++;
          bytes += item.blob.length;
        }
        return { count, bytes };
      },
      chat: async function* (requests) {
        for await (const { item } of requests) yield { ...item, id: item.id * 10 };
      },
      echo: ({ item }) => item,
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient<StreamApi>({ protocol, endpoints: [`127.0.0.1:${port}`] });
  try {
    const ids: number[] = [];
    for await (const it of client.serverStream('watch', { from: 5, count: 3, failAfter: -1 })) ids.push(it.id);
    assert.equal(ids, [5, 6, 7]);
    const summary = await client.clientStream('upload', [{ item: item(1, 10) }, { item: item(2, 5) }]);
    assert.equal({ ...summary }, { count: 2, bytes: 15 });
    const replies: number[] = [];
    for await (const r of client.bidiStream('chat', [{ item: item(1) }, { item: item(2) }])) replies.push(r.id);
    assert.equal(replies, [10, 20]);
    const seen: number[] = [];
    let failure: CallError<StreamApi, 'watch'> | undefined;
    try {
      for await (const it of client.serverStream('watch', { from: 0, count: 5, failAfter: 2 })) seen.push(it.id);
    } catch (e) {
      failure = e as CallError<StreamApi, 'watch'>;
    }
    assert.equal(seen, [0, 1]);
    assert.is(failure?.errorType, 'avrpc.stream.StreamError');
    if (failure?.errorType === 'avrpc.stream.StreamError') assert.equal({ ...failure.details }, { reason: 'stop', after: 2 });
  } finally {
    await client.close();
    await server.close();
  }
});

test.run();
