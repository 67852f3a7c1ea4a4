/**
 * Memory over time for issue 10's slow-consumer benchmark: a sampler each process runs over its window,
 * and the summary (start, max, end) the report shows per process. Also the producer's lead: how far
 * the server's produced count ran ahead of the client's consumed count, from the `process.hrtime`
 * (CLOCK_MONOTONIC, one clock for every process of the machine) of each produced and each consumed
 * element.
 */

/**
 * How often a process samples its memory, in ms. Each sample first runs a full GC when the process has
 * `--expose-gc` (the slow-consumer children do): what is left is what the process holds, not garbage
 * (every 16 KiB element read is a fresh buffer, which V8 frees only when external memory has grown
 * tens of MiB).
 */
export const SAMPLE_MS = 100;
/** Samples kept at most (10 minutes' worth): the sampler stays bounded whatever happens. */
const MAX_SAMPLES = 30_000;

/** One reading of `process.memoryUsage()`, in bytes, with its time in ms since the sampler started. */
export interface MemorySample {
  atMs: number;
  rss: number;
  heapUsed: number;
  arrayBuffers: number;
}

/** Samples this process's memory every {@link SAMPLE_MS} ms from {@link MemorySampler.start} until `stop()`. */
export class MemorySampler {
  private readonly samples: MemorySample[] = [];
  private readonly started = performance.now();
  private readonly timer: NodeJS.Timeout;

  private constructor() {
    this.take();
    this.timer = setInterval(() => this.take(), SAMPLE_MS);
  }

  /**
   * Starts sampling once what came before has settled: a GC, a pause, and another GC before the first
   * reading, since the buffers a GC frees leave `arrayBuffers` only as the sweeper gets to them.
   */
  static async start(): Promise<MemorySampler> {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc !== undefined) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
    }
    return new MemorySampler();
  }

  private take(): void {
    if (this.samples.length >= MAX_SAMPLES) return;
    (globalThis as { gc?: () => void }).gc?.();
    const m = process.memoryUsage();
    this.samples.push({ atMs: performance.now() - this.started, rss: m.rss, heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers });
  }

  /** Stops sampling (after one last reading) and returns the samples in time order. */
  stop(): MemorySample[] {
    clearInterval(this.timer);
    this.take();
    return this.samples;
  }
}

/** One measure of memory over a window: its first, highest and last reading, in bytes. */
export interface Span {
  start: number;
  max: number;
  end: number;
}

/** Start, max and end of RSS and of heapUsed + arrayBuffers (the JS-visible memory) of one process. */
export interface MemorySummary {
  rss: Span;
  heap: Span;
  samples: number;
}

/** Summarizes `samples` (at least one). */
export function summarize(samples: MemorySample[]): MemorySummary {
  const span = (f: (s: MemorySample) => number): Span => ({
    start: f(samples[0]!),
    max: Math.max(...samples.map(f)),
    end: f(samples[samples.length - 1]!),
  });
  return { rss: span((s) => s.rss), heap: span((s) => s.heapUsed + s.arrayBuffers), samples: samples.length };
}

/**
 * The most elements the producer had handed over beyond what the consumer had taken: for the k-th
 * element produced (at `producedAtUs[k - 1]`), k minus the elements consumed at or before that time.
 * Both arrays are `process.hrtime` in µs, in order.
 */
export function maxLead(producedAtUs: number[], consumedAtUs: number[]): number {
  let lead = 0;
  let consumed = 0;
  for (let k = 1; k <= producedAtUs.length; k++) {
    const t = producedAtUs[k - 1]!;
    while (consumed < consumedAtUs.length && consumedAtUs[consumed]! <= t) consumed++;
    lead = Math.max(lead, k - consumed);
  }
  return lead;
}
