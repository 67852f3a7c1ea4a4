/**
 * `Code` is gRPC's set (names and numbers, checked against @grpc/grpc-js itself); `RpcError.from`
 * normalises anything thrown without ever throwing; `fromNodeError` is the one mapping of Node errors,
 * checked on constructed errors and on real ones from loopback sockets.
 */
import { once } from 'node:events';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { status as grpcStatus } from '@grpc/grpc-js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, codeName, createClient, createServer, fromNodeError, parseProtocol } from '../../src/index.js';
import { thrownMessage } from '../../src/errors/rpc-error.js';

const test = suite('errors');

const sysError = (code: string, message = `${code} happened`): Error & { code: string } => Object.assign(new Error(message), { code });

test("Code has exactly gRPC's names and numbers", () => {
  const grpc = Object.fromEntries(Object.entries(grpcStatus).filter(([k]) => Number.isNaN(Number(k))));
  assert.equal({ ...Code }, grpc);
  for (const [name, value] of Object.entries(Code)) assert.is(codeName(value), name);
  assert.is(codeName(99), 'UNKNOWN');
  assert.ok(Object.isFrozen(Code), 'a fixed set: nobody can add or change a code at run time');
});

test('RpcError: code, name, codeName, metadata, details, cause, isRemote', () => {
  const cause = new Error('root');
  const err = new RpcError(Code.NOT_FOUND, 'no such item', { cause, metadata: { k: 'v' }, details: { why: 'gone' } });
  assert.instance(err, Error);
  assert.is(err.code, 5);
  assert.is(err.codeName, 'NOT_FOUND');
  assert.is(err.name, 'RpcError[NOT_FOUND]');
  assert.is(err.message, 'no such item');
  assert.equal({ ...err.metadata }, { k: 'v' });
  assert.equal(err.details, { why: 'gone' });
  assert.is(err.cause, cause);
  assert.is(err.isRemote, false);
  assert.equal({ ...new RpcError(Code.INTERNAL, 'x').metadata }, {});
});

test('instanceof RpcError holds across two copies of the package; nothing else passes it', async () => {
  // A second module instance of the same file stands for a second install of avrpc in one process.
  const other = (await import(
    new URL('../../src/errors/rpc-error.js?second-copy', import.meta.url).href
  )) as typeof import('../../src/errors/rpc-error.js');
  assert.is.not(other.RpcError, RpcError, 'a distinct class');
  const foreign = new other.RpcError(Code.NOT_FOUND, 'from the other copy');
  assert.ok(foreign instanceof RpcError);
  assert.ok(new RpcError(Code.INTERNAL, 'ours') instanceof other.RpcError);
  assert.is(RpcError.from(foreign), foreign, 'RpcError.from keeps it as is');
  for (const value of [new Error('plain'), { code: Code.NOT_FOUND, message: 'lookalike' }, null, undefined, 'RpcError', 3]) {
    assert.not.ok(value instanceof RpcError, String(value));
  }
});

test('RpcError.from: an RpcError is returned as is', () => {
  const err = new RpcError(Code.ABORTED, 'kept');
  assert.is(RpcError.from(err), err);
  assert.is(RpcError.from(err, Code.UNAVAILABLE), err);
});

test('RpcError.from: Node system errors go through fromNodeError', () => {
  const e = RpcError.from(sysError('ECONNRESET'));
  assert.is(e.code, Code.UNAVAILABLE);
  assert.match(e.message, /ECONNRESET/);
});

test('RpcError.from: anything else becomes the fallback code with its text, the original as cause, and never throws', () => {
  const plain = new TypeError('bad thing');
  const cases: [unknown, string][] = [
    [plain, 'bad thing'],
    ['just a string', 'just a string'],
    [42, '42'],
    [null, 'null'],
    [undefined, 'undefined'],
    [Symbol('s'), 'Symbol(s)'],
    [{ message: 'an object with a message' }, 'an object with a message'],
    [{ reason: 'no message' }, '[object Object]'],
    [Object.create(null), '[object Object]'],
    [
      {
        toString() {
          throw new Error('hostile toString');
        },
      },
      '[object Object]',
    ],
    [Object.assign(new Error('numeric code'), { code: 5 }), 'numeric code'],
  ];
  for (const [thrown, text] of cases) {
    const e = RpcError.from(thrown);
    assert.is(e.code, Code.INTERNAL, text);
    assert.is(e.message, text);
    assert.is(e.cause, thrown);
    assert.is(thrownMessage(thrown), text);
  }
  assert.is(RpcError.from('x', Code.UNAVAILABLE).code, Code.UNAVAILABLE);
});

