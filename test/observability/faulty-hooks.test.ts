import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createClient, createServer, parseProtocol, type Logger, type RpcObserver } from '../../src/index.js';

const test = suite('an observer or logger that throws breaks no call, connection or process');
const protocol = parseProtocol(`protocol Hooks { string hello(string name); string later(string name); string boom(); }`);
const handlers = {
  hello: (req: { name: string }) => `hi ${req.name}`,
  later: async (req: { name: string }) => `later ${req.name}`,
  boom: () => {
    throw new Error('kaput');
  },
};

/** An observer whose every hook throws, counting how often each was called. */
function throwingObserver(calls: Map<string, number>): RpcObserver {
  const hook = (name: string) => (): never => {
    calls.set(name, (calls.get(name) ?? 0) + 1);
    throw new Error(`${name} is broken`);
  };
  return {
    connectionOpened: hook('connectionOpened'),
    connectionClosed: hook('connectionClosed'),
    callStarted: hook('callStarted'),
    callEnded: hook('callEnded'),
    bytesReceived: hook('bytesReceived'),
    bytesSent: hook('bytesSent'),
    poolAttached: hook('poolAttached'),
  };
}

test('throwing observer hooks: calls succeed, each broken hook is logged once at error', async () => {
  const serverHooks = new Map<string, number>();
  const clientHooks = new Map<string, number>();
  const serverLogs: string[] = [];
  const clientLogs: string[] = [];
  const recorder = (into: string[]): Logger => ({
    debug() {},
    info() {},
    warn() {},
    error: (obj, msg) => {
      into.push(`${(obj as { hook: string }).hook}: ${msg}`);
    },
  });
  const server = createServer({ protocol, handlers, observer: throwingObserver(serverHooks), logger: recorder(serverLogs) });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({
    protocol,
    endpoints: [`127.0.0.1:${port}`],
    observer: throwingObserver(clientHooks),
    logger: recorder(clientLogs),
  });
  try {
    for (let i = 0; i < 3; i++) {
      assert.is(await client.call('hello', { name: 'a' }), 'hi a');
      assert.is(await client.call('later', { name: 'b' }), 'later b');
      assert.is(await client.call('boom', {}).catch((e: RpcError) => e.code), Code.INTERNAL);
    }
    for (const name of ['connectionOpened', 'callStarted', 'callEnded', 'bytesReceived', 'bytesSent']) {
      assert.ok((serverHooks.get(name) ?? 0) >= 1, `server ${name} was called`);
      assert.ok((clientHooks.get(name) ?? 0) >= 1, `client ${name} was called`);
    }
    assert.is(serverHooks.get('callEnded'), 9, 'still called after throwing');
    assert.is(clientHooks.get('callEnded'), 9);
    const broken = (logs: string[]) =>
      logs
        .filter((l) => l.endsWith('observer hook threw; ignored from now on'))
        .map((l) => l.split(':')[0])
        .sort();
    assert.equal(broken(serverLogs), ['bytesReceived', 'bytesSent', 'callEnded', 'callStarted', 'connectionOpened']);
    assert.equal(broken(clientLogs), ['bytesReceived', 'bytesSent', 'callEnded', 'callStarted', 'connectionOpened', 'poolAttached']);
  } finally {
    await client.close();
    await server.close({ graceMs: 100 });
  }
});

test('a logger that throws: the failing call is still answered and the connection lives on', async () => {
  let attempts = 0;
  const broken = (): never => {
    attempts++;
    throw new Error('log sink down');
  };
  const logger: Logger = { debug: broken, info: broken, warn: broken, error: broken };
  const server = createServer({ protocol, handlers, logger });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], logger });
  try {
    assert.is(await client.call('boom', {}).catch((e: RpcError) => e.code), Code.INTERNAL);
    assert.is(attempts, 1, 'the handler failure was offered to the logger');
    assert.is(await client.call('hello', { name: 'again' }), 'hi again');
    assert.equal(
      client.stats().map((s) => s.ready),
      [1],
    );
  } finally {
    await client.close();
    await server.close({ graceMs: 100 });
  }
});

test.run();
