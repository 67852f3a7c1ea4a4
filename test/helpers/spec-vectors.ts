import { readFileSync } from 'node:fs';
import { repoPath } from './repo.js';

/**
 * The test vectors of SPEC.md section 10, read from SPEC.md itself so that the document and the
 * tests cannot drift apart. Each fenced block becomes its bytes: on every line, the part before a run
 * of two or more spaces is hex (spaces inside it ignored), the rest is commentary.
 */
export function specVectors(): Buffer[] {
  return hexBlocks('## 10. Test vectors');
}

/** The fenced hex blocks of the SPEC.md section whose heading starts with `heading`, up to the next section. */
function hexBlocks(heading: string): Buffer[] {
  const spec = readFileSync(repoPath('SPEC.md'), 'utf8');
  const start = spec.indexOf(heading);
  if (start < 0) throw new Error(`SPEC.md has no section ${heading}`);
  const next = spec.indexOf('\n## ', start + heading.length);
  const section = spec.slice(start, next < 0 ? undefined : next);
  const blocks: Buffer[] = [];
  for (const m of section.matchAll(/```\n([\s\S]*?)```/g)) {
    const hex = m[1]!
      .split('\n')
      .map((line) => line.split(/\s{2,}/)[0]!.replace(/\s+/g, ''))
      .join('');
    if (!/^[0-9a-f]*$/i.test(hex)) throw new Error(`SPEC.md vector is not hex: ${hex}`);
    blocks.push(Buffer.from(hex, 'hex'));
  }
  return blocks;
}

/** The vectors by name, in the order SPEC.md gives them. */
export function namedVectors(): {
  hello: Buffer;
  welcome: Buffer;
  request1: Buffer;
  request2: Buffer;
  response1: Buffer;
  request3: Buffer;
  error3: Buffer;
} {
  const [hello, welcome, request1, request2, response1, failPair] = specVectors();
  if (failPair === undefined) throw new Error('SPEC.md section 10 lacks vectors');
  const split = 10 + failPair.readUInt32BE(0);
  return {
    hello: hello!,
    welcome: welcome!,
    request1: request1!,
    request2: request2!,
    response1: response1!,
    request3: failPair.subarray(0, split),
    error3: failPair.subarray(split),
  };
}

/** The vectors of the extensions (SPEC.md section 10, "Extensions"), by name. */
export function extensionVectors(): {
  hello: Buffer;
  welcome: Buffer;
  fragmentedRequest: Buffer;
  compressedResponse: Buffer;
  compressedRequest: Buffer;
} {
  const [hello, welcome, fragmentedRequest, compressedResponse, compressedRequest] = specVectors().slice(6);
  if (compressedRequest === undefined) throw new Error('SPEC.md section 10 lacks the extension vectors');
  return {
    hello: hello!,
    welcome: welcome!,
    fragmentedRequest: fragmentedRequest!,
    compressedResponse: compressedResponse!,
    compressedRequest,
  };
}

/** The refusal vectors (SPEC.md section 10, "Refusal after GOAWAY"): the server's GOAWAY, then its REFUSED ERROR for id 2. */
export function refusalVectors(): { goaway: Buffer; refused: Buffer } {
  const pair = specVectors()[11];
  if (pair === undefined) throw new Error('SPEC.md section 10 lacks the refusal vectors');
  const split = 10 + pair.readUInt32BE(0);
  return { goaway: pair.subarray(0, split), refused: pair.subarray(split) };
}

/** The advertised-limits vector (SPEC.md section 10, "Advertised limits"): the first WELCOME, carrying `avrpc.limits`. */
export function limitsVectors(): { welcome: Buffer } {
  return { welcome: namedVectors().welcome };
}

/** The vector item value: `{id: 42, name: "hi", tags: ["a"], score: 1.5, blob: 0x0102}`. */
export const vectorItem = { id: 42, name: 'hi', tags: ['a'], score: 1.5, blob: Buffer.from([1, 2]) };

/** The vectors of SPEC.md section 11 (security): a HELLO carrying a token, and the refusal of it. */
export function securityVectors(): { tokenHello: Buffer; refusal: Buffer } {
  const [tokenHello, refusal] = hexBlocks('## 11. Security');
  if (refusal === undefined) throw new Error('SPEC.md section 11 lacks vectors');
  return { tokenHello: tokenHello!, refusal };
}

/**
 * True when WELCOME `actual` is the vector `expected` but for the `avrpc.limits` value, the last entry
 * of both maps (16 bytes before the map's end): for servers whose limits are not the defaults.
 */
export function sameWelcomeButLimits(actual: Buffer, expected: Buffer): boolean {
  const n = expected.length;
  return actual.length === n && actual.subarray(0, n - 17).equals(expected.subarray(0, n - 17)) && actual[n - 1] === expected[n - 1];
}

/** The health check vectors of SPEC.md section 14: the preface and health HELLO, and the SERVING WELCOME. */
export function healthVectors(): { hello: Buffer; welcome: Buffer } {
  const [hello, welcome] = hexBlocks('## 14. Health check');
  if (welcome === undefined) throw new Error('SPEC.md section 14 lacks vectors');
  return { hello: hello!, welcome };
}
