/**
 * Keepalive's policy on a fake clock (SPEC.md section 6): when it PINGs, when it declares the peer
 * dead, what counts as life, and that our own loop's stalls are not the peer's. Deterministic, no
 * sockets; the end-to-end cases (real peers, real stalls) are in test/client/liveness.test.ts,
 * test/client/silent-server.test.ts, test/core/connection-loss.test.ts and test/chaos/sigstop.test.ts.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Keepalive, probeAfterMs } from '../../src/connection/keepalive.js';
import { Code } from '../../src/errors/code.js';
import type { RpcError } from '../../src/errors/rpc-error.js';
import { FakeClock } from '../helpers/fake-clock.js';

const test = suite('keepalive');
/** Test periods: idle PING after K, dead T after a PING, probe after P = T / 8 while replies are awaited. */
const K = 1000;
const T = 400;
const P = probeAfterMs(K, T);

interface Rig {
  ka: Keepalive;
  clock: FakeClock;
  /** When each PING went out, and its id. */
  pings: { at: number; id: number }[];
  deaths: { at: number; error: RpcError }[];
  /** What `awaitingReplies()` answers. */
  awaiting: boolean;
}

function rig(keepaliveMs = K, timeoutMs = T): Rig {
  const clock = new FakeClock();
  const pings: Rig['pings'] = [];
  const deaths: Rig['deaths'] = [];
  const host = {
    ping: (id: number) => pings.push({ at: clock.now(), id }),
    dead: (error: RpcError) => deaths.push({ at: clock.now(), error }),
    awaitingReplies: () => r.awaiting,
  };
  const r: Rig = { ka: new Keepalive(keepaliveMs, timeoutMs, host, clock), clock, pings, deaths, awaiting: false };
  r.ka.start();
  return r;
}

/** Advances until the next PING (bounded), and returns when it went out. */
function nextPing(r: Rig, withinMs = 10 * K): number {
  const before = r.pings.length;
  for (let i = 0; i < withinMs && r.pings.length === before; i++) r.clock.advance(1);
  assert.is(r.pings.length, before + 1, `a PING within ${withinMs} ms`);
  return r.pings[before]!.at;
}

test('probeAfterMs: an eighth of the PING timeout, at most keepaliveMs, at least 1 ms', () => {
  assert.is(probeAfterMs(30_000, 2000), 250, "the client's defaults");
  assert.is(probeAfterMs(100, 2000), 100);
  assert.is(probeAfterMs(30_000, 4), 1);
  assert.is(P, 50);
});

test('idle: a PING after keepaliveMs without receiving anything, not before; its id counts up', () => {
  const r = rig();
  r.clock.advance(K - 1);
  assert.equal(r.pings, []);
  r.clock.advance(1);
  assert.equal(r.pings, [{ at: K, id: 1 }]);
  r.ka.pong(1);
  r.clock.advance(K);
  assert.equal(
    r.pings.map((p) => p.id),
    [1, 2],
  );
});

test('the PING comes one to two periods after the last byte received (checked once per period)', () => {
  for (const lastData of [1, K / 2, K - 1]) {
    const r = rig();
    r.clock.advance(lastData);
    r.ka.gotData = true;
    const silence = nextPing(r) - lastData;
    assert.ok(silence >= K && silence <= 2 * K, `data at ${lastData}: PING after ${silence} ms of silence`);
    // And the verdict keepaliveTimeoutMs after the PING: K + T to 2K + T of silence in all.
    r.clock.advance(T);
    assert.is(r.deaths.length, 1);
    const dead = r.deaths[0]!.at - lastData;
    assert.ok(dead >= K + T && dead <= 2 * K + T, `dead after ${dead} ms of silence`);
  }
});

test('dead after keepaliveTimeoutMs without a byte after the PING: UNAVAILABLE, once, and it stops', () => {
  const r = rig();
  const pingAt = nextPing(r);
  r.clock.advance(T - 1);
  assert.equal(r.deaths, []);
  r.clock.advance(1);
  assert.is(r.deaths.length, 1);
  assert.is(r.deaths[0]!.at, pingAt + T);
  assert.is(r.deaths[0]!.error.code, Code.UNAVAILABLE);
  assert.match(r.deaths[0]!.error.message, `keepalive timeout: no answer to PING within ${T} ms`);
  assert.is(r.clock.pending, 0, 'no timer left');
  // A late PONG, bytes or a call after the verdict start nothing again.
  r.ka.pong(1);
  r.ka.gotData = true;
  r.ka.expectReply();
  r.clock.advance(10 * K);
  assert.is(r.clock.pending, 0);
  assert.is(r.deaths.length, 1);
  assert.is(r.pings.length, 1, 'one PING, unanswered');
});

