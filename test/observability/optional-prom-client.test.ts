import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { repoPath } from '../helpers/repo.js';

const run = promisify(execFile);
const test = suite('prom-client is an optional peer dependency');

const indexUrl = pathToFileURL(repoPath('dist/src/index.js')).href;

/** ESM resolve hook that makes prom-client look uninstalled, as for a consumer who never added it. */
const HOOKS = `
export async function resolve(specifier, context, next) {
  if (specifier === 'prom-client' || specifier.startsWith('prom-client/')) {
    const err = new Error("Cannot find package 'prom-client' (hidden by the test)");
    err.code = 'ERR_MODULE_NOT_FOUND';
    throw err;
  }
  return next(specifier, context);
}
`;

/** A consumer: imports avrpc, makes a real call over loopback, then tries the Prometheus observer. */
const CONSUMER = `
import { createRequire } from 'node:module';
const avrpc = await import(${JSON.stringify(indexUrl)});
const protocol = avrpc.parseProtocol('protocol P { string echo(string s); }');
const server = avrpc.createServer({ protocol, handlers: { echo: (r) => r.s } });
const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
const client = avrpc.createClient({ protocol, endpoints: ['127.0.0.1:' + port] });
const echoed = await client.call('echo', { s: 'ok' });
await client.close();
await server.close({ graceMs: 100 });
// prom-client is CommonJS: had anything loaded it, it would sit in the require cache.
const loaded = Object.keys(createRequire(import.meta.url).cache).filter((p) => p.includes('prom-client'));
let observer;
try {
  await avrpc.createPrometheusObserver();
  observer = 'created';
} catch (err) {
  observer = err.codeName + ': ' + err.message;
}
console.log(JSON.stringify({ echoed, loaded, observer }));
`;

let dir = '';

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'avrpc-noprom-'));
  await writeFile(join(dir, 'hooks.mjs'), HOOKS);
  await writeFile(
    join(dir, 'register.mjs'),
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`,
  );
  await writeFile(join(dir, 'consumer.mjs'), CONSUMER);
});

test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('importing avrpc loads no prom-client until an observer is asked for', async () => {
  // prom-client is installed here: only the module graph tells whether the import is lazy.
  const { stdout } = await run(process.execPath, [join(dir, 'consumer.mjs')], { timeout: 30_000 });
  const out = JSON.parse(stdout) as { echoed: string; loaded: string[]; observer: string };
  assert.is(out.echoed, 'ok');
  assert.equal(out.loaded, [], 'no prom-client module before createPrometheusObserver');
  assert.is(out.observer, 'created');
});

test('without prom-client: avrpc imports and calls work; the observer fails FAILED_PRECONDITION', async () => {
  const { stdout } = await run(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, join(dir, 'consumer.mjs')], {
    timeout: 30_000,
  });
  const out = JSON.parse(stdout) as { echoed: string; loaded: string[]; observer: string };
  assert.is(out.echoed, 'ok');
  assert.equal(out.loaded, []);
  assert.match(out.observer, /^FAILED_PRECONDITION: createPrometheusObserver needs the prom-client package/);
});

test('without prom-client: the CLI still loads', async () => {
  const { stdout } = await run(
    process.execPath,
    ['--import', pathToFileURL(join(dir, 'register.mjs')).href, repoPath('dist/src/cli/avrpc.js'), '--help'],
    { timeout: 30_000 },
  );
  assert.match(stdout, /serve/);
  assert.match(stdout, /call/);
});

test.run();
