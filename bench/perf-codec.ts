/**
 * Does a specialised codec pay? The benchmark Item's request record `{ item }` encoded into an arena
 * and decoded from a frame body three ways, interleaved and repeated, CPU ns per operation:
 * - `avsc`: `type.encode` / `type.decode` as avrpc calls them (a new Tap per call, and a result object);
 * - `avsc-tap`: the same compiled `_write` / `_read` with one reused Tap (avsc's per-call allocations gone);
 * - `special`: a reader and writer written for this record alone (inline varints, short ASCII strings
 *   in JS as avrpc's string type reads them, small bytes copied by a loop): about the most a codec
 *   compiled per protocol could give.
 * `node dist/bench/perf-codec.js [rounds=5]`.
 */
import { loadProtocol } from '../src/index.js';
import { benchItem, repoFile } from './payload.js';
import { readUtf8 } from '../src/framing/short-utf8.js';

interface Tap {
  buf: Buffer;
  pos: number;
  isValid(): boolean;
}
type Compiled = { _write(tap: Tap, v: unknown): void; _read(tap: Tap): unknown };

const protocol = await loadProtocol(repoFile('protocol/echo.avdl'));
const type = protocol.message('echo')!.request;
const value = { item: benchItem };
const arena = Buffer.allocUnsafe(64 * 1024);
const body = type.toBuffer(value);
// avsc's Tap, reached through a decode (it is not exported as such in the typings).
const avscUtils = (await import('avsc/lib/utils.js' as string)) as { Tap: new (buf: Buffer, pos?: number) => Tap };
const tap = new avscUtils.Tap(arena, 0);
const compiled = type as unknown as Compiled;

function writeLong(buf: Buffer, pos: number, n: number): number {
  let f = n >= 0 ? n * 2 : -n * 2 - 1;
  while (f >= 0x80) {
    buf[pos++] = (f % 0x80) | 0x80;
    f = Math.floor(f / 0x80);
  }
  buf[pos++] = f;
  return pos;
}
function writeString(buf: Buffer, pos: number, s: string): number {
  const n = s.length;
  if (n < 64) {
    let ascii = true;
    for (let i = 0; i < n; i++) if (s.charCodeAt(i) >= 0x80) ascii = false;
    if (ascii) {
      buf[pos++] = n << 1;
      for (let i = 0; i < n; i++) buf[pos + i] = s.charCodeAt(i);
      return pos + n;
    }
  }
  const len = Buffer.byteLength(s);
  pos = writeLong(buf, pos, len);
  return pos + (buf as unknown as { utf8Write(s: string, p: number, l: number): number }).utf8Write(s, pos, len);
}
function specialWrite(v: { item: typeof benchItem }, buf: Buffer, pos: number): number {
  const it = v.item;
  pos = writeLong(buf, pos, it.id);
  pos = writeString(buf, pos, it.name);
  const tags = it.tags;
  if (tags.length > 0) {
    pos = writeLong(buf, pos, tags.length);
    for (let i = 0; i < tags.length; i++) pos = writeString(buf, pos, tags[i]!);
  }
  buf[pos++] = 0;
  buf.writeDoubleLE(it.score, pos);
  pos += 8;
  const b = it.blob;
  pos = writeLong(buf, pos, b.length);
  if (b.length < 64) for (let i = 0; i < b.length; i++) buf[pos + i] = b[i]!;
  else b.copy(buf, pos);
  return pos + b.length;
}
let rp = 0;
function readLong(buf: Buffer): number {
  let b = buf[rp++]!;
  let n = b & 0x7f;
  let k = 1;
  while (b & 0x80) {
    b = buf[rp++]!;
    k *= 128;
    n += (b & 0x7f) * k;
  }
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}
function readString(buf: Buffer): string {
  const len = readLong(buf);
  const start = rp;
  rp += len;
  return readUtf8(buf, start, rp);
}
function specialRead(buf: Buffer, pos: number): unknown {
  rp = pos;
  const id = readLong(buf);
  const name = readString(buf);
  const tags: string[] = [];
  for (let n = readLong(buf); n !== 0; n = readLong(buf)) for (let i = 0; i < n; i++) tags.push(readString(buf));
  const score = buf.readDoubleLE(rp);
  rp += 8;
  const len = readLong(buf);
  const blob = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) blob[i] = buf[rp + i]!;
  rp += len;
  return { item: { id, name, tags, score, blob } };
}

const N = 200_000;
const cases: Record<string, () => void> = {
  'avsc encode': () => {
    for (let i = 0; i < N; i++) type.encode(value, arena, (i & 63) * 512);
  },
  'avsc-tap encode': () => {
    for (let i = 0; i < N; i++) {
      tap.buf = arena;
      tap.pos = (i & 63) * 512;
      compiled._write(tap, value);
    }
  },
  'special encode': () => {
    for (let i = 0; i < N; i++) specialWrite(value, arena, (i & 63) * 512);
  },
  'avsc decode': () => {
    for (let i = 0; i < N; i++) type.decode(body, 0);
  },
  'avsc-tap decode': () => {
    for (let i = 0; i < N; i++) {
      tap.buf = body;
      tap.pos = 0;
      compiled._read(tap);
    }
  },
  'special decode': () => {
    for (let i = 0; i < N; i++) specialRead(body, 0);
  },
};
// Same bytes both ways.
specialWrite(value, arena, 0);
if (!arena.subarray(0, body.length).equals(body)) throw new Error('special encoder differs from avsc');
if (JSON.stringify(specialRead(body, 0)) !== JSON.stringify(type.decode(body, 0).value)) throw new Error('special decoder differs');

const rounds = Number(process.argv[2] ?? 5);
const ns = new Map<string, number[]>();
for (const f of Object.values(cases)) f();
for (let r = 0; r < rounds; r++)
  for (const [name, f] of Object.entries(cases)) {
    const c0 = process.cpuUsage();
    f();
    const c = process.cpuUsage(c0);
    ns.set(name, [...(ns.get(name) ?? []), ((c.user + c.system) * 1000) / N]);
  }
console.log('| case | CPU ns/op, median [min-max] |\n|---|---|');
for (const [name, xs] of ns) {
  const s = [...xs].sort((a, b) => a - b);
  console.log(`| ${name} | ${s[s.length >> 1]!.toFixed(0)} [${s[0]!.toFixed(0)}-${s[s.length - 1]!.toFixed(0)}] |`);
}
