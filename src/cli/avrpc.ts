#!/usr/bin/env node
/**
 * The `avrpc` command line: `serve` a protocol with a handlers module, `call` a message with JSON
 * (stream messages: NDJSON on stdin and stdout), `describe` a server's protocol, `health`-check it, `bench` a server,
 * `list` the services of a registry, `gen` TypeScript types from protocols. Failures print
 * `CODE_NAME: message` on stderr and exit with status 64 + the code's number; usage errors exit 2.
 */
import { Command, type CommanderError } from 'commander';
import { benchCommand } from './bench.js';
import { callCommand } from './call.js';
import { describeCommand } from './describe.js';
import { genCommand } from './gen.js';
import { healthCommand } from './health.js';
import { listCommand } from './list.js';
import { USAGE_EXIT } from './options.js';
import { serveCommand } from './serve.js';

const program = new Command('avrpc')
  .description('avrpc: serve, call, describe and benchmark avrpc services, list registries, and generate TypeScript types')
  .version('0.1.0')
  .addCommand(serveCommand())
  .addCommand(callCommand())
  .addCommand(describeCommand())
  .addCommand(healthCommand())
  .addCommand(benchCommand())
  .addCommand(listCommand())
  .addCommand(genCommand())
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Failures print CODE_NAME: message on stderr and exit with status 64 + the code's number
(e.g. 68 DEADLINE_EXCEEDED, 78 UNAVAILABLE); usage errors (an unknown or missing flag or
argument, flags that exclude each other) print error: message and exit 2.
Stream messages: call prints a server or bidi stream's responses as NDJSON as they arrive, and
reads a client or bidi stream's requests as NDJSON from stdin (avrpc call --help).`,
  );

/**
 * Usage errors exit 2 in every subcommand, as grpcurl's and Go's flag package do: commander's own
 * status is 1, which a script cannot tell from a failure of the command. Help and --version stay 0.
 */
function exitTwoOnUsage(cmd: Command): void {
  cmd.exitOverride((err: CommanderError) => process.exit(err.exitCode === 0 ? 0 : USAGE_EXIT));
  for (const sub of cmd.commands) exitTwoOnUsage(sub);
}
exitTwoOnUsage(program);

await program.parseAsync(process.argv);
