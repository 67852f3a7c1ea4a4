// Issue 14 measurement: node bench/attacks/blackhole.mjs $PWD/dist [roundRobin|leastConnections] ['{"extra":"client options"}'].
// Two servers on 127.0.0.1, one answers PINGs but never calls; a round-robin client with default
// outlier settings makes calls (250 ms deadline, 4 at a time) for 6 s. node blackhole.mjs <dist> [balancer]
const dist = process.argv[2];
const { createClient, createServer, loadProtocol } = await import(`${dist}/src/index.js`);
const protocol = await loadProtocol(`${dist}/../protocol/echo.avdl`);
const good = createServer({ protocol, handlers: { echo: (r) => r.item } });
const hole = createServer({ protocol, handlers: { echo: () => new Promise(() => {}) } });
const g = await good.listen({ host: '127.0.0.1', port: 0 });
const h = await hole.listen({ host: '127.0.0.1', port: 0 });
const client = createClient({
  protocol,
  endpoints: [`127.0.0.1:${g.port}`, `127.0.0.1:${h.port}`],
  balancer: process.argv[3] ?? 'roundRobin',
  ...JSON.parse(process.argv[4] ?? '{}'),
});
const item = { id: 1, name: 'x', tags: [], score: 0, blob: Buffer.alloc(0) };
let ok = 0,
  failed = 0,
  last2s = { ok: 0, failed: 0 };
const end = performance.now() + 6000;
const worker = async () => {
  while (performance.now() < end) {
    const late = performance.now() > end - 2000;
    await client.call('echo', { item }, { timeoutMs: 250 }).then(
      () => {
        ok++;
        if (late) last2s.ok++;
      },
      () => {
        failed++;
        if (late) last2s.failed++;
      },
    );
  }
};
await Promise.all([worker(), worker(), worker(), worker()]);
console.log(
  JSON.stringify({
    dist,
    balancer: process.argv[3] ?? 'roundRobin',
    calls: ok + failed,
    failed,
    last2s,
    ejected: client.stats().map((e) => e.ejected),
  }),
);
await client.close();
await good.close({ graceMs: 50 });
await hole.close({ graceMs: 50 });
process.exit(0);
