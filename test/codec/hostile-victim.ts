/**
 * Worker side of hostile-protocol.test.ts: the real avrpc peer under attack, in a worker thread, so
 * that a decode that never ends (as on avsc's unbounded skip paths) freezes the worker and not the
 * test, which then reports it. `role: 'server'` starts an echo server on 127.0.0.1:0 and posts
 * `{ port }`; `role: 'client'` makes a client of `endpoint` and, for each `{ call }` message it gets
 * (`echo` of a minimal Item, or `fail`), makes that call and posts `{ code, message }` (code 0 when
 * it resolved).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Code, RpcError, createClient, createServer, loadProtocol } from '../../src/index.js';
import { repoPath } from '../helpers/repo.js';

const port = parentPort!;
const { role, endpoint } = workerData as { role: 'server' | 'client'; endpoint?: string };
const protocol = await loadProtocol(repoPath('protocol/echo.avdl'));

if (role === 'server') {
  const server = createServer({
    protocol,
    handlers: {
      echo: (req: { item: unknown }) => req.item,
      fail: (req: { reason: string }) => {
        throw new RpcError(Code.UNKNOWN, req.reason, { details: { reason: req.reason } });
      },
      notify: () => {},
    },
  });
  const { port: listening } = await server.listen({ host: '127.0.0.1', port: 0 });
  port.postMessage({ port: listening });
  port.on('message', (m: string) => {
    if (m === 'close') void server.close({ graceMs: 10 }).then(() => port.close());
  });
} else {
  const client = createClient({ protocol, endpoints: [endpoint!], waitForReadyMs: 5000 });
  port.on('message', (m: { call: string } | string) => {
    if (m === 'close') {
      void client.close().then(() => port.close());
      return;
    }
    const { call } = m as { call: string };
    const request = call === 'echo' ? { item: { id: 0, name: '', tags: [], score: 0, blob: Buffer.alloc(0) } } : { reason: 'r' };
    client.call(call, request, { timeoutMs: 5000 }).then(
      () => port.postMessage({ code: Code.OK, message: '' }),
      (err: unknown) =>
        port.postMessage(err instanceof RpcError ? { code: err.code, message: err.message } : { code: -1, message: String(err) }),
    );
  });
  port.postMessage({ ready: true });
}
