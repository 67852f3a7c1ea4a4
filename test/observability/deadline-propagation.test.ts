import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createClient, createServer, parseProtocol, type CallContext, type Client, type Server } from '../../src/index.js';

/** A three-hop chain A -> B -> C where each hop calls the next from inside its handler. */
const test = suite('deadline and cancellation propagation');
const protocol = parseProtocol(`protocol Hop { string hop(int depth); }`);

/**
 * What each hop saw: the deadline of its incoming call, the time its handler started (both on the
 * `Date.now()` clock), `ended` resolving once the handler's signal aborted or its downstream call
 * settled (a handler that has returned is no longer running, so its signal need not abort), and
 * how the downstream call settled.
 */
interface Seen {
  deadline: number;
  at: number;
  aborted: Promise<unknown>;
  ended: Promise<unknown>;
  downstream?: Promise<unknown>;
}
interface Hop {
  server: Server;
  client: Client | undefined;
  seen: Seen[];
}

/** `downstreamTimeoutMs`: an explicit (long) timeout each hop asks for; the inherited deadline must still cap it. */
async function chain(downstreamTimeoutMs?: number): Promise<{ hops: Hop[]; entry: Client }> {
  const hops: Hop[] = [];
  let next: Client | undefined;
  for (let i = 0; i < 3; i++) {
    const downstream = next;
    const hop: Hop = { server: undefined!, client: downstream, seen: [] };
    hop.server = createServer({
      protocol,
      handlers: {
        hop: async (req: { depth: number }, ctx: CallContext) => {
          const at = Date.now();
          const aborted = new Promise((r) => ctx.signal.addEventListener('abort', () => r(ctx.signal.reason)));
          if (downstream === undefined) {
            hop.seen.push({ deadline: ctx.deadline, at, aborted, ended: aborted });
            return new Promise<string>(() => {}); // the last hop never answers
          }
          // No signal passed on: cancellation must come from the incoming call.
          const call = downstream.call<string>(
            'hop',
            { depth: req.depth + 1 },
            downstreamTimeoutMs === undefined ? undefined : { timeoutMs: downstreamTimeoutMs },
          );
          const settled = call.then(
            () => undefined,
            (e: unknown) => e,
          );
          hop.seen.push({ deadline: ctx.deadline, at, aborted, ended: Promise.race([aborted, settled]), downstream: settled });
          return call;
        },
      },
    });
    const { port } = await hop.server.listen({ host: '127.0.0.1', port: 0 });
    next = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
    hops.unshift(hop);
  }
  return { hops, entry: next! };
}

/** Awaits `p`, failing (not hanging) if it never settles: a broken propagation leaves hops running. */
async function settles<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: never happened`)), 10_000);
  });
  try {
    return await Promise.race([p, stuck]);
  } finally {
    clearTimeout(timer);
  }
}

/** Servers first, at once: that fails whatever is still in flight, so closing the clients never waits. */
async function teardown(hops: Hop[], entry: Client): Promise<void> {
  for (const h of hops) await h.server.close({ graceMs: 0 });
  await entry.close();
  for (const h of hops) await h.client?.close();
}

test('cancelling the first call cancels the whole call tree', async () => {
  const { hops, entry } = await chain();
  try {
    const controller = new AbortController();
    const pending = entry.call('hop', { depth: 0 }, { signal: controller.signal }).catch((e: unknown) => e);
    for (let i = 0; i < 200 && hops[2]!.seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.is(hops[2]!.seen.length, 1, 'the call reached the third hop');
    controller.abort();
    assert.is(((await pending) as RpcError).code, Code.CANCELLED);
    for (const [i, hop] of hops.entries()) {
      const reason = await settles(hop.seen[0]!.aborted, `hop ${i} signal abort`);
      assert.instance(reason, RpcError, `hop ${i} saw its signal abort`);
    }
  } finally {
    await teardown(hops, entry);
  }
});

test('a deadline set by the first caller caps every hop and expires the whole tree', async () => {
  // Each hop asks for a 60 s timeout downstream; the first caller's 300 ms must win at every hop.
  const { hops, entry } = await chain(60_000);
  try {
    const err = await settles(
      entry.call('hop', { depth: 0 }, { timeoutMs: 300 }).catch((e: unknown) => e),
      'the first call',
    );
    assert.instance(err, RpcError);
    assert.is((err as RpcError).code, Code.DEADLINE_EXCEEDED);
    let previous = 300;
    for (const [i, hop] of hops.entries()) {
      assert.is(hop.seen.length, 1, `hop ${i} was called once`);
      const seen = hop.seen[0]!;
      assert.ok(seen.deadline !== Infinity, `hop ${i} got a deadline`);
      // Time left never grows along the chain (2 ms for ms rounding between clocks), so the 60 s
      // asked for downstream was capped by what the first caller allowed.
      const remaining = seen.deadline - seen.at;
      assert.ok(remaining <= previous + 2, `hop ${i} has ${remaining} ms left, its caller had ${previous} ms`);
      previous = remaining;
      // None is left running: the signal aborts, or the handler ended with its downstream call.
      await settles(seen.ended, `hop ${i} ended`);
      if (seen.downstream !== undefined) {
        const down = await seen.downstream;
        assert.instance(down, RpcError, `hop ${i}'s downstream call failed`);
        assert.ok(
          ([Code.DEADLINE_EXCEEDED, Code.CANCELLED] as Code[]).includes((down as RpcError).code),
          `hop ${i}: ${(down as RpcError).message}`,
        );
      }
    }
    // The last hop never answers: only its signal can end it, by deadline or by a CANCEL from hop 1.
    assert.instance(await settles(hops[2]!.seen[0]!.aborted, 'last hop abort'), RpcError, 'the last hop saw its signal abort');
  } finally {
    await teardown(hops, entry);
  }
});

test.run();
