/**
 * ElementPump, the sending half of a stream direction: it never asks the producer for more than the
 * credit allows, resumes on grant(), closes a generator on stop() or when an element does not encode,
 * and drains a plain iterable (an array) without a turn per element. Pure: no sockets, no timers.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ElementPump, isElementSource, type ElementSink } from '../../src/connection/element-pump.js';

const test = suite('element pump');

/** Lets every pending promise job run (no timer: the check queue comes after all of them). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Sink<T> extends ElementSink<T> {
  sent: T[];
  ends: number;
  failures: unknown[];
}

function sink<T>(refuse?: (v: T) => boolean): Sink<T> {
  const s: Sink<T> = {
    sent: [],
    ends: 0,
    failures: [],
    send: (v) => {
      if (refuse?.(v) === true) throw new Error(`cannot encode ${String(v)}`);
      s.sent.push(v);
    },
    end: () => s.ends++,
    fail: (e) => s.failures.push(e),
  };
  return s;
}

/** An endless async iterator that counts how often it is asked for the next element. */
function counting(): AsyncIterable<number> & { calls: number; returns: number } {
  const it = {
    calls: 0,
    returns: 0,
    [Symbol.asyncIterator]() {
      return {
        next: () => Promise.resolve({ done: false as const, value: it.calls++ }),
        return: () => {
          it.returns++;
          return Promise.resolve({ done: true as const, value: undefined });
        },
      };
    },
  };
  return it;
}

test('never calls next() beyond the credit, and resumes on grant()', async () => {
  const src = counting();
  const s = sink<number>();
  const pump = new ElementPump(src, 3, s);
  pump.start();
  await settle();
  assert.is(src.calls, 3, 'three credits: three pulls, not a fourth');
  assert.equal(s.sent, [0, 1, 2]);
  assert.is(pump.available, 0);
  await settle();
  assert.is(src.calls, 3, 'still waiting for credit');
  pump.grant(2);
  await settle();
  assert.is(src.calls, 5);
  assert.equal(s.sent, [0, 1, 2, 3, 4]);
  pump.grant(1);
  pump.grant(1);
  await settle();
  assert.is(src.calls, 7, 'grants while pulling add up, one pull at a time');
  assert.is(s.ends + s.failures.length, 0);
  await pump.stop();
  assert.is(src.returns, 1);
});

test('no credit at first: nothing is pulled until a grant', async () => {
  const src = counting();
  const s = sink<number>();
  const pump = new ElementPump(src, 0, s);
  pump.start();
  await settle();
  assert.is(src.calls, 0);
  pump.grant(1);
  await settle();
  assert.is(src.calls, 1);
  await pump.stop();
});

test('a generator that finishes within its credit ends the sink once', async () => {
  async function* three(): AsyncGenerator<string> {
    yield 'a';
    yield 'b';
    yield 'c';
  }
  const s = sink<string>();
  const pump = new ElementPump(three(), 10, s);
  pump.start();
  await settle();
  assert.equal(s.sent, ['a', 'b', 'c']);
  assert.is(s.ends, 1);
  assert.ok(pump.finished);
  pump.grant(5);
  await settle();
  assert.is(s.ends, 1);
});

test('stop() runs the finally of a generator suspended at its yield, and nothing more is sent', async () => {
  let finallyRan = 0;
  let yields = 0;
  async function* endless(): AsyncGenerator<number> {
    try {
      for (;;) yield yields++;
    } finally {
      finallyRan++;
    }
  }
  const s = sink<number>();
  const pump = new ElementPump(endless(), 2, s);
  pump.start();
  await settle();
  assert.equal(s.sent, [0, 1]);
  await pump.stop();
  assert.is(finallyRan, 1);
  assert.ok(pump.finished);
  pump.grant(5);
  await settle();
  assert.equal(s.sent, [0, 1], 'stopped: no more pulls');
  assert.is(s.ends + s.failures.length, 0, 'stop is the owner’s, not reported to the sink');
  await pump.stop();
  assert.is(finallyRan, 1);
});

