import { deflateRawSync } from 'node:zlib';
import { Code, type Protocol } from '../../src/index.js';
import { COMPRESSION_META_KEY, FRAGMENTS_META_KEY } from '../../src/framing/extensions.js';
import { Flag, FrameType, PREFACE } from '../../src/framing/frame.js';
import { rawFrame } from '../helpers/raw-client.js';
import { frameCode, frameMessage, helloBytes, requestBytes, type RawFrame } from '../helpers/raw-peer.js';

/**
 * Generated hostile sessions for the fuzz test (test/security/fuzz.test.ts): sessions no mutation of a
 * recording is likely to produce, each of a kind a security audit found the server weak against
 * (issues 5 and 14), built from the fuzz run's seeded random numbers and replayed by its harness,
 * whole or in chunks. Each case says what the server must answer.
 */

/** How a case's bytes are written: in one write, in a few chunks, one byte per write. */
export type Delivery = 'whole' | 'chunks' | 'bytes';

/** One session replayed on a fresh socket. */
export interface Case {
  index: number;
  kind: string;
  bytes: Buffer;
  delivery: Delivery;
  /** Half-close after sending (else wait for the server's timeouts). */
  end: boolean;
  /** Chunk boundaries for 'chunks'. */
  cuts: number[];
  /** A code the server must answer with, in an ERROR or GOAWAY. */
  expect?: number;
  /** Send to the server with authentication (default: every fourth case). */
  secured?: boolean;
  /** Offset in `bytes` where sending waits for the server's first frame (a WELCOME: authentication is asynchronous). */
  pauseAt?: number;
  /** Checks the whole frames the server sent; a description of what is wrong, or undefined. */
  check?: (frames: readonly RawFrame[]) => string | undefined;
}

/** Credentials and protocol of the fuzz servers. */
export interface HostileEnv {
  protocol: Protocol;
  /** A token the secured server accepts, whose principal the ACL lets call everything. */
  token: string;
  /** A token the secured server accepts, whose principal the ACL refuses `fail`. */
  guestToken: string;
}

const MiB = 1024 * 1024;

/**
 * Limits the fuzz servers run with, small so that generated cases stay small and fast: rapid resets
 * are cut off at 64 CANCELs, stalled uploads refused after 200 ms, bombs refused past 1 MiB.
 */
export const FUZZ_LIMITS = { maxCancels: 64, stallTimeoutMs: 200, maxMessageBytes: MiB } as const;

/** An `echo` whose item has this name is held by the fuzz servers' handler until cancelled (or 10 s). */
export const HOLD_NAME = 'hold until cancelled';

/** Bytes of a REQUEST's start the server reads before judging it (REQUEST_HEAD_BYTES + default maxMetadataBytes). */
const HEAD_BYTES = 32 + 8192;
/** The HELLO limit before authentication with default options: max(16384, maxHelloMetaBytes + 1024). */
const PRE_AUTH_HELLO_BYTES = 16 * 1024 + 1024;
/** Default maxHandshakeBytes: maxProtocolBytes + maxHelloMetaBytes + 1024. */
const MAX_HANDSHAKE_BYTES = 256 * 1024 + 16 * 1024 + 1024;

/** Every kind {@link hostile} generates, in the order its pick uses. */
export const HOSTILE_KINDS = [
  'window-hog',
  'hello-meta',
  'metadata-map',
  'rapid-reset',
  'big-hello-unauth',
  'stalled-upload',
  'denied-upload',
  'compression-bomb',
  'cancel-unknown',
] as const;

/** An Avro map of `n` tiny entries (keys of 1-4 bytes, empty values), without its end marker. */
function tinyMap(n: number, int: (n: number) => number): Buffer {
  const out = Buffer.alloc(10 + n * 6);
  let p = 0;
  for (let v = n * 2; ; v = Math.floor(v / 128)) {
    // zig-zag count
    if (v < 0x80) {
      out[p++] = v;
      break;
    }
    out[p++] = (v & 0x7f) | 0x80;
  }
  for (let i = 0; i < n; i++) {
    const len = 1 + int(4);
    out[p++] = len * 2;
    for (let k = 0; k < len; k++) out[p++] = 0x21 + int(90);
    out[p++] = 0;
  }
  return out.subarray(0, p);
}

