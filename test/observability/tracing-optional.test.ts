/**
 * `@opentelemetry/api` is an optional peer: avrpc never loads it unless `tracing` is asked for, and
 * when it is asked for and missing, says which package to install. A consumer process each time,
 * with an ESM resolve hook hiding the package (it is installed here).
 */
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
const test = suite('@opentelemetry/api is an optional peer dependency');
const indexUrl = pathToFileURL(repoPath('dist/src/index.js')).href;

const HOOKS = `
export async function resolve(specifier, context, next) {
  if (specifier === '@opentelemetry/api' || specifier.startsWith('@opentelemetry/api/')) {
    const err = new Error("Cannot find package '@opentelemetry/api' (hidden by the test)");
    err.code = 'ERR_MODULE_NOT_FOUND';
    throw err;
  }
  return next(specifier, context);
}
`;

/** Calls untraced over loopback, then asks for tracing on a server and on a client; prints what happened. */
const CONSUMER = `
import { createRequire } from 'node:module';
const avrpc = await import(${JSON.stringify(indexUrl)});
const protocol = avrpc.parseProtocol('protocol P { string echo(string s); }');
const server = avrpc.createServer({ protocol, handlers: { echo: (r) => r.s } });
const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
const client = avrpc.createClient({ protocol, endpoints: ['127.0.0.1:' + port] });
const echoed = await client.call('echo', { s: 'ok' });
// The API is CommonJS: had anything loaded it, it would sit in the require cache.
const loaded = Object.keys(createRequire(import.meta.url).cache).filter((p) => p.includes('@opentelemetry'));
const outcome = async (p) => p.then(() => 'ok', (err) => err.codeName + ': ' + err.message);
const traced = avrpc.createServer({ protocol, handlers: { echo: (r) => r.s }, tracing: true });
const listen = await outcome(traced.listen({ host: '127.0.0.1', port: 0 }));
const tracedClient = avrpc.createClient({ protocol, endpoints: ['127.0.0.1:' + port], tracing: true });
const call = await outcome(tracedClient.call('echo', { s: 'traced' }));
await Promise.all([client.close(), tracedClient.close()]);
await Promise.all([server.close({ graceMs: 100 }), traced.close({ graceMs: 100 })]);
console.log(JSON.stringify({ echoed, loaded, listen, call }));
`;

let dir = '';
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'avrpc-nootel-'));
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

interface Out {
  echoed: string;
  loaded: string[];
  listen: string;
  call: string;
}

test('installed: untraced calls load nothing of it; tracing: true works', async () => {
  const { stdout } = await run(process.execPath, [join(dir, 'consumer.mjs')], { timeout: 30_000 });
  const out = JSON.parse(stdout) as Out;
  assert.is(out.echoed, 'ok');
  assert.equal(out.loaded, [], 'no @opentelemetry module before tracing is asked for');
  assert.is(out.listen, 'ok');
  assert.is(out.call, 'ok');
});

test('missing: untraced calls work; a traced listen and a traced call fail FAILED_PRECONDITION naming it', async () => {
  const { stdout } = await run(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, join(dir, 'consumer.mjs')], {
    timeout: 30_000,
  });
  const out = JSON.parse(stdout) as Out;
  assert.is(out.echoed, 'ok');
  for (const what of [out.listen, out.call]) {
    assert.match(what, /^FAILED_PRECONDITION: /);
    assert.match(what, /npm install @opentelemetry\/api/);
  }
});

test.run();
