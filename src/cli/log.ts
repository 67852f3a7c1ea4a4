/**
 * The logger of `avrpc serve` (`--log-level`, `--log-format`): a pino-compatible {@link Logger} that
 * writes one line per entry to stderr, so stdout keeps the lines scripts read (`listening host:port`).
 * `json` is pino's shape (numeric `level`, `time` in epoch ms, `pid`, `hostname`, the fields, `msg`),
 * so pino-pretty and log shippers read it; `text` is for people.
 */
import { hostname } from 'node:os';
import { Code, codeName } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { LogLevel } from '../observability/log-policy.js';
import type { Logger, RpcObserver } from '../observability/observer.js';

/** The `--log-level` choices, least severe first. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const satisfies readonly LogLevel[];
/** The `--log-format` choices. */
export const LOG_FORMATS = ['text', 'json'] as const;
/** A `--log-format` choice. */
export type LogFormat = (typeof LOG_FORMATS)[number];

/** pino's numbers for the levels. */
const PINO_LEVEL: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50 };

/** Options of {@link createCliLogger}. */
export interface CliLoggerOptions {
  /** Entries below this level are dropped. */
  level: LogLevel;
  format: LogFormat;
  /** Where a line goes (a newline is added). Default: stderr. */
  write?: (line: string) => void;
}

/** A logger writing entries at `level` and above as lines of `format`. */
export function createCliLogger(options: CliLoggerOptions): Logger {
  const min = PINO_LEVEL[options.level];
  const write = options.write ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const base = { pid: process.pid, hostname: hostname() };
  const at =
    (level: LogLevel) =>
    (obj: object, msg?: string): void => {
      if (PINO_LEVEL[level] < min) return;
      const time = Date.now();
      write(options.format === 'json' ? jsonLine(level, time, base, obj, msg) : textLine(level, time, obj, msg));
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function jsonLine(level: LogLevel, time: number, base: object, obj: object, msg: string | undefined): string {
  const entry: Record<string, unknown> = { level: PINO_LEVEL[level], time, ...base };
  for (const [k, v] of Object.entries(obj)) entry[k] = k === 'peer' ? peerOf(v) : v;
  if (msg !== undefined) entry.msg = msg;
  return JSON.stringify(entry, jsonSafe());
}

/** A JSON replacer: errors as pino serializes them (with their cause), bigints as strings, cycles cut. */
function jsonSafe(): (this: unknown, key: string, value: unknown) => unknown {
  const seen = new WeakSet<object>();
  return function (_key, value) {
    if (typeof value === 'bigint') return value.toString();
    if (value === null || typeof value !== 'object') return value;
    if (value instanceof Error) return serializeError(value, new Set());
    if (ArrayBuffer.isView(value)) return `<${value.byteLength} bytes>`;
    if (seen.has(value)) return '[Circular]';
    seen.add(value);
    return value;
  };
}

/** pino's error shape: `type`, `message`, `stack`, plus avrpc's `code` name and the `cause` chain. */
function serializeError(err: Error, seen: Set<Error>): Record<string, unknown> {
  seen.add(err);
  const out: Record<string, unknown> = { type: err.name, message: err.message };
  if (err instanceof RpcError) out.code = err.codeName;
  out.stack = err.stack;
  const cause: unknown = err.cause;
  if (cause instanceof Error && !seen.has(cause)) out.cause = serializeError(cause, seen);
  else if (cause !== undefined && !(cause instanceof Error)) out.cause = String(cause);
  return out;
}

/** `2026-01-02T03:04:05.678Z INFO  msg key=value ...`; an error entry adds its error's stack and causes below. */
function textLine(level: LogLevel, time: number, obj: object, msg: string | undefined): string {
  let line = `${new Date(time).toISOString()} ${level.toUpperCase().padEnd(5)} ${msg ?? ''}`;
  let err: unknown;
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    if (k === 'err') {
      err = v;
      line += ` err=${quoted(errorSummary(v))}`;
    } else {
      line += ` ${k}=${k === 'peer' ? String(peerOf(v)) : text(v)}`;
    }
  }
  // The stack is for failures someone must look at, not for what the server survives routinely.
  if (level === 'error' && err instanceof Error) line += `\n${indent(stackWithCauses(err))}`;
  return line;
}

function errorSummary(err: unknown): string {
  if (err instanceof RpcError) return `${err.codeName}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** The error's stack, then each cause's as `caused by: ...`. */
function stackWithCauses(err: Error): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e !== undefined && !seen.has(e)) {
    seen.add(e);
    if (e instanceof Error) {
      parts.push(`${parts.length === 0 ? '' : 'caused by: '}${e.stack ?? errorSummary(e)}`);
      e = e.cause;
    } else {
      parts.push(`caused by: ${String(e)}`);
      break;
    }
  }
  return parts.join('\n');
}

function indent(s: string): string {
  return s.replace(/^/gm, '    ');
}

/** A value in a text line: a plain word as it is, anything else as JSON. */
function text(v: unknown): string {
  if (typeof v === 'string') return quoted(v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  try {
    return JSON.stringify(v, jsonSafe()) ?? String(v);
  } catch {
    return String(v);
  }
}

function quoted(s: string): string {
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s);
}

/** A server's `peer` ({@link PeerInfo}) as `host:port`; anything else as it is. */
function peerOf(v: unknown): unknown {
  if (v !== null && typeof v === 'object' && 'address' in v && 'port' in v) return `${String(v.address)}:${String(v.port)}`;
  return v;
}

/**
 * A call log at `debug` (`--log-level debug`): one entry per call that ended, with its code, duration,
 * peer and sizes, and a failure's reason in words (a handler's crash is logged at `error` already).
 */
export function callLogObserver(logger: Logger): RpcObserver {
  return {
    callEnded(message, code, durationMs, info) {
      const entry: Record<string, unknown> = {
        message,
        code: codeName(code),
        durationMs: Math.round(durationMs * 1000) / 1000,
        peer: info.peer,
        requestBytes: info.requestBytes,
        responseBytes: info.responseBytes,
      };
      if (info.kind !== 'unary') entry.kind = info.kind;
      if (code !== Code.OK && info.error !== undefined) entry.reason = errorSummary(info.error);
      logger.debug(entry, 'call');
    },
  };
}