test('with replies awaited, a call sent on an idle connection PINGs after probeAfterMs of silence', () => {
  const r = rig();
  r.clock.advance(100);
  r.awaiting = true;
  r.ka.expectReply();
  r.clock.advance(P - 1);
  assert.equal(r.pings, []);
  r.clock.advance(1);
  assert.equal(r.pings, [{ at: 100 + P, id: 1 }]);
});

test('life seen once the replies came (nothing awaited): the next quiet period is keepaliveMs again', () => {
  const r = rig();
  r.awaiting = true;
  r.ka.expectReply();
  r.clock.advance(1);
  r.ka.gotData = true; // the reply
  r.awaiting = false;
  assert.is(nextPing(r), P + K);
});

test('expectReply is cheap: one re-arm per idle period, however many calls, and none while a PING is out', () => {
  const r = rig();
  r.awaiting = true;
  const armed = r.clock.created;
  for (let i = 0; i < 1000; i++) r.ka.expectReply();
  assert.is(r.clock.created, armed + 1, 'armed once for the probe');
  const pingAt = nextPing(r);
  const afterPing = r.clock.created;
  for (let i = 0; i < 1000; i++) r.ka.expectReply();
  assert.is(r.clock.created, afterPing, 'the PING timeout is not shortened');
  r.clock.advance(T);
  assert.is(r.deaths[0]!.at, pingAt + T);
});

test('client defaults: a server silent with a call in flight is found within 1.125 to 1.25 times keepaliveTimeoutMs, by one PING', () => {
  // Moved from silent-server.test.ts: keepaliveMs 30 s, keepaliveTimeoutMs 2 s, a 10 s call deadline.
  for (const lastData of [0, 1, 125, 249]) {
    const r = rig(30_000, 2000);
    r.awaiting = true;
    r.ka.expectReply(); // the call, at 0
    r.clock.advance(lastData);
    if (lastData > 0) r.ka.gotData = true; // the server's last bytes
    r.clock.advance(10_000);
    assert.is(r.pings.length, 1, 'one PING, unanswered');
    assert.is(r.deaths.length, 1);
    const silence = r.deaths[0]!.at - lastData;
    assert.ok(silence >= 2000 + 250 && silence <= 2000 + 500, `dead after ${silence} ms`);
  }
});

test('any byte received counts as life: no verdict, and the next PING a quiet period later', () => {
  const r = rig();
  const pingAt = nextPing(r);
  r.clock.advance(T - 1);
  r.ka.gotData = true; // a frame that is not the PONG
  r.clock.advance(1);
  assert.equal(r.deaths, []);
  assert.is(nextPing(r), pingAt + T + K);
});

test('a byte read in the same loop turn as the verdict (its I/O comes after the timers) saves the peer', () => {
  const r = rig();
  nextPing(r);
  r.clock.advance(T - 1);
  r.clock.block(1);
  r.clock.turn(() => {
    r.ka.gotData = true;
  });
  assert.equal(r.deaths, []);
  r.clock.advance(10 * K);
  assert.is(r.pings.length, 2, 'restarted: the next PING, and this one unanswered');
  assert.is(r.deaths.length, 1);
});

test('a PONG restarts the period at once: the next PING is keepaliveMs after it, not after the PING timeout', () => {
  const r = rig();
  const pingAt = nextPing(r);
  r.clock.advance(10);
  r.ka.gotData = true;
  r.ka.pong(1);
  assert.is(nextPing(r), pingAt + 10 + K);
  assert.equal(r.deaths, []);
});

test('with replies awaited, a PONG restarts a short period: PINGs every probeAfterMs while the peer only answers those', () => {
  const r = rig();
  r.awaiting = true;
  r.ka.expectReply();
  let at = nextPing(r);
  for (let id = 1; id <= 10; id++) {
    r.clock.advance(1);
    r.ka.gotData = true;
    r.ka.pong(id);
    const next = nextPing(r, 2 * P);
    assert.is(next - at, P + 1, `PING ${id + 1} a probe period after PONG ${id}`);
    at = next;
  }
  r.clock.advance(10 * K);
  assert.is(r.deaths.length, 1, 'then silent: dead');
});

