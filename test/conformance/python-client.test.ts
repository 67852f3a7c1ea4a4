import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createServer, loadProtocol, type CallContext } from '../../src/index.js';
import { repoPath, repoRoot } from '../helpers/repo.js';

/**
 * SPEC.md claims to be enough to write a client in another language. test/conformance/echo_client.py
 * is such a client (Python 3 stdlib only, written from SPEC.md alone): here it talks to a real server.
 */
const test = suite('python client written from SPEC.md');

interface Seen {
  message: string;
  metadata: Record<string, string>;
  deadline: number;
  /** `deadline - Date.now()` when the handler ran. */
  remainingMs: number;
  item?: { id: number; name: string };
}

function pythonAvailable(): boolean {
  const probe = spawnSync('python3', ['--version'], { stdio: 'ignore' });
  return probe.error === undefined && probe.status === 0;
}

test('echo_client.py passes every check against a real server, and the server sees its calls', async () => {
  assert.ok(pythonAvailable(), 'python3 is not on PATH: this conformance test needs Python 3 (stdlib only) installed');
  const protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
  const seen: Seen[] = [];
  const record = (message: string, ctx: CallContext, item?: Seen['item']): void => {
    seen.push({
      message,
      metadata: { ...ctx.metadata },
      deadline: ctx.deadline,
      remainingMs: ctx.deadline - Date.now(),
      ...(item ? { item } : {}),
    });
  };
  const server = createServer({
    protocol,
    handlers: {
      echo: (req: { item: Seen['item'] }, ctx: CallContext) => {
        record('echo', ctx, req.item);
        return req.item;
      },
      fail: (req: { reason: string }, ctx: CallContext) => {
        record('fail', ctx);
        throw new RpcError(Code.UNKNOWN, req.reason, { details: { reason: req.reason }, metadata: { 'retry-after': '5' } });
      },
      notify: (req: { item: Seen['item'] }, ctx: CallContext) => {
        record('notify', ctx, req.item);
      },
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  let closing: Promise<void> | undefined;
  const child = spawn('python3', [repoPath('test/conformance/echo_client.py'), '127.0.0.1', String(port)], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const lines: string[] = [];
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    for await (const line of createInterface({ input: child.stdout })) {
      lines.push(line);
      // The client made all its calls and waits for the graceful shutdown's GOAWAY.
      if (line === 'READY_FOR_GOAWAY') closing = server.close({ graceMs: 2000 });
    }
    const code = await exited;
    const last = lines[lines.length - 1] ?? '';
    let report: { ok: boolean; failed: string[]; results: Record<string, unknown> };
    try {
      report = JSON.parse(last) as typeof report;
    } catch {
      throw new Error(`no JSON result line from echo_client.py (exit ${code}):\n${lines.join('\n')}\n${stderr}`);
    }
    assert.equal(report.failed, [], `checks failed: ${JSON.stringify(report.results, null, 1)}\n${stderr}`);
    assert.ok(report.ok);
    assert.is(code, 0);
    assert.ok(lines.includes('READY_FOR_GOAWAY'), 'the client reached the GOAWAY step');
    const required = [
      'a.need_protocol',
      'a.welcome_ok',
      'a.server_protocol_sent',
      'a.echo',
      'a.fail_declared',
      'a.notify_no_reply',
      'a.deadline_metadata',
      'a.unimplemented',
      'a.concurrent',
      'a.ping_pong',
      'a.negative_block_counts',
      'a.cancel_unknown_ignored',
      'a.invalid_argument',
      'b.welcome_ok_without_protocol',
      'b.echo',
      'c.known_server_fingerprint',
      'c.echo',
      'c.goaway',
      'c.closed_after_goaway',
      'd.fingerprint_mismatch_goaway',
      'd.closed',
      'e.request_id_0_goaway',
      'e.closed',
      'a.goaway',
      'a.closed_after_goaway',
      'b.goaway',
      'b.closed_after_goaway',
    ];
    assert.equal(
      required.filter((name) => report.results[name] !== true),
      [],
      'every check ran and passed',
    );

    // Server-side effects: the one-way call arrived, the metadata and deadline were decoded.
    const notified = seen.filter((s) => s.message === 'notify');
    assert.is(notified.length, 1);
    assert.equal(notified[0]!.item?.id, 3);
    assert.equal(seen.find((s) => s.item?.id === 8)?.metadata, { neg: 'yes' }, 'metadata sent with a negative block count');
    const withMeta = seen.filter((s) => Object.keys(s.metadata).length > 0 && s.item?.id !== 8);
    assert.is(withMeta.length, 1, 'exactly one other call carried metadata');
    assert.equal(withMeta[0]!.metadata, { 'trace-id': 'abc123', who: 'python' });
    assert.is(withMeta[0]!.item?.id, 5);
    assert.ok(Number.isFinite(withMeta[0]!.deadline), 'the 5000 ms deadline reached the handler');
    assert.ok(withMeta[0]!.remainingMs <= 5000, 'the deadline is relative to the call, never later than sent');
    assert.ok(
      seen.filter((s) => s !== withMeta[0]).every((s) => s.deadline === Infinity),
      'no other call had a deadline',
    );
    // echo: 1 + id 4 + id 5 + 16 concurrent + id 8 on A, 1 on B, 1 on C (the invalid payload and `shout`
    // reach no handler).
    assert.is(seen.filter((s) => s.message === 'echo').length, 22);
    assert.is(seen.filter((s) => s.message === 'fail').length, 1);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill();
    await (closing ?? server.close({ graceMs: 0 }));
  }
});

test.run();
