/**
 * Issue 9, item 3: the defaults of the transport options are written once per side in code
 * (CLIENT_/SERVER_TRANSPORT_DEFAULTS) and once in SPEC.md section 11.3. This parses that section and
 * holds the two together: a default changed in code without SPEC, or in SPEC without code, fails.
 *
 * What is read from section 11.3: the first cell of each row of a table whose header names a
 * "server option" or "client option" (`name`, value pairs: `maxFrameBytes`, 16 MiB; `keepaliveMs` 30 s),
 * and tables whose header has "server default" / "client default" columns (`name` in the first cell,
 * a value in each of those). Parenthesised remarks are skipped; a value is a number with an optional
 * unit (KiB, MiB, GiB, ms, s, min) or a sum of such numbers and other options' names.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { loadProtocol } from '../../src/index.js';
import { CLIENT_TRANSPORT_DEFAULTS, resolveClientOptions } from '../../src/client/client-options.js';
import { SERVER_TRANSPORT_DEFAULTS, resolveServerOptions } from '../../src/server/server-options.js';
import { KNOWN_TRANSPORT_OPTIONS, type TransportOptions } from '../../src/connection/transport-options.js';
import { repoPath } from '../helpers/repo.js';

type Side = 'server' | 'client';

/**
 * Transport options whose default section 11.3 does not state yet, per side. Each must be absent
 * from the section (the test fails once SPEC states it, so this list only shrinks): remove the
 * entry when SPEC.md gains it.
 */
const NOT_YET_IN_SPEC: Record<Side, readonly (keyof TransportOptions)[]> = { server: [], client: [] };

const UNITS: Record<string, number> = { KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, ms: 1, s: 1000, min: 60_000 };
const NUMBER = String.raw`\d+(?:\s*(?:KiB|MiB|GiB|ms|s|min)\b)?`;
const TERM = String.raw`(?:\x60\w+\x60|${NUMBER})`;
const VALUE = String.raw`${TERM}(?:\s*\+\s*${TERM})*`;
/** `name`, value (the comma optional), as in the first cell of a limit row. */
const PAIR = new RegExp(String.raw`\x60(\w+)\x60,?\s+(${VALUE})`, 'g');

/** A default as SPEC writes it: terms to add, numbers already in bytes or ms, names of other options. */
type SpecValue = readonly (number | string)[];

function parseValue(text: string): SpecValue {
  return text.split('+').map((term) => {
    const t = term.trim();
    const name = /^`(\w+)`$/.exec(t);
    if (name) return name[1]!;
    const m = /^(\d+)\s*(\w+)?$/.exec(t);
    if (!m) throw new Error(`SPEC 11.3: cannot read the value ${JSON.stringify(text)}`);
    return Number(m[1]) * (m[2] === undefined ? 1 : UNITS[m[2]]!);
  });
}

/** Section 11.3 of SPEC.md, from its heading to the next heading. */
function section113(): string {
  const spec = readFileSync(repoPath('SPEC.md'), 'utf8');
  const start = spec.indexOf('\n### 11.3 ');
  assert.ok(start >= 0, 'SPEC.md has no section 11.3');
  const end = spec.slice(start + 1).search(/\n#{2,3} /);
  return end < 0 ? spec.slice(start) : spec.slice(start, start + 1 + end);
}

const cells = (row: string): string[] =>
  row
    .trim()
    .replace(/^\||\|$/g, '')
    .split('|');
const stripRemarks = (cell: string): string => {
  // Innermost first, so that remarks nested in remarks go too.
  let s = cell;
  while (/\([^()]*\)/.test(s)) s = s.replace(/\([^()]*\)/g, '');
  return s;
};

/** The defaults section 11.3 states, per side, by option name. */
function specDefaults(): Record<Side, Map<string, SpecValue>> {
  const found: Record<Side, Map<string, SpecValue>> = { server: new Map(), client: new Map() };
  const put = (side: Side, name: string, value: SpecValue): void => {
    const had = found[side].get(name);
    assert.ok(had === undefined || had.join('+') === value.join('+'), `SPEC 11.3 gives ${side} ${name} two defaults`);
    found[side].set(name, value);
  };
  const lines = section113().split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.startsWith('|') || !lines[i + 1]?.startsWith('|---')) continue;
    const header = cells(lines[i]!).map((c) => c.trim().toLowerCase());
    const columns: [Side, number][] = [];
    header.forEach((h, col) => {
      if (h === 'server default') columns.push(['server', col]);
      if (h === 'client default') columns.push(['client', col]);
    });
    const firstCellSide: Side | undefined = /\bserver option\b/.test(header[0]!)
      ? 'server'
      : /\bclient option\b/.test(header[0]!)
        ? 'client'
        : undefined;
    for (i += 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
      const row = cells(lines[i]!);
      if (columns.length > 0) {
        const name = /^\s*`(\w+)`\s*$/.exec(row[0]!);
        if (name === null) continue;
        for (const [side, col] of columns) {
          const value = stripRemarks(row[col] ?? '').trim();
          assert.ok(new RegExp(`^${VALUE}$`).test(value), `SPEC 11.3: ${side} default of ${name[1]} is not a value: ${row[col]}`);
          put(side, name[1]!, parseValue(value));
        }
      } else if (firstCellSide !== undefined) {
        // "(the client's option of the same name and default ...)": the row states the other side's too.
        const bothSides = /client's option of the same name and default/.test(row[0]!);
        for (const m of stripRemarks(row[0]!).matchAll(PAIR)) {
          put(firstCellSide, m[1]!, parseValue(m[2]!));
          if (bothSides) put('client', m[1]!, parseValue(m[2]!));
        }
      }
    }
  }
  return found;
}

