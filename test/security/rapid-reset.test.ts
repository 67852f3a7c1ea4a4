import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, type Protocol } from '../../src/index.js';
import { CancelGuard } from '../../src/server/cancel-guard.js';
import { FrameType } from '../../src/framing/frame.js';
import { rawFrame } from '../helpers/raw-client.js';
import { frameCode, frameMessage, requestBytes, until } from '../helpers/raw-peer.js';
import { outcome, securityFixture } from '../helpers/security-fixture.js';

/**
 * Issue 14, HTTP/2 "Rapid Reset" (CVE-2023-44487): a cancelled call keeps its slot of
 * maxConcurrentCalls until its handler settles, and a client that cancels far more than it completes
 * is cut off.
 */
const test = suite('security: rapid reset');
let protocol: Protocol;
const { serve, client, peer } = securityFixture(test, (p) => {
  protocol = p;
});
const item = { id: 14, name: 'reset', tags: [], score: 0, blob: Buffer.alloc(0) };

/** A handler gate the test opens; opened again after each test so that no handler outlives it. */
let open: () => void = () => {};
test.after.each(() => open());
function gate(): Promise<void> {
  return new Promise((r) => {
    open = r;
  });
}

test('1000 REQUEST+CANCEL pairs against maxConcurrentCalls 100: at most 100 handlers start, then GOAWAY RESOURCE_EXHAUSTED', async () => {
  // Before: every CANCEL freed its slot at once, so all 1000 handlers ran at the same time.
  const held = gate();
  let started = 0;
  const { server, port } = await serve({
    maxConcurrentCalls: 100,
    handlers: {
      echo: async (req: { item: unknown }) => {
        started++;
        await held;
        return req.item;
      },
    },
  });
  const p = await peer(port);
  assert.is((await p.handshake(protocol)).type, FrameType.WELCOME);
  const pairs: Buffer[] = [];
  for (let id = 1; id <= 1000; id++) pairs.push(requestBytes(protocol, id, 'echo', { item }), rawFrame(FrameType.CANCEL, 0, id, null));
  p.socket.write(Buffer.concat(pairs));
  const frames = await p.rest();
  assert.ok(started <= 100, `handlers started: ${started}`);
  assert.is(started, 100, 'the first 100 calls did run');
  const last = frames[frames.length - 1]!;
  assert.is(last.type, FrameType.GOAWAY);
  assert.is(frameCode(last), Code.RESOURCE_EXHAUSTED);
  assert.match(frameMessage(last), 'too many cancelled calls');
  assert.match(frameMessage(last), 'maxCancels 500');
  // Beyond the 100 slots held by cancelled handlers, requests were refused, never run.
  for (const f of frames.slice(0, -1)) {
    assert.is(f.type, FrameType.ERROR);
    assert.is(frameCode(f), Code.RESOURCE_EXHAUSTED);
  }
  await until(() => server.connections === 0, 'connection closed');
});

test('a cancelled call frees its id at once but holds its slot until its handler returns', async () => {
  // Before: the cancelled call's slot was free at once, so the third handler ran too.
  const held = gate();
  let started = 0;
  const { port } = await serve({
    maxConcurrentCalls: 2,
    handlers: {
      echo: async (req: { item: unknown }) => {
        started++;
        await held;
        return req.item;
      },
    },
  });
  const p = await peer(port);
  await p.handshake(protocol);
  // id 1 is cancelled, then reused at once (SPEC.md section 4: it is no longer outstanding).
  p.socket.write(
    Buffer.concat([
      requestBytes(protocol, 1, 'echo', { item }),
      rawFrame(FrameType.CANCEL, 0, 1, null),
      requestBytes(protocol, 1, 'echo', { item }),
    ]),
  );
  await until(() => started === 2, 'both handlers started');
  // The cancelled handler still runs: the slot it holds is not free.
  p.socket.write(requestBytes(protocol, 2, 'echo', { item }));
  const refused = await p.frame();
  assert.is(refused.id, 2);
  assert.is(frameCode(refused), Code.RESOURCE_EXHAUSTED);
  assert.is(started, 2);
  // Both handlers return: the cancelled one is answered with nothing, the second id 1 with its RESPONSE.
  open();
  const answer = await p.frame();
  assert.is(answer.type, FrameType.RESPONSE);
  assert.is(answer.id, 1);
  // Both slots are free again.
  p.socket.write(Buffer.concat([requestBytes(protocol, 3, 'echo', { item }), requestBytes(protocol, 4, 'echo', { item })]));
  const answers = [await p.frame(), await p.frame()];
  assert.equal(
    answers.map((f) => f.type),
    [FrameType.RESPONSE, FrameType.RESPONSE],
  );
  assert.is(started, 4);
});

