import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError } from '../../src/index.js';
import { Outbox } from '../../src/connection/outbox.js';
import { FrameDecoder } from '../../src/framing/frame-decoder.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import { Reassembler, isFragment } from '../../src/framing/reassembler.js';

const test = suite('fragment reassembly');

interface Msg {
  type: number;
  flags: number;
  id: number;
  body: string;
}

/** Ids of the large messages; small frames count up from 1. */
const BIG = 1_000_000;

let seed = 4242;
const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) >>> 0) % n;

function payload(size: number, salt: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + salt) & 0xff;
  return b;
}

/** `body` cut into 1 to 5 parts at random points (some parts may be a single byte). */
function cut(body: Buffer): Buffer[] {
  const points = Array.from({ length: rand(5) }, () => rand(body.length + 1)).sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let at = 0;
  for (const p of [...points, body.length]) {
    parts.push(body.subarray(at, p));
    at = p;
  }
  return parts;
}

/**
 * Writes large messages through the Outbox (fragments, round-robin, `maxOpen` open at once) with a
 * small frame between every round, as the socket writer does. Returns the stream and what was sent.
 */
function stream(fragmentBytes: number, maxOpen: number): { bytes: Buffer; large: Msg[]; small: Msg[] } {
  const enc = new FrameEncoder();
  const outbox = new Outbox(fragmentBytes, 1 << 30);
  outbox.configure(maxOpen, 1 << 30);
  const sizes = [100_000, 70_001, fragmentBytes - 4, 5, 300_000, fragmentBytes + 1];
  const large: Msg[] = sizes.map((size, i) => {
    const type = i % 2 === 0 ? FrameType.REQUEST : FrameType.RESPONSE;
    const flags = i % 3 === 0 ? Flag.DEADLINE : 0;
    const body = payload(size, i);
    // In parts, as a message with large values spliced in arrives (framing/splices.ts): cut at random.
    outbox.add(type, flags, BIG + i, cut(body));
    return { type, flags, id: BIG + i, body: body.toString('hex') };
  });
  const small: Msg[] = [];
  for (let round = 0; outbox.size > 0; round++) {
    const body = payload(1 + (round % 40), round);
    enc.raw(FrameType.RESPONSE, 0, 1 + round, body);
    small.push({ type: FrameType.RESPONSE, flags: 0, id: 1 + round, body: body.toString('hex') });
    outbox.round(enc);
  }
  return { bytes: Buffer.concat(enc.take()), large, small };
}

/** Decodes `chunks` through FrameDecoder and Reassembler; returns whole messages in arrival order. */
function receive(
  chunks: Buffer[],
  maxPartialMessages: number,
  maxMessageBytes = 1 << 30,
  direct = false,
): { messages: Msg[]; refused: number[] } {
  const messages: Msg[] = [];
  const refused: number[] = [];
  const r = new Reassembler(
    { maxMessageBytes, maxPartialMessages },
    {
      message: (type, flags, id, body) => messages.push({ type, flags, id, body: body.toString('hex') }),
      refused: (_t, _f, id) => refused.push(id),
    },
  );
  // `direct`: the decoder fills fragment bodies in place (what FramedSocket does), else the reassembler copies.
  const target = direct ? (type: number, _flags: number, id: number, len: number) => r.target(type, id, len) : undefined;
  const dec = new FrameDecoder({ maxFrameBytes: 1 << 20, expectPreface: false, target }, (type, flags, id, body) => {
    if (type === FrameType.CONTINUATION) r.next(flags, id, body);
    else if (isFragment(type, flags)) r.first(type, flags, id, body);
    else messages.push({ type, flags, id, body: Buffer.from(body).toString('hex') });
  });
  for (const c of chunks) dec.push(c);
  assert.is(r.size, 0, 'nothing left half-assembled');
  return { messages, refused };
}

function randomChunks(bytes: Buffer, max: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let pos = 0; pos < bytes.length;) {
    const n = 1 + rand(max);
    chunks.push(bytes.subarray(pos, pos + n));
    pos += n;
  }
  return chunks;
}

