/**
 * The public API as a consumer sees it: a project outside this repository that has `avrpc` in its
 * node_modules (a symlink to this repository, as `npm install ../avrpc` makes) imports it by name and
 * runs the snippet; its TypeScript compiles against the package's `types`; internals are not
 * importable.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { repoPath, repoRoot } from '../helpers/repo.js';

const test = suite('public API from a consumer');
let dir: string;

test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'avrpc-consumer-'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(repoRoot, join(dir, 'node_modules', 'avrpc'), 'dir');
  cpSync(repoPath('protocol'), join(dir, 'protocol'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
});

test.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `node file` in the consumer folder (killed after 30 s so a hang fails instead of blocking). */
async function run(command: string, args: string[]): Promise<{ status: number | null; out: string }> {
  const child = spawn(command, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [status] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { status, out };
}

/** The snippet, verbatim where it can be, plus checks that print what they saw. */
const SNIPPET = `
import { loadProtocol, createServer, createClient, RpcError, Code } from 'avrpc';
const item = { id: 7, name: 'seven', tags: ['a'], score: 0.5, blob: Buffer.from([1, 2]) };
const signal = new AbortController().signal;
const seen = [];
const protocol = await loadProtocol('protocol/echo.avdl');
const server = createServer({ protocol, handlers: {
  echo: async (req, ctx) => { seen.push({ k: ctx.metadata.k, peer: typeof ctx.peer.port, deadline: Number.isFinite(ctx.deadline), aborted: ctx.signal.aborted }); return req.item; },
  fail: async (req) => { throw { reason: req.reason }; },
} });
const { host, port } = await server.listen({ host: '127.0.0.1', port: 0 });
const client = createClient({ protocol, endpoints: [\`127.0.0.1:\${port}\`] });
const echoed = await client.call('echo', { item }, { timeoutMs: 1000, signal, metadata: { k: 'v' } });
let failed;
try { await client.call('fail', { reason: 'nope' }); } catch (err) { failed = err; }
await client.close(); await server.close({ graceMs: 5000 });
console.log(JSON.stringify({
  host, port: typeof port, echoed: { ...echoed, blob: [...echoed.blob] }, seen,
  failed: { isRpcError: failed instanceof RpcError, code: failed.code, unknown: Code.UNKNOWN, details: { ...failed.details } },
  codes: [Code.CANCELLED, Code.INVALID_ARGUMENT, Code.DEADLINE_EXCEEDED, Code.UNIMPLEMENTED, Code.INTERNAL, Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED, Code.UNAUTHENTICATED, Code.PERMISSION_DENIED],
}));
`;

test("the issue's snippet runs against `import ... from 'avrpc'` in another project", async () => {
  writeFileSync(join(dir, 'snippet.mjs'), SNIPPET);
  const r = await run(process.execPath, ['snippet.mjs']);
  assert.is(r.status, 0, r.out);
  const got = JSON.parse(r.out.trim().split('\n').pop()!) as Record<string, unknown>;
  assert.equal(got, {
    host: '127.0.0.1',
    port: 'number',
    echoed: { id: 7, name: 'seven', tags: ['a'], score: 0.5, blob: [1, 2] },
    seen: [{ k: 'v', peer: 'number', deadline: true, aborted: false }],
    failed: { isRpcError: true, code: 2, unknown: 2, details: { reason: 'nope' } },
    codes: [1, 3, 4, 12, 13, 14, 8, 16, 7],
  });
});

test("README's library example runs as written, from the consumer project", async () => {
  const readme = readFileSync(repoPath('README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Use it as a library'));
  const example = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(example?.includes("from 'avrpc'"), 'the example imports the package by name');
  writeFileSync(join(dir, 'readme.mjs'), `${example}\nconsole.log(JSON.stringify({ id: item.id, name: item.name }));\n`);
  const r = await run(process.execPath, ['readme.mjs']);
  assert.is(r.status, 0, r.out);
  assert.equal(JSON.parse(r.out.trim().split('\n').pop()!), { id: 1, name: 'x' });
});

test('internals are not importable: only the package root is exported', async () => {
  writeFileSync(
    join(dir, 'internal.mjs'),
    `
try { await import('avrpc/dist/src/codec/protocol.js'); console.log('imported'); }
catch (err) { console.log(err.code); }`,
  );
  const r = await run(process.execPath, ['internal.mjs']);
  assert.is(r.status, 0, r.out);
  assert.is(r.out.trim(), 'ERR_PACKAGE_PATH_NOT_EXPORTED');
});

test("a TypeScript consumer type-checks against the package's types (strict, NodeNext)", async () => {
  writeFileSync(
    join(dir, 'consumer.ts'),
    `
import { loadProtocol, createServer, createClient, RpcError, Code, type Client, type Server, type Handler } from 'avrpc';
const protocol = await loadProtocol(new URL('./protocol/echo.avdl', import.meta.url));
const echo: Handler = async (req: { item: unknown }, ctx) => { void ctx.signal; void ctx.metadata['k']; return req.item; };
const server: Server = createServer({ protocol, handlers: { echo } });
const { port }: { host: string; port: number } = await server.listen({ host: '127.0.0.1', port: 0 });
const client: Client = createClient({ protocol, endpoints: [\`127.0.0.1:\${port}\`] });
const out: { id: number } = await client.call<{ id: number }>('echo', { item: {} }, { timeoutMs: 1000, metadata: { k: 'v' } });
const code: Code = Code.UNAVAILABLE;
const err: RpcError = new RpcError(code, 'x');
void out; void err;
await client.close(); await server.close({ graceMs: 5000 });
`,
  );
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        types: ['node'],
        typeRoots: [repoPath('node_modules/@types')],
        skipLibCheck: false,
        lib: ['ES2022'],
      },
      files: ['consumer.ts'],
    }),
  );
  const r = await run(process.execPath, [repoPath('node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json']);
  assert.is(r.status, 0, r.out);
});

test.run();
