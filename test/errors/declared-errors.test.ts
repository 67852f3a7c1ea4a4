/**
 * Declared errors name their type: `err.errorType` is the full schema name of the union branch the
 * client decoded (unary calls, streams, worker-offloaded handlers); a server encodes `details` as
 * the branch an RpcError's `errorType` names, which tells apart two error types of the same fields;
 * a wrong name or a misfit falls back without crashing; a declared value thrown as is keeps a
 * useful, bounded message.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createClient, createServer, parseProtocol, type Client, type Server } from '../../src/index.js';
import { decodeDeclared } from '../../src/connection/payload.js';
import { rejection } from '../helpers/echo-fixture.js';
import { ERRORS_IDL, blobby, feed, single, twin } from './declared-handlers.js';

const test = suite('declared errors: errorType');
const protocol = parseProtocol(ERRORS_IDL, { longs: 'bigint' });
const opened: Array<{ server: Server; client: Client }> = [];
const clients: Record<'inline' | 'worker', Client | undefined> = { inline: undefined, worker: undefined };
let instanceOfB: (req: { how: string }) => never;

async function start(where: 'inline' | 'worker'): Promise<Client> {
  const server = createServer({
    protocol,
    handlers:
      where === 'inline'
        ? { twin: (req: { how: string }) => (req.how === 'instance-b' ? instanceOfB(req) : twin(req)), single, blobby, feed }
        : {},
    ...(where === 'worker'
      ? {
          workers: {
            module: new URL('./declared-handlers.js', import.meta.url),
            messages: ['twin', 'single', 'blobby', 'feed'],
            threads: 1,
            offload: 'always',
          },
        }
      : {}),
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  opened.push({ server, client });
  return client;
}

test.before(async () => {
  clients.inline = await start('inline');
  clients.worker = await start('worker');
});

test.after(async () => {
  for (const { client, server } of opened) {
    await client.close();
    await server.close({ graceMs: 1000 });
  }
});

/** [how, code, errorType, details, message] of `twin` (and of `feed` after its first element). */
const TWIN: Array<[string, Code, string | undefined, object | undefined, string]> = [
  ['plain-value', Code.UNKNOWN, 'avrpc.errs.A', { reason: 'as is' }, 'A: {"reason":"as is"}'],
  ['rpc-b', Code.FAILED_PRECONDITION, 'avrpc.errs.B', { reason: 'named' }, 'refused'],
  ['rpc-unnamed', Code.FAILED_PRECONDITION, 'avrpc.errs.A', { reason: 'unnamed' }, 'refused'],
  ['rpc-unknown-name', Code.FAILED_PRECONDITION, 'avrpc.errs.A', { reason: 'x' }, 'refused'],
  ['rpc-misfit', Code.ABORTED, undefined, undefined, 'misfit'],
  ['rpc-hostile', Code.ABORTED, undefined, undefined, 'hostile'],
  ['none', Code.NOT_FOUND, undefined, undefined, 'no none'],
];

const plain = (v: unknown): unknown => (v === undefined ? undefined : { ...(v as object) });

for (const where of ['inline', 'worker'] as const) {
  test(`${where}: unary: errorType is the branch the server sent; an RpcError's errorType picks it, a wrong one falls back`, async () => {
    for (const [how, code, errorType, details, message] of TWIN) {
      const err = await rejection(clients[where]!.call('twin', { how }));
      assert.equal(
        [err.code, err.errorType, plain(err.details), err.message, err.isRemote],
        [code, errorType, details, message, true],
        how,
      );
    }
  });

  test(`${where}: a server stream's declared error carries its errorType too`, async () => {
    for (const [how, code, errorType, details] of TWIN) {
      const names: string[] = [];
      let failure: unknown;
      try {
        for await (const item of clients[where]!.serverStream<{ name: string }>('feed', { how })) names.push(item.name);
      } catch (err) {
        failure = err;
      }
      assert.equal(names, ['first'], how);
      assert.instance(failure, RpcError);
      const err = failure as RpcError;
      assert.equal([err.code, err.errorType, plain(err.details)], [code, errorType, details], how);
    }
  });

  test(`${where}: a declared value thrown as is: its own message field, else <name>: <JSON>, bounded, BigInt and bytes safe`, async () => {
    const own = await rejection(clients[where]!.call('single', { how: 'message' }));
    assert.equal([own.code, own.errorType, own.message], [Code.UNKNOWN, 'avrpc.errs.Msg', 'quota exceeded']);
    const empty = await rejection(clients[where]!.call('single', { how: 'empty' }));
    assert.is(empty.message, 'Msg: {"message":"","code":4611686018427387904}', 'an empty message says nothing: the value does');
    const big = await rejection(clients[where]!.call('blobby', { how: '' }));
    assert.is(big.errorType, 'avrpc.errs.Blobby');
    assert.ok(big.message.length <= 200 + 'Blobby: '.length, `${big.message.length} characters`);
    assert.match(big.message, /^Blobby: \{"data":"(ab)+…$/);
    assert.is((big.details as { data: Buffer }).data.length, 1000, 'the value itself is whole');
  });
}

test('inline: an avsc record made with the type of B is sent as B, whatever it shares with A', async () => {
  const B = protocol.type('B')!;
  instanceOfB = () => {
    throw B.clone({ reason: 'typed' });
  };
  const err = await rejection(clients.inline!.call('twin', { how: 'instance-b' }));
  assert.equal([err.code, err.errorType, plain(err.details)], [Code.UNKNOWN, 'avrpc.errs.B', { reason: 'typed' }]);
});

test('a declared value in the string branch of the union (a foreign server may send one) has no errorType', () => {
  for (const name of ['twin', 'single']) {
    const errors = protocol.message(name)!.errors;
    const body = errors.toBuffer(errors.typeName === 'union:wrapped' ? { string: 'text' } : 'text');
    assert.equal(decodeDeclared(errors, body, 0, undefined), { value: 'text', errorType: undefined }, name);
  }
});

test('RpcError: errorType from the options (a string only), undefined by default; withMayHaveRun and the brand keep it', () => {
  const err = new RpcError<'avrpc.errs.A', { reason: string }>(Code.ABORTED, 'm', { errorType: 'avrpc.errs.A', details: { reason: 'r' } });
  const name: 'avrpc.errs.A' = err.errorType; // typed by the parameters
  const reason: string = err.details.reason;
  assert.equal([name, reason], ['avrpc.errs.A', 'r']);
  const copy = err.withMayHaveRun(false);
  assert.equal([copy.errorType, copy.details, copy.mayHaveRun, copy.code], ['avrpc.errs.A', { reason: 'r' }, false, Code.ABORTED]);
  assert.is(new RpcError(Code.INTERNAL, 'x').errorType, undefined);
  assert.is(new RpcError(Code.INTERNAL, 'x', { errorType: 42 as never }).errorType, undefined, 'never throws over its options');
  const untyped: unknown = err;
  if (untyped instanceof RpcError) {
    const t: string | undefined = untyped.errorType; // narrowing gives the default parameters
    assert.is(t, 'avrpc.errs.A');
  } else assert.unreachable('an RpcError');
});

test.run();
