import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createClient, createServer, loadProtocol, type Protocol } from '../../src/index.js';
import { repoPath } from '../helpers/repo.js';

/** Issue 14: the options added for rapid reset, handshake caps and peer protocols are validated like every other. */
const test = suite('security: issue 14 options');
let protocol: Protocol;
test.before(async () => {
  protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
});

function thrown(fn: () => unknown): RpcError {
  try {
    fn();
  } catch (err) {
    assert.instance(err, RpcError);
    return err as RpcError;
  }
  throw new Error('did not throw');
}

test('server options: a bad value is INVALID_ARGUMENT naming the option', () => {
  for (const [key, value] of [
    ['maxCancels', -1],
    ['maxCancelRatio', 0.5],
    ['cancelWindowMs', 0],
    ['maxHandshakingConnections', 0],
    ['maxHandshakingPerAddress', 0],
    ['resolverCacheBytes', 0],
    ['maxProtocolBytes', 'big'],
    ['protocolParseMsPerSecond', 2000],
  ] as const) {
    const err = thrown(() => createServer({ protocol, handlers: {}, [key]: value }));
    assert.is(err.code, Code.INVALID_ARGUMENT, key);
    assert.match(err.message, `createServer: options.${key}`);
  }
});

test('client option maxProtocolBytes: a bad value is INVALID_ARGUMENT naming it', () => {
  const err = thrown(() => createClient({ protocol, endpoints: ['127.0.0.1:1'], maxProtocolBytes: -5 }));
  assert.is(err.code, Code.INVALID_ARGUMENT);
  assert.match(err.message, 'createClient: options.maxProtocolBytes');
});

test.run();
