/**
 * A client process of issue 10's stream benchmarks: `node dist/bench/stream-client-child.js '<StreamJob
 * as JSON>'`. A job is a sequence of units, each a bounded number of elements: one server stream of N
 * Items (`stream`: avrpc `watch`, the floor, grpc-js `Watch`), one bidi `chat` of N Items with
 * `inFlight` of them unanswered at most (`bidi`), N unary `echo` calls with `inFlight` in flight
 * (`unary`), or one `watch` of N Items read with a sleep per element (`slow`). Units run back to back:
 * warm-up for `warmupMs`, then the measured window of whole units for at least `measureMs`.
 *
 * The window's edges fall between units, when nothing is in flight: the client sends `{ edge: 'start' }`
 * and waits for `'go'` (the parent has the servers read their CPU first), reads its own CPU, runs the
 * units, reads its CPU and sends `{ edge: 'end' }`, then the {@link StreamResult}.
 */
import { once } from 'node:events';
import { createClient, loadProtocol } from '../src/index.js';
import { benchItem, repoFile, streamWindow } from './payload.js';
import { MemorySampler, type MemorySample } from './stream-memory.js';

/** Which system a stream benchmark runs. */
export type StreamSystem = 'avrpc' | 'floor' | 'grpc';

/** What the parent asks a stream client process to do. */
export interface StreamJob {
  kind: 'stream' | 'bidi' | 'unary' | 'slow';
  system: StreamSystem;
  port: number;
  /** Elements (or calls) per unit. */
  elements: number;
  /** `bidi` and `unary`: elements or calls unanswered at most. */
  inFlight: number;
  /** `slow`: the consumer's sleep per element, in ms. */
  sleepMs: number;
  /** `slow`: blob bytes of the server's Items (the floor checks each element's length). */
  blobBytes: number;
  warmupMs: number;
  measureMs: number;
}

/** What a stream client process sends at the end. */
export interface StreamResult {
  /** Elements (or calls) completed in the measured window. */
  elements: number;
  units: number;
  seconds: number;
  /** CPU of this process (user + system) over the measured window, in µs. */
  cpuUs: number;
  /** `slow`: memory samples over the window, and `process.hrtime` in µs as each element was consumed. */
  memory: MemorySample[];
  consumedAtUs: number[];
}

/** Bounds every unit: a stuck system fails the run instead of hanging it. */
const UNIT_TIMEOUT_MS = 120_000;
/** Units at most per window, whatever the clock says. */
const MAX_UNITS = 10_000;

const job = JSON.parse(process.argv[2]!) as StreamJob;
const protocol = await loadProtocol(repoFile('protocol/stream.avdl'));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const consumedAtUs: number[] = [];
let logConsumed = false;

/** Connects to the system under test; `unit(paced)` runs one unit (`paced`: with the slow job's sleep per element). */
async function connectSystem(): Promise<{ unit(paced: boolean): Promise<number>; close(): unknown }> {
  const n = job.elements;
  if (job.system === 'floor') {
    const bytes = protocol.message('watch')!.response.toBuffer({ ...benchItem, blob: Buffer.alloc(job.blobBytes) }).length;
    const c = await (await import('./stream-floor.js')).floorClient(job.port, bytes);
    return { unit: () => c.stream(n, UNIT_TIMEOUT_MS), close: () => c.close() };
  }
  if (job.system === 'grpc') {
    const c = await (await import('./grpc-stream.js')).grpcStreamClient(protocol, job.port);
    return { unit: () => c.stream(n, UNIT_TIMEOUT_MS), close: () => c.close() };
  }
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${job.port}`], ...streamWindow() });
  const item = { item: benchItem };
  await client.call('echo', item);
  const options = { timeoutMs: UNIT_TIMEOUT_MS };
  const watch = async (sleepMs: number): Promise<number> => {
    let got = 0;
    for await (const _ of client.serverStream('watch', { from: 0, count: n, failAfter: -1 }, options)) {
      got++;
      if (logConsumed) consumedAtUs.push(Number(process.hrtime.bigint() / 1000n));
      if (sleepMs > 0) await sleep(sleepMs);
    }
    return got;
  };
  const chat = async (): Promise<number> => {
    let sent = 0;
    let received = 0;
    let wake: (() => void) | undefined;
    // Yields while fewer than inFlight are unanswered, else waits for the next answer.
    async function* requests(): AsyncGenerator<object> {
      while (sent < n) {
        if (sent - received >= job.inFlight) await new Promise<void>((resolve) => (wake = resolve));
        else {
          sent++;
          yield item;
        }
      }
    }
    for await (const _ of client.bidiStream('chat', requests(), options)) {
      received++;
      const w = wake;
      wake = undefined;
      w?.();
    }
    return received;
  };
  const unary = async (): Promise<number> => {
    let started = 0;
    let done = 0;
    const worker = async (): Promise<void> => {
      while (started < n) {
        started++;
        await client.call('echo', item, options);
        done++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(job.inFlight, n) }, worker));
    return done;
  };
  const unit = job.kind === 'bidi' ? chat : job.kind === 'unary' ? unary : (paced: boolean) => watch(paced ? job.sleepMs : 0);
  return { unit, close: () => client.close() };
}

const connected = await connectSystem();
/** A unit that delivered fewer (or more) than its elements fails the run: the rate would count the wrong thing. */
const system = {
  async unit(paced: boolean): Promise<number> {
    const got = await connected.unit(paced);
    if (got !== job.elements) throw new Error(`${job.system} ${job.kind}: ${got} elements of ${job.elements}`);
    return got;
  },
  close: () => connected.close(),
};
// Warm-up: whole units, at least one; the slow job's read at full speed.
const warmUntil = performance.now() + job.warmupMs;
for (let i = 0; i < MAX_UNITS && (i === 0 || performance.now() < warmUntil); i++) await system.unit(false);

const go = once(process, 'message');
process.send!({ edge: 'start' });
await go;
const sampler = job.kind === 'slow' ? await MemorySampler.start() : undefined;
logConsumed = job.kind === 'slow';
const cpuStart = process.cpuUsage();
const started = performance.now();
let elements = 0;
let units = 0;
const maxUnits = job.kind === 'slow' ? 1 : MAX_UNITS;
while (units < maxUnits && (units === 0 || performance.now() - started < job.measureMs)) {
  elements += await system.unit(job.kind === 'slow');
  units++;
}
const cpu = process.cpuUsage(cpuStart);
const seconds = (performance.now() - started) / 1000;
logConsumed = false;
const memory = sampler?.stop() ?? [];
process.send!({ edge: 'end' });
await system.close();
const result: StreamResult = { elements, units, seconds, cpuUs: cpu.user + cpu.system, memory, consumedAtUs };
process.send!(result, () => process.exit(0));