test('fromNodeError maps every Node error code it knows, and anything else to INTERNAL', () => {
  const table: Record<string, number> = {
    ECONNREFUSED: Code.UNAVAILABLE,
    ECONNRESET: Code.UNAVAILABLE,
    ECONNABORTED: Code.UNAVAILABLE,
    EPIPE: Code.UNAVAILABLE,
    ETIMEDOUT: Code.UNAVAILABLE,
    EHOSTUNREACH: Code.UNAVAILABLE,
    EHOSTDOWN: Code.UNAVAILABLE,
    ENETUNREACH: Code.UNAVAILABLE,
    ENETDOWN: Code.UNAVAILABLE,
    ENOTFOUND: Code.UNAVAILABLE,
    EAI_AGAIN: Code.UNAVAILABLE,
    EADDRNOTAVAIL: Code.UNAVAILABLE,
    ERR_SOCKET_CLOSED: Code.UNAVAILABLE,
    ERR_STREAM_DESTROYED: Code.UNAVAILABLE,
    ERR_STREAM_WRITE_AFTER_END: Code.UNAVAILABLE,
    ERR_SOCKET_CONNECTION_TIMEOUT: Code.UNAVAILABLE,
    ERR_TLS_CERT_ALTNAME_INVALID: Code.UNAVAILABLE,
    ERR_SSL_WRONG_VERSION_NUMBER: Code.UNAVAILABLE,
    DEPTH_ZERO_SELF_SIGNED_CERT: Code.UNAVAILABLE,
    SELF_SIGNED_CERT_IN_CHAIN: Code.UNAVAILABLE,
    CERT_HAS_EXPIRED: Code.UNAVAILABLE,
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: Code.UNAVAILABLE,
    HOSTNAME_MISMATCH: Code.UNAVAILABLE,
    EMFILE: Code.RESOURCE_EXHAUSTED,
    ENFILE: Code.RESOURCE_EXHAUSTED,
    ENOBUFS: Code.RESOURCE_EXHAUSTED,
    ENOMEM: Code.RESOURCE_EXHAUSTED,
    EACCES: Code.PERMISSION_DENIED,
    EPERM: Code.PERMISSION_DENIED,
    EADDRINUSE: Code.INTERNAL,
    EINVAL: Code.INTERNAL,
    ERR_INVALID_ARG_TYPE: Code.INTERNAL,
  };
  for (const [nodeCode, code] of Object.entries(table)) {
    const cause = sysError(nodeCode, 'details');
    const e = fromNodeError(cause);
    assert.is(e.code, code, `${nodeCode} -> ${codeName(code)}, got ${e.codeName}`);
    assert.is(e.message, code === Code.UNAVAILABLE ? `connection failed (${nodeCode}: details)` : `${nodeCode}: details`);
    assert.is(e.cause, cause);
  }
  assert.is(fromNodeError(new Error('no code')).code, Code.INTERNAL);
  assert.is(
    fromNodeError(sysError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1')).message,
    'connection failed (connect ECONNREFUSED 127.0.0.1:1)',
    'the code is not repeated',
  );
  assert.is(fromNodeError(Object.assign(new Error('x'), { code: Code.NOT_FOUND })).code, Code.NOT_FOUND, 'a numeric Code is kept');
});

test('real socket errors: ECONNREFUSED and ECONNRESET from loopback are UNAVAILABLE', async () => {
  const net = createNetServer((s) => s.resetAndDestroy());
  net.listen(0, '127.0.0.1');
  await once(net, 'listening');
  const { port } = net.address() as AddressInfo;
  try {
    const reset = connect({ host: '127.0.0.1', port });
    const [resetErr] = (await once(reset, 'error').catch((e: unknown) => [e])) as [Error & { code: string }];
    assert.is(resetErr.code, 'ECONNRESET');
    assert.is(fromNodeError(resetErr).code, Code.UNAVAILABLE);
  } finally {
    net.close();
    await once(net, 'close');
  }
  const refused = connect({ host: '127.0.0.1', port });
  const [refusedErr] = (await once(refused, 'error').catch((e: unknown) => [e])) as [Error & { code: string }];
  assert.is(refusedErr.code, 'ECONNREFUSED');
  assert.is(RpcError.from(refusedErr).code, Code.UNAVAILABLE);
});

test('server.listen on a port in use rejects with an RpcError naming EADDRINUSE', async () => {
  const a = createServer({ protocol: parseProtocol('protocol P { string p(); }'), handlers: {} });
  const b = createServer({ protocol: parseProtocol('protocol P { string p(); }'), handlers: {} });
  const { port } = await a.listen({ host: '127.0.0.1', port: 0 });
  try {
    const err = await b.listen({ host: '127.0.0.1', port }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.instance(err, RpcError);
    assert.match((err as RpcError).message, /^listen EADDRINUSE/);
  } finally {
    await Promise.all([a.close({ graceMs: 0 }), b.close({ graceMs: 0 })]);
  }
});

test('a handler throwing a value that cannot be turned into text still answers INTERNAL (no unhandled rejection)', async () => {
  const protocol = parseProtocol('protocol P { string sync(); string async(); }');
  const hostile = {
    toString(): string {
      throw new Error('hostile toString');
    },
  };
  const server = createServer({
    protocol,
    handlers: {
      sync: () => {
        throw Object.create(null);
      },
      async: async () => {
        throw hostile;
      },
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  try {
    for (const message of ['sync', 'async']) {
      const err = await client.call(message, {}, { timeoutMs: 10_000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.instance(err, RpcError);
      assert.is((err as RpcError).code, Code.INTERNAL, `${message}: ${(err as RpcError).message}`);
      assert.is((err as RpcError).message, '[object Object]');
    }
  } finally {
    await client.close();
    await server.close({ graceMs: 1000 });
  }
});

test.run();