/** HELLO meta offering fragments: `P` partial messages, window `W` bytes. */
function fragmentsOffer(p: number, w: number): Record<string, Buffer> {
  const v = Buffer.alloc(8);
  v.writeUInt32BE(p, 0);
  v.writeUInt32BE(w, 4);
  return { [FRAGMENTS_META_KEY]: v };
}

/**
 * The REQUEST frame `whole` (from requestBytes) cut into fragments (SPEC.md section 12.2) of `sizes`
 * bytes of its message, the first one included; the fragment of the last size ends the message only
 * if the sizes cover it (else the upload stops there).
 */
function fragments(whole: Buffer, sizes: readonly number[]): Buffer[] {
  const id = whole.readUInt32BE(6);
  const m = whole.subarray(10);
  const total = Buffer.alloc(4);
  total.writeUInt32BE(m.length);
  const out: Buffer[] = [];
  let at = 0;
  for (const size of sizes) {
    const end = Math.min(m.length, at + size);
    const more = end < m.length ? Flag.MORE : 0;
    out.push(
      out.length === 0
        ? rawFrame(FrameType.REQUEST, whole[5]! | Flag.MORE, id, Buffer.concat([total, m.subarray(at, end)]))
        : rawFrame(FrameType.CONTINUATION, more, id, m.subarray(at, end)),
    );
    at = end;
    if (end === m.length) break;
  }
  return out;
}

/** The whole frames that are ERRORs or GOAWAYs, as `type:id:code`, for failure messages. */
function describe(frames: readonly RawFrame[]): string {
  return frames
    .map((f) => (f.type === FrameType.ERROR || f.type === FrameType.GOAWAY ? `${f.type}:${f.id}:${frameCode(f)}` : `${f.type}:${f.id}`))
    .join(' ');
}

/** True for a frame the server sends on a healthy connection or on closing it (WELCOME, WINDOW, PONG, GOAWAY OK). */
function benign(f: RawFrame): boolean {
  return (
    f.type === FrameType.WELCOME ||
    f.type === FrameType.WINDOW ||
    f.type === FrameType.PONG ||
    (f.type === FrameType.GOAWAY && frameCode(f) === Code.OK)
  );
}

/** Checks that `ids` each got a RESPONSE, `refused` each an ERROR `code` (message matching `text`), and nothing else went wrong. */
function answered(ids: readonly number[], refused: readonly number[] = [], code?: number, text?: string) {
  return (frames: readonly RawFrame[]): string | undefined => {
    for (const id of ids) {
      if (!frames.some((f) => f.type === FrameType.RESPONSE && f.id === id)) return `no RESPONSE for id ${id}: ${describe(frames)}`;
    }
    for (const id of refused) {
      const e = frames.find((f) => f.type === FrameType.ERROR && f.id === id);
      if (e === undefined || frameCode(e) !== code) return `no ERROR ${code} for id ${id}: ${describe(frames)}`;
      if (text !== undefined && !frameMessage(e).includes(text)) return `id ${id}: "${frameMessage(e)}" does not say "${text}"`;
    }
    const stray = frames.find((f) => !benign(f) && !ids.includes(f.id) && !refused.includes(f.id));
    return stray === undefined ? undefined : `unexpected frame ${describe([stray])}`;
  };
}

/** Checks that the server ended the connection with GOAWAY `code` whose message says `text`. */
function goaway(code: number, text: string, only: boolean) {
  return (frames: readonly RawFrame[]): string | undefined => {
    const g = frames.find((f) => f.type === FrameType.GOAWAY);
    if (g === undefined || frameCode(g) !== code) return `no GOAWAY ${code}: ${describe(frames)}`;
    if (!frameMessage(g).includes(text)) return `GOAWAY "${frameMessage(g)}" does not say "${text}"`;
    if (only && frames.length !== 1) return `frames besides the GOAWAY: ${describe(frames)}`;
    return undefined;
  };
}

