/**
 * Stream elements printed as NDJSON: each value as Avro JSON on one line, written as it arrives (one
 * `write` per line, so a reader of the pipe sees it at once), waiting for the pipe to drain before
 * the next one so that a slow reader slows the stream (credit) instead of filling memory.
 */
import type { Writable } from 'node:stream';
import type avro from 'avsc';
import { toAvroJson } from '../codec/avro-json.js';
import type { BytesMode } from '../codec/json-input.js';

/** The reader of our output went away (`avrpc call ... | head -1`): not a failure of the call. */
export class OutputClosed extends Error {
  constructor(readonly cause: Error) {
    super(`output closed: ${cause.message}`);
  }
}

/** Writes values of one Avro type as NDJSON to a stream. */
export class NdjsonWriter {
  private failure: Error | undefined;
  private waiting: { resolve: () => void; reject: (err: Error) => void } | undefined;

  constructor(
    private readonly out: Writable,
    private readonly type: avro.Type,
    private readonly bytes: BytesMode = 'latin1',
  ) {
    const onError = (err: Error): void => {
      this.failure = err;
      this.waiting?.reject(err);
    };
    const onDrain = (): void => this.waiting?.resolve();
    out.on('error', onError);
    out.on('drain', onDrain);
    this.detach = () => {
      out.off('error', onError);
      out.off('drain', onDrain);
    };
  }

  /** Stops listening to the stream (its later errors are no longer ours). */
  readonly detach: () => void;

  /**
   * Writes `value` as one line; resolves when the stream can take more. Rejects with OutputClosed
   * when the reader is gone (EPIPE), or with the stream's error.
   */
  async write(value: unknown): Promise<void> {
    return this.writeLine(toAvroJson(this.type, value, 0, this.bytes));
  }

  /** Writes `text` (one line of JSON, no newline) and its newline. */
  async writeLine(text: string): Promise<void> {
    if (this.failure !== undefined) throw wrap(this.failure);
    if (this.out.write(`${text}\n`)) return;
    await new Promise<void>((resolve, reject) => {
      this.waiting = { resolve, reject };
    }).then(
      () => (this.waiting = undefined),
      (err: Error) => {
        this.waiting = undefined;
        throw wrap(err);
      },
    );
  }
}

function wrap(err: Error): Error {
  return (err as NodeJS.ErrnoException).code === 'EPIPE' ? new OutputClosed(err) : err;
}