test('client defaults: a server that answers each PING stays alive through a long call, PINGed every probe period', () => {
  // Moved from silent-server.test.ts (its end-to-end twin there: slow servers answering PINGs are not ejected).
  const r = rig(30_000, 2000);
  r.awaiting = true;
  r.ka.expectReply();
  for (let i = 0; i < 60_000 && r.clock.now() < 30_000; i++) {
    const before = r.pings.length;
    r.clock.advance(1);
    if (r.pings.length === before) continue;
    r.clock.advance(5); // the PONG, 5 ms later
    r.ka.gotData = true;
    r.ka.pong(r.pings.at(-1)!.id);
  }
  assert.equal(r.deaths, []);
  assert.ok(r.pings.length >= 100, `${r.pings.length} PINGs in 30 s`);
  assert.is(r.pings[1]!.at - r.pings[0]!.at, 250 + 5, 'the next PING a probe period after the PONG');
});

test('a PONG with another id, or one nobody asked for, changes nothing', () => {
  const r = rig();
  r.ka.pong(1); // before any PING
  const pingAt = nextPing(r);
  assert.is(pingAt, K);
  r.ka.pong(7);
  r.clock.advance(T);
  assert.is(r.deaths.length, 1);
  assert.is(r.deaths[0]!.at, pingAt + T);
});

test('a timer late by more than half the timeout (our own loop blocked) is not held against the peer: it waits the timeout again', () => {
  const r = rig();
  const pingAt = nextPing(r);
  r.clock.block(2 * T);
  r.clock.turn();
  assert.equal(r.deaths, [], 'the answer may be unread in the socket');
  r.clock.advance(T - 1);
  assert.equal(r.deaths, []);
  r.clock.advance(1);
  assert.is(r.deaths.length, 1);
  assert.is(r.deaths[0]!.at, pingAt + 3 * T);
});

test('a late timer with the PONG read in that turn: alive', () => {
  const r = rig();
  nextPing(r);
  r.clock.block(2 * T);
  r.clock.turn(() => {
    r.ka.gotData = true;
    r.ka.pong(1);
  });
  r.clock.advance(K - 1);
  assert.equal(r.deaths, []);
  assert.is(r.pings.length, 1);
});

test('a timer late by less than half the timeout, nothing read in its turn: dead', () => {
  const r = rig();
  const pingAt = nextPing(r);
  r.clock.block(T + T / 4);
  r.clock.turn();
  assert.is(r.deaths.length, 1);
  assert.is(r.deaths[0]!.at, pingAt + T + T / 4);
});

test('unanswered: only once a PING has waited probeAfterMs with nothing received', () => {
  const r = rig();
  assert.is(r.ka.unanswered, false, 'no PING yet');
  const pingAt = nextPing(r);
  r.clock.advance(P - 1);
  assert.is(r.ka.unanswered, false, 'sent just now');
  r.clock.advance(1);
  assert.is(r.clock.now(), pingAt + P);
  assert.is(r.ka.unanswered, true);
  r.ka.gotData = true;
  assert.is(r.ka.unanswered, false, 'something arrived');
});

test('stop() stops: no PING, no verdict, no timer; also when it comes between the deadline and the verdict', () => {
  const r = rig();
  r.clock.advance(K / 2);
  r.ka.stop();
  assert.is(r.clock.pending, 0);
  r.clock.advance(10 * K);
  assert.equal(r.pings, []);

  const s = rig();
  nextPing(s);
  s.clock.advance(T - 1);
  s.clock.block(1);
  s.clock.turn(() => s.ka.stop()); // the connection closed in the I/O of the deadline's turn
  s.clock.advance(10 * K);
  assert.equal(s.deaths, []);
  assert.is(s.pings.length, 1);
});

test('start(): nothing while keepaliveMs is 0; a second start keeps the one timer', () => {
  const off = rig(0, T);
  assert.is(off.clock.pending, 0);
  off.ka.expectReply();
  off.clock.advance(10 * K);
  assert.equal(off.pings, []);

  const r = rig();
  r.clock.advance(K / 2);
  r.ka.start();
  assert.is(r.clock.created, 1);
  assert.is(nextPing(r), K);
});

test.run();
