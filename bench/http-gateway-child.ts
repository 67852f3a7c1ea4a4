/**
 * The processes of bench/http-gateway.ts, one role each:
 * `node dist/bench/http-gateway-child.js server <avrpc|avrpc-http|node-http>` and
 * `node dist/bench/http-gateway-child.js client '<GatewayClientJob as JSON>'`.
 *
 * Servers listen on 127.0.0.1 port 0 and send `{ port }` over IPC; `avrpc` is the plain avrpc echo
 * server, `avrpc-http-port` the same with HTTP on a port of its own (`http: { port: 0 }`, the port
 * it sends is that one), `avrpc-http` the same with `http: {}` (its port also answers HTTP/1.1, told apart by the
 * first bytes), `node-http` a plain node:http server doing the gateway's work by hand: read the body,
 * `JSON.parse` it, answer `JSON.stringify` of its `item`, so the same bytes in and out as the gateway.
 * They answer `'sample'` with their process CPU so far (`{ cpuUs }`) and exit on `'stop'`.
 *
 * A client process drives both servers of a comparison, in turns: slices of `sliceMs` at full load
 * (`inFlight` closed-loop workers) on one, drained, then on the other, in alternating order. On a
 * shared machine the load of other jobs changes over seconds; slices this short put both systems
 * under the same load, so the ratio of the pair is steady where whole runs differ by tens of percent.
 * Around every measured slice the client asks for a CPU sample of both servers (`{ sample: true }`
 * to the parent, which asks the servers and answers `{ cpu: [a, b] }`) and waits for it: each slice's
 * server CPU is then exactly the work of its calls (a slice ends once its calls are answered, and
 * the next starts only after the sample), whatever the IPC's latency. Hence per slice pair the ratio
 * of the servers' CPU per call, the steadiest figure on a shared machine.
 * Calls go through avrpc's client (`avrpc`) or undici's pipelining client (`http`: `connections`
 * sockets, `pipelining` requests in flight on each).
 */
import { createServer as createHttpServer } from 'node:http';
import * as hdr from 'hdr-histogram-js';
import type { Dispatcher } from 'undici-types';
import { createClient, createServer, loadProtocol, type ServerOptions } from '../src/index.js';
import { benchItem, benchItemJson, benchRequestJson, repoFile } from './payload.js';

/** A server of this benchmark. */
export type GatewayServerKind = 'avrpc' | 'avrpc-http' | 'avrpc-http-port' | 'node-http';

/** How the client calls one server. */
export interface GatewayTarget {
  kind: 'avrpc' | 'http';
  port: number;
  /** http only: sockets, and requests pipelined on each. */
  connections?: number;
  pipelining?: number;
}

/** What the parent asks a client process to do. */
export interface GatewayClientJob {
  targets: [GatewayTarget, GatewayTarget];
  inFlight: number;
  warmupMs: number;
  sliceMs: number;
  /** Measured slices per target. */
  slices: number;
  /**
   * Load both targets in the same slices (each with `inFlight` workers) instead of in turns: for a
   * comparison judged on server CPU per call, both then meet exactly the same machine load.
   */
  concurrent?: boolean;
}

/** One target's figures over the measured slices. */
export interface SideResult {
  calls: number;
  errors: number;
  firstError?: string;
  /** Time spent in its slices, drains included. */
  seconds: number;
  callsPerSec: number;
  p50Us: number;
  p99Us: number;
  /** CPU of the client process during its slices, in µs. */
  cpuUs: number;
  /** CPU of this target's server process during its slices, in µs. */
  serverCpuUs: number;
}

/**
 * What a client process sends back: each target's figures, and for each pair of slices the ratio
 * first / second of calls/s and of server CPU per call.
 */
export interface GatewayClientResult {
  sides: [SideResult, SideResult];
  pairRatios: number[];
  pairCpuRatios: number[];
}

/** The HTTP path of the echo message: `/<protocol full name>/<message>`. */
const echoPath = '/avrpc.echo.Echo/echo';

