/**
 * The files of the consumer projects test/package/consumer.test.ts installs the packed tarball into:
 * one ESM project (`"type": "module"`) and one CommonJS project, each with its own protocol, a
 * server and a client in one script, a worker-thread handler module, and a strict tsconfig.
 *
 * Both are typed by the API type of their protocol (`createClient<GreeterApi>`), with a file of
 * `@ts-expect-error` lines that must each be an error and a file with one plain error that must fail.
 */

/** Which kind of consumer: an ES module project or a CommonJS one. */
export type ConsumerKind = 'esm' | 'cjs';

/** The consumer's own protocol (not one of the repository's). */
export const GREET_AVDL = `/** A consumer's own protocol, for the packaging test. */
@namespace("consumer.greet")
protocol Greeter {
  record Greeting {
    string text;
    long count;
  }

  error GreetError {
    string reason;
  }

  /** Greets \`name\`, \`times\` times. */
  Greeting greet(string name, long times);

  /** Always fails with GreetError. */
  Greeting refuse(string name) throws GreetError;

  /** Upper-cases \`text\`, on a worker thread. */
  string shout(string text);
}
`;

/** What the consumer's main script prints as one JSON line. */
export interface ConsumerOutput {
  /** Where `avrpc` resolved to: dist/src for ESM, dist/cjs for CommonJS. */
  resolved: string;
  greeting: { text: string; count: number };
  shout: string;
  refused: { code: string; message: string; details: unknown; errorType: string | null; reason: string | null } | string;
  /** createEtcdRegistry's first call without etcd3 installed: `CODE_NAME: message`. */
  etcd: string;
}

/**
 * The consumer's tsconfig: strict, module nodenext, @types/node from the repository's node_modules,
 * declaration files checked too (avrpc's own). One tsc run for the whole project: it must report
 * exactly the one error of bad/plain-error.ts, and it emits the rest anyway (noEmitOnError off).
 */
function tsconfig(typeRoots: string): string {
  const compilerOptions = {
    strict: true,
    target: 'ES2022',
    module: 'nodenext',
    moduleResolution: 'nodenext',
    outDir: 'out',
    rootDir: '.',
    typeRoots: [typeRoots],
    types: ['node'],
    skipLibCheck: false,
    noEmitOnError: false,
  };
  return JSON.stringify({ compilerOptions, include: ['src', 'gen', 'bad'] }, null, 2) + '\n';
}

/** The server and client in one script: a unary call, a declared error, a worker-thread call, and etcd3's absence. */
function main(kind: ConsumerKind): string {
  const header =
    kind === 'esm'
      ? `const here = (file: string): URL => new URL(file, import.meta.url);\nconst resolved = import.meta.resolve('avrpc');`
      : `import { join } from 'node:path';\nimport { pathToFileURL } from 'node:url';\n\nconst here = (file: string): URL => pathToFileURL(join(__dirname, file));\nconst resolved = require.resolve('avrpc');`;
  return `import { Code, createClient, createEtcdRegistry, createServer, loadProtocol, RpcError, type CallError } from 'avrpc';
import type { GreeterApi, Greeting } from '../gen/greet.js';
${header}

/** Compiles only if CallError narrows to the declared error's value by errorType. */
function reasonOf(err: CallError<GreeterApi, 'refuse'>): string | null {
  return err.errorType === 'consumer.greet.GreetError' ? err.details.reason : null;
}

async function main(): Promise<void> {
  const protocol = await loadProtocol(here('../../greet.avdl'));
  const server = createServer<GreeterApi>({
    protocol,
    handlers: {
      greet: ({ name, times }) => ({ text: \`hello \${name}\`, count: times }),
      refuse: ({ name }) => {
        throw new RpcError(Code.PERMISSION_DENIED, \`not \${name}\`, { details: { reason: 'closed' } });
      },
      shout: () => 'not on a worker',
    },
    workers: { module: here('./worker.js'), messages: ['shout'], threads: 1, offload: 'always' },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient<GreeterApi>({ protocol, endpoints: [\`127.0.0.1:\${port}\`] });
  try {
    const greeting: Greeting = await client.call('greet', { name: '${kind}', times: 2 });
    const shout: string = await client.call('shout', { text: '${kind}' });
    let refused: object | string = 'not refused';
    try {
      await client.call('refuse', { name: '${kind}' });
    } catch (caught) {
      const err = caught as CallError<GreeterApi, 'refuse'>;
      refused = { code: err.codeName, message: err.message, details: err.details, errorType: err.errorType ?? null, reason: reasonOf(err) };
    }
    // etcd3 is an optional peer this project did not install: the registry's first call says so.
    const registry = createEtcdRegistry({ hosts: 'http://127.0.0.1:9' });
    let etcd = 'resolved';
    try {
      await registry.resolve('greeter');
    } catch (err) {
      etcd = err instanceof RpcError ? \`\${err.codeName}: \${err.message}\` : String(err);
    }
    await registry.close();
    console.log(JSON.stringify({ resolved, greeting, shout, refused, etcd }));
  } finally {
    await client.close();
    await server.close({ graceMs: 100 });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
`;
}