test('a real client cancelling one call in three is never cut off', async () => {
  let opened = 0;
  let cancelled = 0;
  const { server, port } = await serve({
    maxCancels: 50,
    observer: {
      connectionOpened: () => {
        opened++;
      },
      callEnded: (_m: string, code: Code) => {
        if (code === Code.CANCELLED) cancelled++;
      },
    },
    handlers: {
      echo: async (req: { item: unknown }) => {
        await new Promise((r) => setTimeout(r, 5));
        return req.item;
      },
    },
  });
  const c = client(port);
  assert.is(await outcome(c.call('echo', { item })), 'OK');
  for (let round = 0; round < 10; round++) {
    const calls = Array.from({ length: 30 }, (_, i) => {
      const ac = new AbortController();
      const p = outcome(c.call('echo', { item }, { signal: ac.signal }));
      if (i % 3 === 0) setTimeout(() => ac.abort(), 1);
      return { p, cancelled: i % 3 === 0 };
    });
    for (const { p, cancelled: wasCancelled } of calls) {
      const got = await p;
      if (!wasCancelled) assert.is(got, 'OK');
    }
  }
  await until(() => cancelled >= 60, `server saw the cancels (${cancelled})`);
  assert.ok(cancelled > 50, 'more CANCELs than maxCancels');
  assert.is(await outcome(c.call('echo', { item })), 'OK');
  assert.is(opened, 1, 'one connection throughout: never cut off');
  assert.is(server.connections, 1);
});

test('a client whose calls all time out against a slow server is not cut off: a CANCEL at the deadline is a timeout', async () => {
  let opened = 0;
  let started = 0;
  const { server, port } = await serve({
    maxCancels: 10,
    observer: {
      connectionOpened: () => {
        opened++;
      },
    },
    handlers: {
      echo: async (req: { item: unknown }, ctx) => {
        started++;
        // Slow, but not forever: ends when its deadline passes (the client's CANCEL comes about then).
        await new Promise((r) => ctx.signal.addEventListener('abort', r, { once: true }));
        return req.item;
      },
    },
  });
  const c = client(port);
  const codes = await Promise.all(Array.from({ length: 40 }, () => outcome(c.call('echo', { item }, { timeoutMs: 100 }))));
  assert.ok(
    codes.every((code) => code === Code.DEADLINE_EXCEEDED),
    String(codes),
  );
  assert.is(started, 40);
  // 40 CANCELs, each at its call's deadline (before or just after the server's own deadline ended the
  // handler): timeouts, not resets. The connection serves on.
  assert.is(await outcome(c.call('echo', { item }, { timeoutMs: 100 })), Code.DEADLINE_EXCEEDED);
  assert.is(opened, 1, 'never cut off, never reconnected');
  assert.is(server.connections, 1);
});

test('CancelGuard: the absolute floor and the ratio must both be passed', () => {
  const now = 0;
  const guard = new CancelGuard({ maxCancels: 10, maxCancelRatio: 2, cancelWindowMs: 1000 }, () => now);
  // 9 cancels, nothing completed: under the floor.
  for (let i = 0; i < 9; i++) assert.is(guard.cancel(0), false);
  // The 10th reaches the floor with nothing completed.
  assert.is(guard.cancel(0), true);
  const busy = new CancelGuard({ maxCancels: 10, maxCancelRatio: 2, cancelWindowMs: 1000 }, () => now);
  // 10 calls completed: up to 20 cancels are within the ratio.
  for (let i = 0; i < 20; i++) assert.is(busy.cancel(10), false, `cancel ${i + 1}`);
  assert.is(busy.cancel(10), true);
  assert.match(busy.describe(), '21 CANCELs against 10 completed calls');
});

test('CancelGuard: counts halve every window, so a steady slow canceller is never cut off', () => {
  let now = 0;
  const guard = new CancelGuard({ maxCancels: 10, maxCancelRatio: 0, cancelWindowMs: 1000 }, () => now);
  // 4 cancels per window, no completed call: the count settles at 7 (4 + 4/2 + 4/4 ..., rounded down),
  // under the floor of 10, which only cancels bunched within about a window reach.
  for (let w = 0; w < 100; w++) {
    now = w * 1000;
    for (let i = 0; i < 4; i++) assert.is(guard.cancel(0), false, `window ${w}`);
  }
  now += 1000;
  const burst = Array.from({ length: 10 }, () => guard.cancel(0));
  assert.is(burst.includes(true), true, 'a burst within one window is cut off');
  const idle = new CancelGuard({ maxCancels: 10, maxCancelRatio: 0, cancelWindowMs: 1000 }, () => now);
  for (let i = 0; i < 9; i++) idle.cancel(0);
  // After 40 windows of quiet nothing is remembered.
  now += 40_000;
  for (let i = 0; i < 9; i++) assert.is(idle.cancel(0), false);
});

test('CancelGuard: completions since the last CANCEL count as recent', () => {
  let now = 0;
  const guard = new CancelGuard({ maxCancels: 2, maxCancelRatio: 1, cancelWindowMs: 1000 }, () => now);
  assert.is(guard.cancel(0), false);
  now = 5000;
  // 5 calls completed since: not halved away by the windows that passed.
  for (let i = 0; i < 5; i++) assert.is(guard.cancel(5), false);
  assert.is(guard.cancel(5), true);
});

test.run();