test('interleaved fragmented messages reassemble identically under random chunking', () => {
  for (const [fragmentBytes, maxOpen] of [
    [1024, 2],
    [8, 1],
    [65_536, 16],
    [4000, 3],
  ] as const) {
    const { bytes, large, small } = stream(fragmentBytes, maxOpen);
    for (let round = 0; round < 12; round++) {
      const { messages } = receive(randomChunks(bytes, [7, 300, 70_000][round % 3]!), maxOpen, 1 << 30, round % 2 === 1);
      const got = messages.filter((m) => m.id >= BIG).sort((a, b) => a.id - b.id);
      assert.equal(got, large, `fragmentBytes ${fragmentBytes}, round ${round}`);
      assert.equal(
        messages.filter((m) => m.id < BIG),
        small,
      );
    }
  }
});

test('small frames overtake large messages: one per round, before the large ones complete', () => {
  const { bytes } = stream(1024, 2);
  const { messages } = receive([bytes], 2);
  const firstLarge = messages.findIndex((m) => m.id >= BIG);
  // The 5-byte and the (fragmentBytes - 4)-byte messages finish within two rounds; the 100 kB one takes ~100.
  assert.ok(firstLarge >= 2, `a large message completed after only ${firstLarge} small frames`);
  const idx100 = messages.findIndex((m) => m.id === BIG);
  assert.ok(idx100 > 90, `message 100 completed after ${idx100} frames`);
});

function frame(type: number, flags: number, id: number, body: Buffer): Buffer {
  const enc = new FrameEncoder();
  enc.raw(type, flags, id, body);
  return Buffer.concat(enc.take());
}
const first = (id: number, total: number, data: Buffer, flags = 0): Buffer =>
  frame(
    FrameType.REQUEST,
    flags | Flag.MORE,
    id,
    Buffer.concat([Buffer.from([total >>> 24, (total >>> 16) & 255, (total >>> 8) & 255, total & 255]), data]),
  );
const cont = (id: number, data: Buffer, more: boolean): Buffer => frame(FrameType.CONTINUATION, more ? Flag.MORE : 0, id, data);

function protocolError(chunks: Buffer[], maxPartialMessages = 4, maxMessageBytes = 1000): RpcError {
  try {
    receive(chunks, maxPartialMessages, maxMessageBytes);
  } catch (err) {
    assert.instance(err, RpcError);
    return err as RpcError;
  }
  throw new Error('expected a protocol error');
}

test('fragments spend the peer window: nothing beyond it goes out until acknowledged', () => {
  const enc = new FrameEncoder();
  const outbox = new Outbox(1000, 2500);
  outbox.configure(4, 2500);
  const body = payload(10_000, 9);
  outbox.add(FrameType.RESPONSE, 0, 77, [body]);
  assert.is(outbox.round(enc) + outbox.round(enc), 2000);
  assert.is(outbox.round(enc), 0, 'a 1000-byte fragment does not fit the 500 bytes of credit left');
  let rounds = 0;
  while (outbox.size > 0) {
    outbox.credit += 1000; // the receiver's WINDOW
    assert.ok(outbox.round(enc) <= 1000);
    rounds++;
  }
  assert.is(rounds, 9); // 10000 bytes = 996 in the first fragment + 9004 in CONTINUATIONs of <= 1000
  const { messages } = receive([Buffer.concat(enc.take())], 4);
  assert.is(messages[0]!.body, body.toString('hex'));
});

test('a shallow outbox keeps only interleaveWindowBytes unacknowledged; a deep one uses the whole window', () => {
  const enc = new FrameEncoder();
  const outbox = new Outbox(1000, 2000);
  outbox.configure(4, 8000);
  outbox.add(FrameType.RESPONSE, 0, 5, [payload(20_000, 3)]);
  outbox.shallow = true;
  let sent = 0;
  for (let n = outbox.round(enc); n > 0; n = outbox.round(enc)) sent += n;
  assert.is(sent, 2000, 'shallow: two fragments in flight, though the peer allows 8000 bytes');
  outbox.shallow = false;
  for (let n = outbox.round(enc); n > 0; n = outbox.round(enc)) sent += n;
  assert.is(sent, 8000, 'deep: the whole window');
  outbox.credit += 7000; // acknowledged; 1000 bytes still in flight
  outbox.shallow = true;
  for (let n = outbox.round(enc); n > 0; n = outbox.round(enc)) sent += n;
  assert.is(sent, 9000, 'shallow again: only up to 2000 in flight');
});