/** The worker-thread handler module: `isMainThread` proves where it ran. */
const WORKER = `import { isMainThread } from 'node:worker_threads';

export function shout(request: { text: string }): string {
  return \`\${request.text.toUpperCase()} \${isMainThread ? 'on the main thread' : 'from a worker'}\`;
}
`;

/**
 * Lines that must each be a compile error (tsc fails on an unused `@ts-expect-error`): a wrong message
 * name, a wrong field, a wrong field type, a wrong result type, a handler for no message, a missing
 * handler, a handler returning the wrong type.
 */
const EXPECT_ERRORS = `import { createClient, createServer, type Protocol } from 'avrpc';
import type { GreeterApi } from '../gen/greet.js';

declare const protocol: Protocol;
const client = createClient<GreeterApi>({ protocol, endpoints: ['127.0.0.1:1'] });

export async function wrongCalls(): Promise<void> {
  // @ts-expect-error no message of that name
  await client.call('greett', { name: 'x', times: 1 });
  // @ts-expect-error a field the request does not have
  await client.call('greet', { name: 'x', times: 1, colour: 'red' });
  // @ts-expect-error a field of the wrong type
  await client.call('greet', { name: 1, times: 1 });
  // @ts-expect-error the result is a Greeting, not a number
  const n: number = await client.call('greet', { name: 'x', times: 1 });
  void n;
}

export const extraHandler = createServer<GreeterApi>({
  protocol,
  handlers: {
    greet: ({ name, times }) => ({ text: name, count: times }),
    refuse: () => null as never,
    shout: ({ text }) => text,
    // @ts-expect-error a handler for no message
    greetAll: () => null,
  },
});

export const missingHandler = createServer<GreeterApi>({
  protocol,
  // @ts-expect-error the handler of shout is missing
  handlers: {
    greet: ({ name, times }) => ({ text: name, count: times }),
    refuse: () => null as never,
  },
});

export const wrongHandler = createServer<GreeterApi>({
  protocol,
  handlers: {
    // @ts-expect-error a handler returning the wrong type
    greet: () => ({ text: 1, count: 1 }),
    refuse: () => null as never,
    shout: ({ text }) => text,
  },
});
`;

/** One plain error, no expectation: tsc must fail on it, naming this file and line 7. */
const PLAIN_ERROR = `import { createClient, type Protocol } from 'avrpc';
import type { GreeterApi } from '../gen/greet.js';

declare const protocol: Protocol;
const client = createClient<GreeterApi>({ protocol, endpoints: ['127.0.0.1:1'] });

export const wrong = client.call('greett', { name: 'x', times: 1 });
`;

/** Every file of one consumer project, by path relative to the project (gen/greet.ts comes from `avrpc gen`). */
export function consumerFiles(kind: ConsumerKind, typeRoots: string): Record<string, string> {
  const files: Record<string, string> = {
    'package.json':
      JSON.stringify({ name: `consumer-${kind}`, private: true, type: kind === 'esm' ? 'module' : 'commonjs' }, null, 2) + '\n',
    'greet.avdl': GREET_AVDL,
    'tsconfig.json': tsconfig(typeRoots),
    'src/main.ts': main(kind),
    'src/worker.ts': WORKER,
    'src/expect-errors.ts': EXPECT_ERRORS,
    'bad/plain-error.ts': PLAIN_ERROR,
  };
  return files;
}