async function startServer(kind: GatewayServerKind): Promise<{ port: number; close(): Promise<void> }> {
  if (kind === 'node-http') {
    const server = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let out: string;
        try {
          out = JSON.stringify((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { item: unknown }).item);
        } catch {
          res.writeHead(400).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    return { port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
  }
  const protocol = await loadProtocol(repoFile('protocol/echo.avdl'));
  const options: ServerOptions = { protocol, handlers: { echo: async (req: { item: unknown }) => req.item } };
  // `http: {}`: HTTP/JSON on the avrpc port, told apart by the first bytes.
  const server = createServer(
    kind === 'avrpc-http' ? { ...options, http: {} } : kind === 'avrpc-http-port' ? { ...options, http: { port: 0 } } : options,
  );
  const bound = await server.listen({ host: '127.0.0.1', port: 0 });
  const port = kind === 'avrpc-http-port' ? bound.http!.port : bound.port;
  return { port, close: () => server.close({ graceMs: 1000 }) };
}

async function serve(kind: GatewayServerKind): Promise<void> {
  const server = await startServer(kind);
  process.on('message', (msg) => {
    if (msg === 'sample') {
      const cpu = process.cpuUsage();
      process.send!({ cpuUs: cpu.user + cpu.system, sysUs: cpu.system });
    }
    if (msg === 'stop') void server.close().finally(() => process.exit(0));
  });
  process.on('disconnect', () => process.exit(0));
  process.send!({ port: server.port });
}

/**
 * undici's Agent: the `undici` package when installed, else the copy Node bundles behind global fetch
 * (Node 20 does not export it: its class is reached through the global dispatcher a fetch has set up).
 */
async function undiciAgent(origin: string, options: { connections: number; pipelining: number }): Promise<Dispatcher> {
  const name = 'undici';
  try {
    const mod = (await import(name)) as { Agent: new (o: object) => Dispatcher };
    return new mod.Agent(options);
  } catch {
    await (await fetch(origin)).arrayBuffer();
    const global = (globalThis as Record<symbol, unknown>)[Symbol.for('undici.globalDispatcher.1')];
    if (global === undefined || global === null) throw new Error("no undici: install the 'undici' package");
    return new (global.constructor as new (o: object) => Dispatcher)(options);
  }
}

type Caller = { call(): Promise<unknown>; close(): Promise<void> };

async function httpCaller(t: GatewayTarget): Promise<Caller> {
  const origin = `http://127.0.0.1:${t.port}`;
  const headers = { 'content-type': 'application/json' };
  // One call through fetch first: the answer must be the Item, exactly, or the run measures errors.
  const first = await fetch(origin + echoPath, { method: 'POST', body: benchRequestJson, headers });
  const text = await first.text();
  if (first.status !== 200 || text !== JSON.stringify(benchItemJson)) throw new Error(`echo over HTTP answered ${first.status}: ${text}`);
  const agent = await undiciAgent(origin, { connections: t.connections ?? 1, pipelining: t.pipelining ?? 1 });
  const options: Dispatcher.DispatchOptions = { origin, path: echoPath, method: 'POST', headers, body: benchRequestJson };
  // dispatch() with a bare handler rather than request(): no body stream per call, so that the client
  // costs less than the servers it compares (a client that saturates first would hide their difference).
  const call = () =>
    new Promise<string>((resolve, reject) => {
      let status = 0;
      const chunks: Buffer[] = [];
      agent.dispatch(options, {
        onConnect: () => {},
        onHeaders: (statusCode) => {
          status = statusCode;
          return true;
        },
        onData: (chunk) => {
          chunks.push(chunk);
          return true;
        },
        onComplete: () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if (status === 200) resolve(body);
          else reject(new Error(`HTTP ${status}: ${body}`));
        },
        onError: reject,
      });
    });
  return { call, close: () => agent.close() };
}

async function avrpcCaller(t: GatewayTarget): Promise<Caller> {
  const protocol = await loadProtocol(repoFile('protocol/echo.avdl'));
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${t.port}`] });
  const request = { item: benchItem };
  await client.call('echo', request);
  return { call: () => client.call('echo', request), close: () => client.close() };
}

/** One target's running totals. */
class Side {
  calls = 0;
  errors = 0;
  firstError: string | undefined;
  ms = 0;
  cpuUs = 0;
  serverCpuUs = 0;
  readonly hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });

  constructor(readonly caller: Caller) {}

  /** `inFlight` closed-loop workers until `ms` have passed, then the drain; returns the slice's calls/s and calls. */
  async slice(inFlight: number, ms: number, record: boolean): Promise<{ rate: number; calls: number }> {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const end = t0 + ms;
    let calls = 0;
    const worker = async (): Promise<void> => {
      while (performance.now() < end) {
        const s = performance.now();
        try {
          await this.caller.call();
        } catch (err) {
          if (record) this.errors++;
          this.firstError ??= err instanceof Error ? err.message : String(err);
          continue;
        }
        calls++;
        if (record) this.hist.recordValue(Math.max(1, Math.round((performance.now() - s) * 1000)));
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    const elapsed = performance.now() - t0;
    if (record) {
      const cpu = process.cpuUsage(cpu0);
      this.cpuUs += cpu.user + cpu.system;
      this.calls += calls;
      this.ms += elapsed;
    }
    return { rate: (calls * 1000) / elapsed, calls };
  }

  result(): SideResult {
    const r: SideResult = {
      calls: this.calls,
      errors: this.errors,
      seconds: this.ms / 1000,
      callsPerSec: (this.calls * 1000) / Math.max(1, this.ms),
      p50Us: this.hist.getValueAtPercentile(50),
      p99Us: this.hist.getValueAtPercentile(99),
      cpuUs: this.cpuUs,
      serverCpuUs: this.serverCpuUs,
    };
    if (this.firstError !== undefined) r.firstError = this.firstError;
    return r;
  }
}

async function runClient(job: GatewayClientJob): Promise<void> {
  const sides = await Promise.all(job.targets.map(async (t) => new Side(t.kind === 'http' ? await httpCaller(t) : await avrpcCaller(t))));
  const [a, b] = sides as [Side, Side];
  const warmSlices = Math.max(1, Math.round(job.warmupMs / job.sliceMs / 2));
  for (let i = 0; i < warmSlices; i++) for (const s of [a, b]) await s.slice(job.inFlight, job.sliceMs, false);
  const pairRatios: number[] = [];
  const pairCpuRatios: number[] = [];
  let before = await sample();
  if (job.concurrent === true) {
    // Both at once, so both meet exactly the same machine; which starts first alternates.
    for (let i = 0; i < job.slices; i++) {
      const [first, second] = i % 2 === 0 ? [a, b] : [b, a];
      const [r1, r2] = await Promise.all([first.slice(job.inFlight, job.sliceMs, true), second.slice(job.inFlight, job.sliceMs, true)]);
      const [ra, rb] = i % 2 === 0 ? [r1, r2] : [r2, r1];
      const after = await sample();
      const [ca, cb] = [after[0] - before[0], after[1] - before[1]];
      a.serverCpuUs += ca;
      b.serverCpuUs += cb;
      before = after;
      pairRatios.push(ra.rate / rb.rate);
      pairCpuRatios.push(ca / Math.max(1, ra.calls) / (cb / Math.max(1, rb.calls)));
    }
  } else {
    for (let i = 0; i < job.slices; i++) {
      // Alternating order within the pairs: neither side always runs right after the other's slice.
      const [i1, i2] = i % 2 === 0 ? [0, 1] : [1, 0];
      const r1 = await sides[i1]!.slice(job.inFlight, job.sliceMs, true);
      const mid = await sample();
      const r2 = await sides[i2]!.slice(job.inFlight, job.sliceMs, true);
      const after = await sample();
      const cpu1 = mid[i1]! - before[i1]!;
      const cpu2 = after[i2]! - mid[i2]!;
      sides[i1]!.serverCpuUs += cpu1;
      sides[i2]!.serverCpuUs += cpu2;
      before = after;
      const [ra, rb] = i1 === 0 ? [r1, r2] : [r2, r1];
      const [ca, cb] = i1 === 0 ? [cpu1, cpu2] : [cpu2, cpu1];
      pairRatios.push(ra.rate / rb.rate);
      pairCpuRatios.push(ca / Math.max(1, ra.calls) / (cb / Math.max(1, rb.calls)));
    }
  }
  await Promise.all([a.caller.close(), b.caller.close()]);
  process.send!({ sides: [a.result(), b.result()], pairRatios, pairCpuRatios } satisfies GatewayClientResult, () => process.exit(0));
}

/** Both servers' process CPU now, in µs, as the parent relays it. */
function sample(): Promise<[number, number]> {
  return new Promise((resolve) => {
    process.once('message', (m: { cpu: [number, number] }) => resolve(m.cpu));
    process.send!({ sample: true });
  });
}

/**
 * `count '<{ target, calls, inFlight }>'`: exactly `calls` calls (after one), `inFlight` at a time,
 * then `{ done: true }` to the parent: the load bench/http-gateway-count.ts counts a server's
 * instructions under (the number of calls, not time, bounds it).
 */
async function runCount(job: { target: GatewayTarget; calls: number; inFlight: number }): Promise<void> {
  const caller = job.target.kind === 'http' ? await httpCaller(job.target) : await avrpcCaller(job.target);
  let left = job.calls;
  const worker = async (): Promise<void> => {
    while (left > 0) {
      left--;
      await caller.call();
    }
  };
  await Promise.all(Array.from({ length: job.inFlight }, worker));
  await caller.close();
  process.send!({ done: true }, () => process.exit(0));
}

const [role, arg] = process.argv.slice(2);
if (role === 'server') await serve(arg as GatewayServerKind);
else if (role === 'client') await runClient(JSON.parse(arg!) as GatewayClientJob);
else if (role === 'count') await runCount(JSON.parse(arg!) as { target: GatewayTarget; calls: number; inFlight: number });
else throw new Error(`usage: http-gateway-child.js server <kind> | client <job> | count <job>`);