/**
 * One generated hostile session, of a kind picked at random from {@link HOSTILE_KINDS}:
 * - window-hog: a peer offering fragments that never sends WINDOW while asking for answers above
 *   fragmentBytes (it must be dropped at maxQueuedBytes);
 * - hello-meta: oversized HELLOs or HELLO meta (GOAWAY RESOURCE_EXHAUSTED before decoding);
 * - metadata-map: request metadata of thousands of tiny entries (ERROR RESOURCE_EXHAUSTED, read no
 *   further than the limit);
 * - rapid-reset: REQUEST+CANCEL pairs of held calls (GOAWAY RESOURCE_EXHAUSTED at maxCancels);
 * - big-hello-unauth: at the secured server, a HELLO header announcing more than the HELLO limit
 *   before authentication, and part of its body (GOAWAY RESOURCE_EXHAUSTED from the header alone);
 * - stalled-upload: fragmented requests that stop part way (ERROR RESOURCE_EXHAUSTED each after
 *   stallTimeoutMs, the connection kept);
 * - denied-upload: at the secured server, a fragmented upload the ACL refuses, never finished (ERROR
 *   PERMISSION_DENIED at its first fragment, later fragments ignored, a call after it answered);
 * - compression-bomb: a COMPRESSED request inflating past maxMessageBytes (ERROR RESOURCE_EXHAUSTED
 *   from the inflater, which stops there);
 * - cancel-unknown: CANCELs of ids never used, among normal requests (every request answered).
 */
