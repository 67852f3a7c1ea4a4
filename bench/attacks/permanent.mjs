// Issue 14 measurement: node bench/attacks/permanent.mjs $PWD/dist. How long each call takes to fail,
// and with what, when the only endpoint fails for good (waitForReadyMs 60 s, call deadline 20 s).
// Each permanent failure once, waitForReadyMs 60 s, call deadline 20 s: node permanent.mjs <dist>
import { createServer as netServer } from 'node:net';
const dist = process.argv[2];
const { makeTestCerts } = await import(`${dist}/test/helpers/certs.js`);
const { createServer, createClient, loadProtocol } = await import(`${dist}/src/index.js`);
const certs = await makeTestCerts();
const protocol = await loadProtocol(`${dist}/../protocol/echo.avdl`);
const tls = createServer({ protocol, handlers: { echo: (r) => r.item }, tls: { cert: certs.serverCert, key: certs.serverKey } });
const { port } = await tls.listen({ host: '127.0.0.1', port: 0 });
const plain = createServer({ protocol, handlers: { echo: (r) => r.item } });
const { port: pport } = await plain.listen({ host: '127.0.0.1', port: 0 });
const http = netServer((s) => {
  s.on('error', () => {});
  s.resume();
  s.end('HTTP/1.1 400 Bad Request\r\n\r\n');
});
await new Promise((r) => http.listen(0, '127.0.0.1', r));
const item = { id: 1, name: 'x', tags: [], score: 0, blob: Buffer.alloc(0) };
const cases = {
  clientWithoutCa: { endpoints: [`127.0.0.1:${port}`], tls: { ca: certs.otherCa } },
  wrongServerName: { endpoints: [`127.0.0.1:${port}`], tls: { ca: certs.ca, servername: 'nope.test' } },
  plainToTlsPort: { endpoints: [`127.0.0.1:${port}`] },
  tlsToPlainPort: { endpoints: [`127.0.0.1:${pport}`], tls: { ca: certs.ca } },
  httpServer: { endpoints: [`127.0.0.1:${http.address().port}`] },
};
await Promise.all(
  Object.entries(cases).map(async ([name, o]) => {
    const c = createClient({ protocol, waitForReadyMs: 60_000, ...o });
    const t = performance.now();
    const e = await c.call('echo', { item }, { timeoutMs: 20_000 }).catch((e) => e);
    console.log(JSON.stringify({ case: name, ms: Math.round(performance.now() - t), code: e.codeName, message: e.message.slice(0, 140) }));
    await c.close();
  }),
);
await tls.close();
await plain.close();
http.close();
await certs.cleanup();
