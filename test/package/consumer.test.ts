/**
 * The package as an application installs it: `npm pack` of this working tree (built by `npm run
 * build`; packed with --ignore-scripts so it does not rebuild), installed into two consumer projects
 * made here, an ES module one and a CommonJS one, without etcd3 or prom-client. Each has its own
 * protocol and its generated API type; the repository's tsc compiles under `strict` a typed server
 * and client and a file of `@ts-expect-error` lines (tsc fails on an unused one), and fails on a file
 * with one plain error. Then the server and client run over loopback: a call, a declared error, a
 * call on a worker thread (each build starts its own worker script), and createEtcdRegistry failing
 * with the package to install.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { promisify } from 'node:util';
import { repoPath, repoRoot } from '../helpers/repo.js';
import { npmEnv } from './npm-env.js';
import { consumerFiles, type ConsumerKind, type ConsumerOutput } from './consumer-files.js';
import { readmeApp, type ReadmeApp } from './readme-app.js';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { symlink } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo } from 'node:net';

const run = promisify(execFile);
const test = suite('the packed package in ESM and CommonJS consumer projects');
const KINDS: ConsumerKind[] = ['esm', 'cjs'];
const TSC = repoPath('node_modules/typescript/bin/tsc');
const STEP_TIMEOUT_MS = 120_000;

let dir = '';
let app: ReadmeApp;
let tarball = '';
let packed: string[] = [];

/** Runs a command, failing with its output (not just an exit code) when it fails. */
async function sh(file: string, args: string[], cwd: string): Promise<string> {
  try {
    return (await run(file, args, { cwd, env: npmEnv, timeout: STEP_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} failed in ${cwd}:\n${stdout ?? ''}${stderr ?? ''}`, { cause: err });
  }
}

const projectDir = (kind: ConsumerKind | 'app'): string => join(dir, kind);

test.before(async () => {
  for (const built of ['dist/src/index.js', 'dist/cjs/index.js', 'dist/cjs/package.json']) {
    if (!existsSync(repoPath(built))) throw new Error(`${built} is missing: run npm run build first`);
  }
  dir = await mkdtemp(join(tmpdir(), 'avrpc-consumer-'));
  const [pack] = JSON.parse(await sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], repoRoot)) as {
    filename: string;
    files: { path: string }[];
  }[];
  tarball = join(dir, pack!.filename);
  packed = pack!.files.map((file) => file.path);
  const typeRoots = repoPath('node_modules/@types');
  for (const kind of KINDS) {
    for (const [path, text] of Object.entries(consumerFiles(kind, typeRoots))) {
      await mkdir(dirname(join(projectDir(kind), path)), { recursive: true });
      await writeFile(join(projectDir(kind), path), text);
    }
    // CI has npm's cache warm from `npm ci`: nothing needs the network.
    await sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], projectDir(kind));
  }
  // README's "Use it in your app": its files, avrpc installed from the tarball; typescript and
  // @types/node (its `npm install -D`) linked from this repository, so nothing needs the network.
  app = readmeApp(await freePort());
  for (const [path, text] of Object.entries(app.files)) {
    await mkdir(dirname(join(projectDir('app'), path)), { recursive: true });
    await writeFile(join(projectDir('app'), path), text);
  }
  await sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], projectDir('app'));
  await mkdir(join(projectDir('app'), 'node_modules/@types'), { recursive: true });
  await symlink(repoPath('node_modules/typescript'), join(projectDir('app'), 'node_modules/typescript'), 'dir');
  await symlink(repoPath('node_modules/@types/node'), join(projectDir('app'), 'node_modules/@types/node'), 'dir');
});

/** A loopback port free right now (the README's server listens on a fixed port; 7000 may be taken). */
async function freePort(): Promise<number> {
  const probe = createNetServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

test.after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('the tarball ships both builds, the sources their maps name, and no tests or benchmarks', () => {
  for (const path of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/avrpc.js', 'dist/cjs/index.js', 'dist/cjs/index.d.ts']) {
    assert.ok(packed.includes(path), `${path} is packed`);
  }
  for (const path of ['dist/cjs/package.json', 'dist/cjs/server/offload/offload-worker.js', 'LICENSE', 'CHANGELOG.md', 'README.md']) {
    assert.ok(packed.includes(path), `${path} is packed`);
  }
  assert.equal(
    packed.filter((path) => /^dist\/(test|bench)\/|tsbuildinfo|\.cjs-stage/.test(path)),
    [],
  );
  const maps = packed.filter((path) => path.endsWith('.map'));
  assert.ok(maps.length > 50, `${maps.length} source maps`);
  const missing = maps.flatMap((map) => {
    const { sources } = JSON.parse(readFileSync(repoPath(map), 'utf8')) as { sources: string[] };
    return sources.map((source) => posix.join(posix.dirname(map), source)).filter((source) => !packed.includes(source));
  });
  assert.equal(missing, [], 'every source a map names is in the tarball');
  assert.equal(
    packed.filter(
      (path) => path.startsWith('dist/cjs/') && /\.c?js$/.test(path) && readFileSync(repoPath(path), 'utf8').includes('import.meta'),
    ),
    [],
    'the CommonJS build does not use import.meta',
  );
  assert.ok(
    !packed.some((path) => path.startsWith('dist/cjs/') && path.endsWith('.map')),
    'no CommonJS maps: they would name the staging copy',
  );
});

/** tsc over a consumer project: its diagnostics, one per line (empty when it compiled cleanly). */
async function tscErrors(cwd: string): Promise<string[]> {
  const stdout = await run(process.execPath, [TSC, '-p', '.'], { cwd, timeout: STEP_TIMEOUT_MS }).then(
    ({ stdout }) => stdout,
    (err: { stdout?: string }) => err.stdout ?? String(err),
  );
  return stdout.split('\n').filter((line) => / error TS\d+/.test(line));
}

for (const kind of KINDS) {
  test(`${kind} consumer: typed code compiles under strict, the wrong lines do not, and it serves and calls without etcd3`, async () => {
    const cwd = projectDir(kind);
    assert.not.ok(existsSync(join(cwd, 'node_modules/etcd3')), 'etcd3 is not installed with avrpc');
    assert.not.ok(existsSync(join(cwd, 'node_modules/prom-client')), 'prom-client is not installed with avrpc');
    await sh(join(cwd, 'node_modules/.bin/avrpc'), ['gen', 'greet.avdl', '--out', 'gen'], cwd);
    // src/expect-errors.ts adds none (an unused @ts-expect-error would be TS2578); the one plain error is reported.
    const errors = await tscErrors(cwd);
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0]!, /^bad\/plain-error\.ts\(7,\d+\): error TS2345: Argument of type '"greett"' is not assignable/);
    const compiled = readFileSync(join(cwd, 'out/src/main.js'), 'utf8');
    assert.ok(
      kind === 'cjs' ? compiled.includes('require("avrpc")') : compiled.includes("from 'avrpc'"),
      `${kind} output loads avrpc as ${kind}`,
    );
    const out = JSON.parse(await sh(process.execPath, ['out/src/main.js'], cwd)) as ConsumerOutput;
    assert.match(
      out.resolved,
      kind === 'esm' ? /node_modules\/avrpc\/dist\/src\/index\.js$/ : /node_modules\/avrpc\/dist\/cjs\/index\.js$/,
    );
    assert.equal(out.greeting, { text: `hello ${kind}`, count: 2 });
    assert.is(out.shout, `${kind.toUpperCase()} from a worker`);
    assert.equal(out.refused, {
      code: 'PERMISSION_DENIED',
      message: `not ${kind}`,
      details: { reason: 'closed' },
      errorType: 'consumer.greet.GreetError',
      reason: 'closed',
    });
    assert.match(out.etcd, /^FAILED_PRECONDITION: createEtcdRegistry needs the etcd3 package: npm install etcd3$/);
  });
}

test('README "Use it in your app" works as written: gen, tsc under strict, the server, the client', async () => {
  const cwd = projectDir('app');
  await sh(join(cwd, 'node_modules/.bin/avrpc'), app.genArgs, cwd);
  assert.equal(await tscErrors(cwd), []);
  const server = spawn(process.execPath, ['dist/server.js'], { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    let printed = '';
    server.stdout.setEncoding('utf8');
    for await (const chunk of server.stdout) {
      printed += chunk as string;
      if (printed.includes('listening on')) break;
    }
    const out = await sh(process.execPath, ['dist/client.js'], cwd);
    assert.equal(out.trim().split('\n'), app.expected);
  } finally {
    server.kill('SIGINT');
    const [code] = (await once(server, 'exit')) as [number | null];
    assert.is(code, 0, 'the server drains and exits on SIGINT');
  }
});

test('the installed bin runs without the optional peers', async () => {
  const stdout = await sh(join(projectDir('esm'), 'node_modules/.bin/avrpc'), ['--help'], projectDir('esm'));
  assert.match(stdout, /serve/);
  assert.match(stdout, /call/);
});

test.run();
