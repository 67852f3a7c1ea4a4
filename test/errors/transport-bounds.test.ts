/**
 * Issue 9, item 3: the transport options both sides share have one set of bounds
 * (TRANSPORT_BOUNDS); the two resolvers used to carry their own copies, which drifted (a server took
 * `maxMessageBytes: 0`, a client refused it). Each side must accept each bound and refuse one past it,
 * with a message naming the option's path.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, loadProtocol, type Protocol } from '../../src/index.js';
import { resolveClientOptions } from '../../src/client/client-options.js';
import { resolveServerOptions } from '../../src/server/server-options.js';
import { TRANSPORT_BOUNDS, type TransportOptions } from '../../src/connection/transport-options.js';
import { repoPath } from '../helpers/repo.js';

let protocol: Protocol;

test.before(async () => {
  protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
});

const sides = {
  createServer: (o: TransportOptions) => resolveServerOptions({ protocol, handlers: {}, ...o }),
  createClient: (o: TransportOptions) => resolveClientOptions({ protocol, endpoints: ['127.0.0.1:1'], ...o }),
};

/** The message of the INVALID_ARGUMENT `f` throws, or undefined when it accepts. */
function refusal(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    assert.instance(err, RpcError);
    assert.is((err as RpcError).code, Code.INVALID_ARGUMENT);
    return (err as Error).message;
  }
}

test('both sides accept every bound of every transport option and refuse one past it', () => {
  const problems: string[] = [];
  for (const [factory, resolve] of Object.entries(sides)) {
    for (const [name, { min, max }] of Object.entries(TRANSPORT_BOUNDS)) {
      for (const ok of [min, max]) {
        const message = refusal(() => resolve({ [name]: ok }));
        if (message !== undefined) problems.push(`${factory} refused ${name} ${ok}: ${message}`);
      }
      for (const bad of [min - 1, max + 1]) {
        const message = refusal(() => resolve({ [name]: bad }));
        const want = `${factory}: options.${name} must be between ${min} and ${max}, got ${bad}`;
        if (message !== want) problems.push(`${factory} ${name} ${bad}: ${message ?? 'accepted'}, wanted ${want}`);
      }
    }
  }
  assert.equal(problems, []);
});

test('maxMessageBytes is at least 1 on both sides (the server took 0)', () => {
  for (const [factory, resolve] of Object.entries(sides))
    assert.is(
      refusal(() => resolve({ maxMessageBytes: 0 })),
      `${factory}: options.maxMessageBytes must be between 1 and 4294967295, got 0`,
    );
});

test('fragmentBytes: 0 (off) or at least 8, on both sides', () => {
  for (const [factory, resolve] of Object.entries(sides)) {
    assert.is(
      refusal(() => resolve({ fragmentBytes: 7 })),
      `${factory}: options.fragmentBytes must be 0 (off) or at least 8, got 7`,
    );
    assert.is(
      refusal(() => resolve({ fragmentBytes: 0 })),
      undefined,
    );
    assert.is(
      refusal(() => resolve({ fragmentBytes: 8 })),
      undefined,
    );
  }
});

test('a wrong type names the option too', () => {
  assert.is(
    refusal(() => sides.createServer({ maxFrameBytes: '1' as never })),
    'createServer: options.maxFrameBytes must be an integer, got "1"',
  );
  assert.is(
    refusal(() => sides.createClient({ keepaliveMs: 1.5 })),
    'createClient: options.keepaliveMs must be an integer, got 1.5',
  );
});

test.run();