/** A SPEC value in numbers, other options' names looked up among the same side's SPEC defaults. */
function evaluate(side: Side, value: SpecValue, spec: Map<string, SpecValue>, depth = 0): number {
  assert.ok(depth < 8, `SPEC 11.3: ${side} defaults refer to each other in a cycle`);
  return value.reduce<number>((sum, term) => {
    if (typeof term === 'number') return sum + term;
    const other = spec.get(term);
    assert.ok(other !== undefined, `SPEC 11.3: a ${side} default refers to ${term}, which has none there`);
    return sum + evaluate(side, other, spec, depth + 1);
  }, 0);
}

let resolved: Record<Side, Record<string, unknown>>;
const transportDefaults: Record<Side, Readonly<Record<string, number>>> = {
  server: SERVER_TRANSPORT_DEFAULTS,
  client: CLIENT_TRANSPORT_DEFAULTS,
};

test.before(async () => {
  const protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
  resolved = {
    server: resolveServerOptions({ protocol, handlers: {} }) as unknown as Record<string, unknown>,
    client: resolveClientOptions({ protocol, endpoints: ['127.0.0.1:1'] }) as unknown as Record<string, unknown>,
  };
});

test('the parser reads the limit table of section 11.3', () => {
  const spec = specDefaults();
  // Rows written three ways: `name`, value; `name` value, `name` value; a sum of other options.
  assert.equal(spec.server.get('maxFrameBytes'), [16 * 1024 * 1024]);
  assert.equal(spec.server.get('keepaliveTimeoutMs'), [10_000]);
  assert.equal(spec.server.get('maxCancels'), [500]);
  assert.equal(spec.server.get('maxHandshakeBytes'), ['maxProtocolBytes', 'maxHelloMetaBytes', 1024]);
  assert.ok(spec.server.size >= 20, `only ${spec.server.size} server defaults read: the pattern no longer matches SPEC.md`);
});

for (const side of ['server', 'client'] as const) {
  test(`every ${side} default section 11.3 states is the code's`, () => {
    const spec = specDefaults()[side];
    const wrong: string[] = [];
    for (const [name, value] of spec) {
      const want = evaluate(side, value, spec);
      const code = resolved[side][name];
      assert.ok(typeof code === 'number', `SPEC 11.3 names ${side} option ${name}, which ${side} options do not have (or not as a number)`);
      if (code !== want) wrong.push(`${name}: SPEC ${want}, code ${code}`);
      if (name in KNOWN_TRANSPORT_OPTIONS && transportDefaults[side][name] !== want)
        wrong.push(`${name}: SPEC ${want}, ${side.toUpperCase()}_TRANSPORT_DEFAULTS ${transportDefaults[side][name]}`);
    }
    assert.equal(wrong, []);
  });

  test(`section 11.3 states every ${side} transport default`, () => {
    const spec = specDefaults()[side];
    const notYet = new Set<string>(NOT_YET_IN_SPEC[side]);
    const missing = Object.keys(transportDefaults[side]).filter((name) => !spec.has(name) && !notYet.has(name));
    assert.equal(missing, [], `SPEC.md section 11.3 lacks these ${side} defaults`);
    const landed = [...notYet].filter((name) => spec.has(name));
    assert.equal(landed, [], `SPEC.md section 11.3 now states these ${side} defaults: remove them from NOT_YET_IN_SPEC`);
  });
}

test('the resolvers fill in exactly the defaults objects', () => {
  for (const side of ['server', 'client'] as const) {
    for (const [name, value] of Object.entries(transportDefaults[side])) assert.is(resolved[side][name], value, `${side} ${name}`);
  }
});

test.run();
