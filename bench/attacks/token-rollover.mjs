// Issue 14: a client with rotating credentials (300 ms tokens) under steady load across several
// expiries: how many calls fail at a rollover? Loopback only, bounded (3 s).
//   node bench/attacks/token-rollover.mjs   (AVRPC_DIST=... for another build)
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const dist = resolve(process.env.AVRPC_DIST ?? new URL('../../dist', import.meta.url).pathname);
const { createServer, createClient, createHmacAuth, loadProtocol, codeName } = await import(pathToFileURL(`${dist}/src/index.js`).href);
const protocol = await loadProtocol(resolve(dist, '../protocol/echo.avdl'));
const item = { id: 1, name: 'p', tags: [], score: 0, blob: Buffer.alloc(0) };
const auth = createHmacAuth({ secret: 'a shared secret of at least 32 bytes!' });
let handled = 0;
let connections = 0;
const server = createServer({
  protocol,
  authenticate: auth.authenticate,
  observer: {
    connectionOpened: () => {
      connections++;
    },
  },
  handlers: {
    echo: (r) => {
      handled++;
      return r.item;
    },
  },
});
const { port } = await server.listen();
const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], credentials: () => auth.issue('alice', [], 300) });
const codes = {};
const end = Date.now() + 3000;
await Promise.all(
  Array.from({ length: 16 }, async () => {
    while (Date.now() < end) {
      const r = await client.call('echo', { item }).then(
        () => 'OK',
        (e) => codeName(e.code),
      );
      codes[r] = (codes[r] ?? 0) + 1;
    }
  }),
);
console.log(JSON.stringify({ codes, connections, handled }));
await client.close();
await server.close({ graceMs: 100 });
