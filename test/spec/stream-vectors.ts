/**
 * The stream test vectors of SPEC.md section 13.11, read from SPEC.md itself (as test/helpers/spec-vectors.ts
 * reads section 10) so that the document and the tests cannot drift apart. Each fenced block becomes
 * its frames, each marked with the side that sends it: `C:` or `S:` at the start of the comment of the
 * line where the frame begins (a HELLO is the client's, a WELCOME the server's).
 */
import { readFileSync } from 'node:fs';
import { FrameType, PREFACE } from '../../src/framing/frame.js';
import { repoPath } from '../helpers/repo.js';

/** One frame of a vector: its whole bytes (header and body) and who sends it. */
export interface VectorFrame {
  from: 'client' | 'server';
  bytes: Buffer;
}

/** One fenced block of section 13.11: its frames in order, and whether it starts with the preface. */
export interface StreamVector {
  preface: boolean;
  frames: VectorFrame[];
}

/** The blocks of section 13.11, by name, in the order SPEC.md gives them. */
export interface StreamVectors {
  handshake: StreamVector;
  serverStream: StreamVector;
  clientStream: StreamVector;
  bidi: StreamVector;
  cancelled: StreamVector;
  errorMidStream: StreamVector;
  unary: StreamVector;
  credit: StreamVector;
}

const NAMES: readonly (keyof StreamVectors)[] = [
  'handshake',
  'serverStream',
  'clientStream',
  'bidi',
  'cancelled',
  'errorMidStream',
  'unary',
  'credit',
];

/** Section 13.11 of SPEC.md, from its heading to the next section (or the end). */
function section(): string {
  const spec = readFileSync(repoPath('SPEC.md'), 'utf8');
  const start = spec.indexOf('\n### 13.11 ');
  if (start < 0) throw new Error('SPEC.md has no section 13.11');
  const next = spec.slice(start + 1).search(/\n#{2,3} /);
  return next < 0 ? spec.slice(start) : spec.slice(start, start + 1 + next);
}

/** Parses one block: on every line the part before a run of two or more spaces is hex, the rest commentary. */
function parseBlock(block: string): StreamVector {
  const lines: { offset: number; comment: string }[] = [];
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const line of block.split('\n')) {
    if (line.trim() === '') continue;
    const [hexPart, ...rest] = line.split(/\s{2,}/);
    const hex = hexPart!.replace(/\s+/g, '');
    if (!/^([0-9a-f]{2})*$/i.test(hex)) throw new Error(`SPEC.md 13.11: not hex: ${line}`);
    lines.push({ offset, comment: rest.join(' ').trim() });
    chunks.push(Buffer.from(hex, 'hex'));
    offset += hex.length / 2;
  }
  let bytes = Buffer.concat(chunks);
  const preface = bytes.subarray(0, PREFACE.length).equals(PREFACE);
  const base = preface ? PREFACE.length : 0;
  if (preface) bytes = bytes.subarray(base);
  const frames: VectorFrame[] = [];
  for (let at = 0; at < bytes.length;) {
    if (bytes.length - at < 10) throw new Error('SPEC.md 13.11: a block ends inside a frame header');
    const end = at + 10 + bytes.readUInt32BE(at);
    if (end > bytes.length) throw new Error('SPEC.md 13.11: a block ends inside a frame body');
    const frame = bytes.subarray(at, end);
    const comment = lines.find((l) => l.offset === base + at)?.comment;
    if (comment === undefined) throw new Error('SPEC.md 13.11: a frame does not start a line');
    const from =
      frame[4] === FrameType.HELLO || /^C:/.test(comment)
        ? 'client'
        : frame[4] === FrameType.WELCOME || /^S:/.test(comment)
          ? 'server'
          : undefined;
    if (from === undefined) throw new Error(`SPEC.md 13.11: no C: or S: on the line of a frame: ${comment}`);
    frames.push({ from, bytes: frame });
    at = end;
  }
  return { preface, frames };
}

/** The vectors of SPEC.md section 13.11. */
export function streamVectors(): StreamVectors {
  const blocks = [...section().matchAll(/```\n([\s\S]*?)```/g)].map((m) => parseBlock(m[1]!));
  if (blocks.length !== NAMES.length) throw new Error(`SPEC.md 13.11 has ${blocks.length} vectors, expected ${NAMES.length}`);
  return Object.fromEntries(NAMES.map((name, i) => [name, blocks[i]!])) as unknown as StreamVectors;
}

/** `item(n)` of section 13.11. */
export function vectorItem(n: number): { id: number; name: string; tags: string[]; score: number; blob: Buffer } {
  return { id: n, name: 'hi', tags: ['a'], score: 1.5, blob: Buffer.from([1, 2]) };
}
