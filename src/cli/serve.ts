/**
 * `avrpc serve <protocol.avdl> <handlers.js>`: serves a protocol with the handlers of an ES module,
 * optionally registered in etcd and with Prometheus metrics on `/metrics`. Prints `listening
 * host:port` (and `metrics http://host:port/metrics`, and `grpc host:port` with --grpc-port) once ready;
 * SIGTERM/SIGINT close gracefully.
 */
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, Option } from 'commander';
import { loadProtocol, type Protocol } from '../codec/protocol.js';
import { createEtcdRegistry } from '../discovery/etcd-registry.js';
import type { Registry } from '../discovery/registry.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { createPrometheusObserver, type PrometheusObserver } from '../observability/prometheus.js';
import type { ServerTlsOptions } from '../security/tls.js';
import { createServer, type ListenOptions } from '../server/server.js';
import type { Handler, ServerOptions } from '../server/server-options.js';
import { LONGS_MODES, type LongsMode } from '../codec/longs.js';
import type { LogLevel } from '../observability/log-policy.js';
import { combineObservers, type Logger, type RpcObserver } from '../observability/observer.js';
import { LOG_FORMATS, LOG_LEVELS, callLogObserver, createCliLogger, type LogFormat } from './log.js';
import { TOKEN_ENV, duration, exitStatusFor, positiveInt, reportFailure, resolveToken, usageError } from './options.js';
import { isThreadsPrimary, isThreadsWorker, serveThreadsPrimary, serveThreadsWorker, shareThreadsMetrics } from './serve-threads.js';

interface ServeFlags {
  host: string;
  port: number;
  longs: LongsMode;
  registry: 'static' | 'etcd';
  etcdEndpoints: string;
  service?: string;
  serviceVersion: string;
  advertiseHost?: string;
  metricsPort?: number;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  token?: string;
  tokenFile?: string;
  grace: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  threads: number;
  http?: boolean;
  httpPort?: number;
  grpcPort?: number;
}

/** The `serve` command. */
export function serveCommand(): Command {
  return new Command('serve')
    .description('serve a protocol with the handlers exported by an ES module')
    .argument('<protocol>', 'protocol file (.avdl or .avpr)')
    .argument('<handlers>', 'ES module: default export { message(request, ctx) {...} } (or a function returning it), or named exports')
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--port <port>', 'TCP port (0 picks a free one)', portNumber, 0)
    .addOption(new Option('--longs <kind>', 'how handlers see Avro longs (string: decimal strings)').choices(LONGS_MODES).default('number'))
    .addOption(
      new Option('--registry <kind>', 'static: none (clients dial host:port); etcd: register --service')
        .choices(['static', 'etcd'])
        .default('static'),
    )
    .option('--etcd-endpoints <urls>', 'etcd URLs, comma separated', 'http://127.0.0.1:2379')
    .option('--service <name>', 'service name to register (required with --registry etcd)')
    .option('--service-version <version>', 'semver version to register', '0.0.0')
    .option('--advertise-host <host>', 'address clients should dial (default: the bound address)')
    .option('--metrics-port <port>', 'serve Prometheus /metrics on 127.0.0.1:<port> (0 picks one)', portNumber)
    .option('--tls-cert <file>', 'PEM certificate chain (serve TLS)')
    .option('--tls-key <file>', 'PEM private key')
    .option('--tls-ca <file>', 'PEM CA for client certificates (requires mTLS)')
    .option(
      '--token <token>',
      `accept only connections whose handshake carries this token (visible in ps: prefer ${TOKEN_ENV} or --token-file)`,
    )
    .option('--token-file <path>', 'read the token required from this file (a trailing newline is ignored)')
    .option('--grace <duration>', 'time running calls get to finish on SIGTERM/SIGINT', duration, 5000)
    .addOption(new Option('--log-level <level>', 'least severe log entries written (to stderr)').choices(LOG_LEVELS).default('info'))
    .addOption(new Option('--log-format <format>', 'text, or json: one pino-style object per line').choices(LOG_FORMATS).default('text'))
    .option('--http', 'answer HTTP/JSON on the avrpc port too (POST /<protocol>/<message>, GET /healthz, /readyz)')
    .option('--http-port <port>', 'answer HTTP/JSON on this port instead (0 picks one)', portNumber)
    .option('--threads <n>', 'event loops: N worker processes (node:cluster) accepting on the one port', positiveInt, 1)
    .option('--grpc-port <port>', 'also serve gRPC clients on <port> of --host (needs @grpc/grpc-js; 0 picks one)', portNumber)
    .action(async (protocolFile: string, handlersFile: string, flags: ServeFlags) => {
      // Each worker would bind its own gRPC server to the one port: refused until that is shared.
      if (flags.grpcPort !== undefined && flags.threads > 1)
        return serveFailed(usageError('--grpc-port cannot be combined with --threads'), flags);
      const run = isThreadsPrimary(flags) ? serveThreadsPrimary(flags) : serve(protocolFile, handlersFile, flags);
      await run.catch((err: unknown) => serveFailed(err, flags));
    });
}

