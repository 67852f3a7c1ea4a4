/** `avrpc serve --http` and `--http-port`: the CLI's server answers HTTP/JSON with the module's handlers. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { repoPath } from '../helpers/repo.js';
import { serve } from '../helpers/cli.js';

const args = [repoPath('test/fixtures/cli.avdl'), repoPath('dist/test/fixtures/cli-handlers.js'), '--longs', 'bigint'];
const body = '{"thing":{"id":9007199254740993,"blob":"ab","choice":null,"hash":"abcd","counts":{},"at":0}}';

async function httpUrl(output: () => string): Promise<string> {
  for (;;) {
    const m = /^http (\S+)$/m.exec(output());
    if (m !== null) return m[1]!;
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('--http serves HTTP/JSON on the avrpc port', async () => {
  const served = await serve(...args, '--http');
  try {
    const url = await httpUrl(served.output);
    assert.ok(url.endsWith(served.address), url);
    const res = await fetch(`${url}/avrpc.cli.Kitchen/bump`, { method: 'POST', body });
    assert.is(res.status, 200);
    assert.ok((await res.text()).includes('"id":9007199254740994'));
  } finally {
    assert.is(await served.stop(), 0);
  }
});

test('--http-port serves HTTP/JSON on a port of its own', async () => {
  const served = await serve(...args, '--http-port', '0');
  try {
    const url = await httpUrl(served.output);
    assert.not.ok(url.endsWith(served.address), url);
    const res = await fetch(`${url}/readyz`);
    assert.is(res.status, 200);
    await res.text();
  } finally {
    assert.is(await served.stop(), 0);
  }
});

test.run();