export function hostile(env: HostileEnv, rnd: () => number, index: number): Case {
  const { protocol } = env;
  const int = (n: number) => Math.floor(rnd() * n);
  const token = { 'avrpc.token': Buffer.from(env.token) };
  const base = { index, delivery: rnd() < 0.3 ? ('chunks' as const) : ('whole' as const), cuts: [] as number[] };
  const item = (name: string, blob = 0) => ({ id: index, name, tags: [], score: 0, blob: Buffer.alloc(blob, index & 0xff) });
  let c: Case;
  switch (HOSTILE_KINDS[int(HOSTILE_KINDS.length)]!) {
    case 'window-hog': {
      const offer = Buffer.alloc(8);
      offer.writeUInt32BE(1 + int(1_000_000), 0);
      offer.writeUInt32BE(8 + int(256), 4);
      const hog = { id: 1, name: 'hog', tags: [], score: 0, blob: Buffer.alloc(1000 + int(3000), 7) };
      const requests = Array.from({ length: 400 }, (_, i) => requestBytes(protocol, i + 1, 'echo', { item: hog }));
      // Never ends, never acknowledges: only the server's queue cap (or its stall timeout) can end it.
      // At the open server: on the other, requests pipelined behind HELLO meet a pending authentication.
      c = {
        ...base,
        secured: false,
        kind: 'window-hog',
        bytes: Buffer.concat([helloBytes(protocol, { ...token, 'avrpc.fragments': offer }), ...requests]),
        end: false,
      };
      break;
    }
    case 'hello-meta': {
      const variant = int(3);
      let hello: Buffer;
      if (variant === 0) {
        const meta: Record<string, Buffer> = { ...token };
        for (let i = 65 + int(5000); i > 0; i--) meta[`m${i}`] = Buffer.alloc(int(2));
        hello = helloBytes(protocol, meta);
      } else if (variant === 1) {
        hello = helloBytes(protocol, { ...token, big: Buffer.alloc(16 * 1024 + int(2 * 1024 * 1024)) });
      } else {
        // A header claiming far more than a handshake needs, and a little of its body.
        const header = Buffer.alloc(10 + int(4096));
        header.writeUInt32BE(2 * 1024 * 1024 + int(14 * 1024 * 1024), 0);
        header[4] = FrameType.HELLO;
        hello = Buffer.concat([PREFACE, header]);
      }
      // Also at the server with authentication: refused before authenticate runs.
      c = { ...base, kind: 'hello-meta', bytes: hello, end: rnd() < 0.8, expect: Code.RESOURCE_EXHAUSTED, secured: rnd() < 0.5 };
      break;
    }
    case 'metadata-map': {
      const map = tinyMap(3000 + int(150_000), int);
      const whole = rnd() < 0.5;
      const body = Buffer.concat([Buffer.from([0, protocol.message('echo')!.index]), map, ...(whole ? [Buffer.from([0])] : [])]);
      const header = Buffer.alloc(10);
      header.writeUInt32BE(body.length, 0);
      header[4] = FrameType.REQUEST;
      header[5] = Flag.METADATA;
      header.writeUInt32BE(1 + int(1000), 6);
      c = {
        ...base,
        secured: false,
        kind: 'metadata-map',
        bytes: Buffer.concat([helloBytes(protocol, token), header, body]),
        end: true,
        expect: Code.RESOURCE_EXHAUSTED,
      };
      break;
    }
    case 'rapid-reset': {
      // Calls whose handler waits, each cancelled (at once, or in batches); ids fresh or reused; a
      // few calls completed first, so the ratio rule is crossed too, not only the count.
      const completed = int(8);
      const pairs = FUZZ_LIMITS.maxCancels + 4 * completed + int(200);
      const batch = 1 + int(16);
      const reuse = rnd() < 0.3;
      const timeoutMs = rnd() < 0.3 ? 60_000 : -1; // far from the deadline: a reset, not a timeout
      const frames: Buffer[] = [helloBytes(protocol)];
      let id = 1;
      for (let i = 0; i < completed; i++) frames.push(requestBytes(protocol, id++, 'echo', { item: item('done') }));
      for (let sent = 0; sent < pairs; sent += batch) {
        const ids = Array.from({ length: Math.min(batch, pairs - sent) }, (_, k) => (reuse ? 1000 + k : id++));
        for (const i of ids) frames.push(requestBytes(protocol, i, 'echo', { item: item(HOLD_NAME) }, undefined, timeoutMs));
        for (const i of ids) frames.push(rawFrame(FrameType.CANCEL, 0, i, null));
      }
      c = {
        ...base,
        secured: false,
        kind: 'rapid-reset',
        bytes: Buffer.concat(frames),
        end: false,
        expect: Code.RESOURCE_EXHAUSTED,
        check: goaway(Code.RESOURCE_EXHAUSTED, 'too many cancelled calls', false),
      };
      break;
    }
    case 'big-hello-unauth': {
      // A true HELLO's start under a header announcing more than the pre-authentication limit: mostly
      // within maxHandshakeBytes (which alone would let it through), sometimes beyond.
      const hello = helloBytes(protocol, token);
      const claimed =
        rnd() < 0.8 ? PRE_AUTH_HELLO_BYTES + 1 + int(MAX_HANDSHAKE_BYTES - PRE_AUTH_HELLO_BYTES) : MAX_HANDSHAKE_BYTES + 1 + int(8 * MiB);
      const body = Buffer.concat([hello.subarray(PREFACE.length + 10), Buffer.alloc(int(24 * 1024), 0x41 + int(26))]);
      const header = Buffer.from(hello.subarray(PREFACE.length, PREFACE.length + 10));
      header.writeUInt32BE(claimed, 0);
      const partial = body.subarray(0, int(Math.min(body.length, claimed)));
      c = {
        ...base,
        secured: true,
        kind: 'big-hello-unauth',
        bytes: Buffer.concat([PREFACE, header, partial]),
        end: rnd() < 0.5,
        expect: Code.RESOURCE_EXHAUSTED,
        check: goaway(Code.RESOURCE_EXHAUSTED, 'before authentication', true),
      };
      break;
    }
    case 'stalled-upload': {
      // 1 to 4 (the server's P) uploads of a large message, each stopped part way; then a normal call.
      const uploads = 1 + int(4);
      const frames: Buffer[] = [helloBytes(protocol, fragmentsOffer(4, MiB))];
      const ids: number[] = [];
      for (let u = 0; u < uploads; u++) {
        const id = 2 * u + 1;
        const whole = requestBytes(protocol, id, 'echo', {
          item: item('stalled', 64 * 1024 + int(FUZZ_LIMITS.maxMessageBytes - 64 * 1024 - 100)),
        });
        // At most 4 x 16 KiB of a message of more than 64 KiB: it never completes.
        const sizes = Array.from({ length: 1 + int(4) }, () => 1 + int(16 * 1024));
        frames.push(...fragments(whole, sizes));
        ids.push(id);
      }
      const normal = 2 * uploads + 1;
      frames.push(requestBytes(protocol, normal, 'echo', { item: item('after stalled uploads') }));
      c = {
        ...base,
        secured: false,
        kind: 'stalled-upload',
        bytes: Buffer.concat(frames),
        end: false,
        expect: Code.RESOURCE_EXHAUSTED,
        check: answered([normal], ids, Code.RESOURCE_EXHAUSTED, 'stalled'),
      };
      break;
    }
    case 'denied-upload': {
      // At the secured server, as a principal the ACL refuses `fail`: its start (HEAD_BYTES at least)
      // in the first fragment, more in random pieces, never the last one (so only a refusal from its
      // start answers it PERMISSION_DENIED: whole, it would be judged too, stalled, refused for that);
      // then an allowed call, which is answered.
      const hello = helloBytes(protocol, { 'avrpc.token': Buffer.from(env.guestToken), ...fragmentsOffer(4, 4 * MiB) });
      const reason = 'r'.repeat(HEAD_BYTES + 1024 + int(FUZZ_LIMITS.maxMessageBytes - HEAD_BYTES - 2048));
      const whole = requestBytes(protocol, 7, 'fail', { reason });
      const sizes = [HEAD_BYTES + int(reason.length - HEAD_BYTES)];
      for (let sent = sizes[0]!; ; sent += sizes[sizes.length - 1]!) {
        const next = 1 + int(64 * 1024);
        if (sent + next >= reason.length || rnd() < 0.1) break;
        sizes.push(next);
      }
      const rest = fragments(whole, sizes);
      const bytes = Buffer.concat([hello, ...rest, requestBytes(protocol, 9, 'echo', { item: item('after a denied upload') })]);
      c = {
        ...base,
        secured: true,
        pauseAt: hello.length,
        kind: 'denied-upload',
        bytes,
        end: false,
        expect: Code.PERMISSION_DENIED,
        check: answered([9], [7], Code.PERMISSION_DENIED, 'not allowed to call fail'),
      };
      break;
    }
    case 'compression-bomb': {
      // A request of one fill byte, 1 to 4 times maxMessageBytes once inflated; then a normal call.
      const size = FUZZ_LIMITS.maxMessageBytes + 1 + int(3 * FUZZ_LIMITS.maxMessageBytes);
      const plain = requestBytes(protocol, 3, 'echo', { item: { ...item('bomb'), blob: Buffer.alloc(size, int(256)) } });
      const bomb = rawFrame(FrameType.REQUEST, plain[5]! | Flag.COMPRESSED, 3, deflateRawSync(plain.subarray(10), { level: 1 + int(9) }));
      const hello = helloBytes(protocol, { [COMPRESSION_META_KEY]: Buffer.from(rnd() < 0.5 ? 'deflate' : 'zstd, deflate') });
      const bytes = Buffer.concat([hello, bomb, requestBytes(protocol, 5, 'echo', { item: item('after a bomb') })]);
      c = {
        ...base,
        secured: false,
        kind: 'compression-bomb',
        bytes,
        end: false,
        expect: Code.RESOURCE_EXHAUSTED,
        check: answered([5], [3], Code.RESOURCE_EXHAUSTED, 'inflates beyond maxMessageBytes'),
      };
      break;
    }
    case 'cancel-unknown': {
      // CANCELs of ids no request used (before or after), fewer than maxCancels, among normal requests.
      const frames: Buffer[] = [helloBytes(protocol)];
      const ids: number[] = [];
      let cancels = 1 + int(FUZZ_LIMITS.maxCancels - 1);
      for (let id = 1; cancels > 0 || ids.length === 0; id += 2) {
        if (rnd() < 0.4 || cancels === 0) {
          frames.push(requestBytes(protocol, id, 'echo', { item: item(`after cancel ${id}`) }));
          ids.push(id);
        }
        for (let k = int(4); k > 0 && cancels > 0; k--, cancels--) {
          frames.push(rawFrame(FrameType.CANCEL, 0, rnd() < 0.5 ? id + 1 : 0x40000000 + int(0x3fffffff), null));
        }
      }
      c = { ...base, secured: false, kind: 'cancel-unknown', bytes: Buffer.concat(frames), end: false, check: answered(ids) };
      break;
    }
  }
  c.cuts = Array.from({ length: 1 + int(6) }, () => int(c.bytes.length)).sort((x, y) => x - y);
  return c;
}
