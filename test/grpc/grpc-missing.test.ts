/**
 * Without @grpc/grpc-js installed, a server given `grpc` fails `listen` with FAILED_PRECONDITION
 * naming the package (before binding anything); a server without `grpc` never loads it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { repoPath } from '../helpers/repo.js';

const test = suite('grpc bridge without @grpc/grpc-js');
const run = promisify(execFile);

const script = (grpc: boolean) => `
import { createServer, loadProtocol } from ${JSON.stringify(repoPath('dist/src/index.js'))};
const protocol = await loadProtocol(${JSON.stringify(repoPath('protocol/echo.avdl'))});
const server = createServer({ protocol, handlers: {} ${grpc ? ', grpc: { port: 0 }' : ''} });
try {
  const bound = await server.listen();
  console.log(JSON.stringify({ listening: bound.port > 0 }));
} catch (err) {
  console.log(JSON.stringify({ code: err.codeName, message: err.message }));
}
await server.close();
`;

async function outcome(grpc: boolean): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, [
    '--import',
    repoPath('dist/test/grpc/without-grpc-js.js'),
    '--input-type=module',
    '-e',
    script(grpc),
  ]);
  return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

test('listen with grpc fails FAILED_PRECONDITION naming the package', async () => {
  const r = await outcome(true);
  assert.is(r['code'], 'FAILED_PRECONDITION', JSON.stringify(r));
  assert.match(String(r['message']), 'npm install @grpc/grpc-js');
});

test('a server without grpc does not need the package', async () => {
  assert.equal(await outcome(false), { listening: true });
});

test.run();