async function serve(protocolFile: string, handlersFile: string, flags: ServeFlags): Promise<void> {
  // First: a token source that is wrong should fail before anything loads or listens.
  const token = resolveToken(flags);
  const logger = createCliLogger({ level: flags.logLevel, format: flags.logFormat });
  const protocol = await loadProtocol(protocolFile, { longs: flags.longs });
  const handlers = await loadHandlers(handlersFile, protocol, logger);
  let observer: PrometheusObserver | undefined;
  let metrics: HttpServer | undefined;
  if (flags.metricsPort !== undefined) {
    observer = await metricsObserver();
    metrics = isThreadsWorker() ? shareThreadsMetrics(observer.register) : await serveMetrics(observer, flags.metricsPort);
  }
  const options: ServerOptions = {
    protocol,
    handlers,
    logger,
    ...serveObserver(observer, flags.logLevel === 'debug' ? callLogObserver(logger) : undefined),
    ...(serverTls(flags) ?? {}),
    ...(token === undefined ? {} : { authenticate: checkToken(token) }),
    ...(flags.httpPort !== undefined ? { http: { port: flags.httpPort } } : flags.http === true ? { http: {} } : {}),
    ...(flags.grpcPort === undefined ? {} : { grpc: { port: flags.grpcPort } }),
  };
  const server = createServer(options);
  if (isThreadsWorker()) return serveThreadsWorker(server, flags);
  let registry: Registry | undefined;
  const listen: ListenOptions = { host: flags.host, port: flags.port };
  if (flags.registry === 'etcd') {
    if (flags.service === undefined) throw usageError('--registry etcd needs --service <name>');
    registry = createEtcdRegistry({ hosts: flags.etcdEndpoints.split(',') });
    listen.register = {
      registry,
      name: flags.service,
      version: flags.serviceVersion,
      ...(flags.advertiseHost === undefined ? {} : { advertiseHost: flags.advertiseHost }),
    };
  }
  const bound = await server.listen(listen);
  const stop = (signal: NodeJS.Signals): void => {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    const draining = performance.now();
    logger.info({ signal, graceMs: flags.grace }, 'draining: no new calls, running calls get the grace period');
    void server
      .close({ graceMs: flags.grace })
      .then(() => registry?.close())
      .then(() => new Promise<void>((done) => (metrics === undefined ? done() : metrics.close(() => done()))))
      .then(
        () => logger.info({ durationMs: Math.round(performance.now() - draining) }, 'closed'),
        (err: unknown) => {
          logger.error({ err }, 'close failed');
          reportFailure(err);
        },
      )
      .finally(() => process.stdout.write('closed\n'));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Only now: a SIGTERM sent as soon as this line is read must find its handler installed.
  // Before `listening`: whoever waits for that line has the gRPC address already.
  if (bound.grpc !== undefined) process.stdout.write(`grpc ${bound.host}:${bound.grpc.port}\n`);
  process.stdout.write(`listening ${bound.host}:${bound.port}\n`);
  if (bound.http !== undefined) process.stdout.write(`http http://${bound.host}:${bound.http.port}\n`);
  logStartup(logger, protocol, `${bound.host}:${bound.port}`, flags, metrics);
}

/**
 * A serve that could not start: `CODE: message` on stderr as every command prints it, or with
 * `--log-format json` as one JSON entry (so a log pipeline reads every line), with the same exit status.
 */
function serveFailed(err: unknown, flags: ServeFlags): void {
  if (flags.logFormat !== 'json') return reportFailure(err);
  const e = RpcError.from(err, Code.UNKNOWN);
  createCliLogger({ level: 'error', format: 'json' }).error({ err: e }, `${e.codeName}: ${e.message}`);
  process.exitCode = exitStatusFor(e.code);
}

/** The handlers of a module: its default export (an object, or a function of the protocol returning one), else its named function exports. */
async function loadHandlers(file: string, protocol: Protocol, logger: Logger): Promise<Record<string, Handler>> {
  const mod = (await import(pathToFileURL(resolve(file)).href)) as Record<string, unknown>;
  let found: unknown = mod.default ?? mod;
  if (typeof found === 'function') found = await (found as (p: Protocol) => unknown)(protocol);
  if (found === null || typeof found !== 'object') throw new RpcError(Code.INVALID_ARGUMENT, `${file} exports no handlers object`);
  const handlers: Record<string, Handler> = {};
  for (const [name, fn] of Object.entries(found)) if (typeof fn === 'function') handlers[name] = fn as Handler;
  const missing = protocol.messages.filter((m) => handlers[m.name] === undefined).map((m) => m.name);
  if (missing.length > 0) logger.warn({ messages: missing }, `no handler for ${missing.join(', ')}: calls answer UNIMPLEMENTED`);
  return handlers;
}

/** The Prometheus observer, on a registry of its own that also has prom-client's process metrics. */
async function metricsObserver(): Promise<PrometheusObserver> {
  const prom = await import('prom-client').catch(() => undefined);
  // Without prom-client, createPrometheusObserver says what to install.
  if (prom === undefined) return createPrometheusObserver({ side: 'server' });
  const register = new prom.Registry();
  prom.collectDefaultMetrics({ register });
  return createPrometheusObserver({ side: 'server', register });
}

/** The server's `observer` option: metrics, the call log (at debug), both or none. */
function serveObserver(metrics: RpcObserver | undefined, calls: RpcObserver | undefined): { observer?: RpcObserver } {
  const all = [metrics, calls].filter((o): o is RpcObserver => o !== undefined);
  return all.length === 0 ? {} : { observer: combineObservers(...all) };
}

/** The startup entry: where, what, and how. */
function logStartup(logger: Logger, protocol: Protocol, address: string, flags: ServeFlags, metrics: HttpServer | undefined): void {
  const port = (metrics?.address() as { port: number } | null | undefined)?.port;
  logger.info(
    {
      address,
      protocol: protocol.name,
      messages: protocol.messages.length,
      tls: flags.tlsCert !== undefined,
      ...(port === undefined ? {} : { metrics: `http://127.0.0.1:${port}/metrics` }),
      ...(flags.registry === 'etcd' ? { service: flags.service, version: flags.serviceVersion } : {}),
    },
    'listening',
  );
}

/** `/metrics` over node:http on loopback; prints where. */
async function serveMetrics(observer: PrometheusObserver, port: number): Promise<HttpServer> {
  const http = createHttpServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end('not found\n');
    observer.register.metrics().then(
      (text) => res.writeHead(200, { 'content-type': observer.register.contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((done, fail) => {
    http.once('error', fail);
    http.listen(port, '127.0.0.1', () => done());
  });
  const addr = http.address() as { port: number };
  process.stdout.write(`metrics http://127.0.0.1:${addr.port}/metrics\n`);
  return http;
}

function serverTls(flags: ServeFlags): { tls: ServerTlsOptions } | undefined {
  if (flags.tlsCert === undefined && flags.tlsKey === undefined) return undefined;
  if (flags.tlsCert === undefined || flags.tlsKey === undefined) throw usageError('--tls-cert and --tls-key go together');
  const tls: ServerTlsOptions = { cert: readFileSync(flags.tlsCert), key: readFileSync(flags.tlsKey) };
  if (flags.tlsCa !== undefined) Object.assign(tls, { ca: readFileSync(flags.tlsCa), requestCert: true });
  return { tls };
}

/** Accepts a connection only with the expected token (compared in constant time). */
function checkToken(expected: string): NonNullable<ServerOptions['authenticate']> {
  const want = Buffer.from(expected);
  return ({ token }) => {
    const got = Buffer.from(token ?? '');
    if (got.length !== want.length || !timingSafeEqual(got, want)) throw new RpcError(Code.UNAUTHENTICATED, 'bad or missing token');
    return 'token';
  };
}

function portNumber(value: string): number {
  if (value === '0') return 0;
  return positiveInt(value);
}