test('a shallow window smaller than a fragment still lets one fragment through', () => {
  const enc = new FrameEncoder();
  const outbox = new Outbox(1000, 100);
  outbox.configure(4, 8000);
  outbox.add(FrameType.RESPONSE, 0, 5, [payload(5000, 3)]);
  outbox.shallow = true;
  assert.is(outbox.round(enc), 1000);
  assert.is(outbox.round(enc), 0);
});

test('a declared total above maxMessageBytes is refused at the first fragment; its continuations are ignored', () => {
  const { messages, refused } = receive(
    [
      first(7, 5000, Buffer.alloc(10)),
      cont(7, Buffer.alloc(100), true),
      cont(7, Buffer.alloc(10), false),
      first(8, 3, Buffer.from('ab')),
      cont(8, Buffer.from('c'), false),
    ],
    4,
    1000,
  );
  assert.equal(refused, [7]);
  assert.equal(
    messages.map((m) => [m.id, Buffer.from(m.body, 'hex').toString()]),
    [[8, 'abc']],
  );
});

test('fragment rule violations are protocol errors with their codes', () => {
  assert.is(protocolError([first(1, 3, Buffer.from('abcd'))]).code, Code.INTERNAL, 'first fragment over its total');
  assert.is(protocolError([first(1, 3, Buffer.from('a')), cont(1, Buffer.from('bcd'), true)]).code, Code.INTERNAL, 'over total');
  assert.is(protocolError([first(1, 3, Buffer.from('a')), cont(1, Buffer.from('b'), false)]).code, Code.INTERNAL, 'short last');
  assert.is(protocolError([first(1, 3, Buffer.from('a')), first(1, 3, Buffer.from('a'))]).code, Code.INTERNAL, 'id reused');
  assert.is(protocolError([frame(FrameType.REQUEST, Flag.MORE, 1, Buffer.from([0, 0]))]).code, Code.INTERNAL, 'no total');
  const tooMany = [1, 2, 3].map((id) => first(id, 3, Buffer.from('a')));
  assert.is(protocolError(tooMany, 2).code, Code.RESOURCE_EXHAUSTED, 'more open than advertised');
});

test('discard drops a partial message; a cancelled id can start again', () => {
  const got: string[] = [];
  const r = new Reassembler(
    { maxMessageBytes: 100, maxPartialMessages: 1 },
    {
      message: (_t, _f, _id, body) => got.push(body.toString()),
      refused: () => assert.unreachable('nothing is too large'),
    },
  );
  r.first(FrameType.REQUEST, Flag.MORE, 5, Buffer.from('\0\0\0\x03ab'));
  r.discard(5);
  r.next(0, 5, Buffer.from('c'));
  r.first(FrameType.REQUEST, Flag.MORE, 5, Buffer.from('\0\0\0\x02x'));
  r.next(0, 5, Buffer.from('y'));
  assert.equal(got, ['xy']);
  assert.is(r.size, 0);
});

test('a message of up to 2 MiB gets its whole buffer at once; a larger claim gets 1 MiB until bytes arrive', () => {
  const got: number[] = [];
  const r = new Reassembler(
    { maxMessageBytes: 1 << 30, maxPartialMessages: 4 },
    {
      message: (_t, _f, _id, body) => got.push(body.length),
      refused: () => assert.unreachable('nothing is too large'),
    },
  );
  const head = (total: number): Buffer => Buffer.from([total >>> 24, (total >>> 16) & 255, (total >>> 8) & 255, total & 255, 1]);
  // 1 MiB of payload plus a few bytes of Avro framing: one buffer of its total, never regrown and copied.
  const total = (1 << 20) + 5;
  r.first(FrameType.RESPONSE, Flag.MORE, 1, head(total));
  assert.is(r.bufferedBytes, total);
  const place = r.target(FrameType.CONTINUATION, 1, total - 1)!;
  assert.is(place.length, total - 1);
  r.next(0, 1, place);
  assert.equal(got, [total]);
  r.first(FrameType.RESPONSE, Flag.MORE, 2, head(64 << 20));
  assert.is(r.bufferedBytes, 1 << 20, 'a 64 MiB claim pins 1 MiB, not its total');
});

test.run();