test('stop() while a pull is under way drops its element and closes the generator after it', async () => {
  let release!: () => void;
  let finallyRan = 0;
  async function* slow(): AsyncGenerator<number> {
    try {
      await new Promise<void>((r) => (release = r));
      yield 1;
      yield 2;
    } finally {
      finallyRan++;
    }
  }
  const s = sink<number>();
  const pump = new ElementPump(slow(), 5, s);
  pump.start();
  await settle();
  const stopped = pump.stop();
  release();
  await stopped;
  await settle();
  assert.equal(s.sent, [], 'the element pulled before the stop is not sent');
  assert.is(finallyRan, 1);
});

test('an element that does not encode fails the pump and closes the generator', async () => {
  let finallyRan = 0;
  let pulls = 0;
  async function* gen(): AsyncGenerator<number> {
    try {
      for (;;) {
        pulls++;
        yield pulls;
      }
    } finally {
      finallyRan++;
    }
  }
  const s = sink<number>((v) => v === 2);
  const pump = new ElementPump(gen(), 10, s);
  pump.start();
  await settle();
  assert.equal(s.sent, [1]);
  assert.is(s.failures.length, 1);
  assert.match((s.failures[0] as Error).message, 'cannot encode 2');
  assert.is(s.ends, 0);
  assert.ok(pump.finished);
  assert.is(finallyRan, 1, 'the suspended generator was closed');
  assert.is(pulls, 2, 'nothing pulled after the failure');
});

test('a producer that throws fails the sink with its error', async () => {
  const boom = new Error('producer');
  async function* bad(): AsyncGenerator<number> {
    yield 1;
    throw boom;
  }
  const s = sink<number>();
  new ElementPump(bad(), 10, s).start();
  await settle();
  assert.equal(s.sent, [1]);
  assert.equal(s.failures, [boom]);
  assert.is(s.ends, 0);
});

test('an array needs no turn: within its credit it is sent and ended during start()', () => {
  const s = sink<number>();
  const pump = new ElementPump([1, 2, 3], 5, s);
  pump.start();
  assert.equal(s.sent, [1, 2, 3], 'synchronously, before any await');
  assert.is(s.ends, 1);
});

test('an array longer than the credit stops at it, and each grant sends at once', () => {
  let calls = 0;
  const source: Iterable<number> = {
    [Symbol.iterator]: () => ({ next: () => (calls < 5 ? { done: false, value: calls++ } : { done: true, value: undefined }) }),
  };
  const s = sink<number>();
  const pump = new ElementPump(source, 2, s);
  pump.start();
  assert.equal(s.sent, [0, 1]);
  assert.is(calls, 2, 'next() never called beyond the credit');
  pump.grant(2);
  assert.equal(s.sent, [0, 1, 2, 3], 'within grant(), no turn');
  pump.grant(2);
  assert.equal(s.sent, [0, 1, 2, 3, 4]);
  assert.is(s.ends, 1);
});

test('runPull wraps every pull', async () => {
  let wrapped = 0;
  const s = sink<number>();
  const pump = new ElementPump([1, 2], 5, s, (pull) => {
    wrapped++;
    return pull();
  });
  pump.start();
  await settle();
  assert.is(wrapped, 3, 'two elements and the end');
});

test('isElementSource: iterables and async iterables, not strings or plain objects', () => {
  assert.ok(isElementSource([]));
  assert.ok(isElementSource(new Set([1])));
  assert.ok(isElementSource(counting()));
  assert.ok(isElementSource((async function* () {})()));
  assert.not.ok(isElementSource('abc'));
  assert.not.ok(isElementSource({}));
  assert.not.ok(isElementSource(null));
  assert.not.ok(isElementSource(42));
});

test.run();
