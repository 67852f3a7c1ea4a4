#!/usr/bin/env node
/**
 * The `avrpc` command line: `serve` a protocol with a handlers module, `call` a message with JSON
 * (stream messages: NDJSON on stdin and stdout),
 * `describe` a server's protocol, `bench` a server, `gen` TypeScript types from protocols. Failures print `CODE_NAME: message` on stderr
 * and exit with status 64 + the code's number; usage errors exit 1.
 */
import { Command } from 'commander';
import { benchCommand } from './bench.js';
import { callCommand } from './call.js';
import { describeCommand } from './describe.js';
import { genCommand } from './gen.js';
import { serveCommand } from './serve.js';

const program = new Command('avrpc')
  .description('avrpc: serve, call, describe and benchmark avrpc services, and generate their TypeScript types')
  .version('0.1.0')
  .addCommand(serveCommand())
  .addCommand(callCommand())
  .addCommand(describeCommand())
  .addCommand(benchCommand())
  .addCommand(genCommand())
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Failures print CODE_NAME: message on stderr and exit with status 64 + the code's number
(e.g. 68 DEADLINE_EXCEEDED, 78 UNAVAILABLE); usage errors exit 1.
Stream messages: call prints a server or bidi stream's responses as NDJSON as they arrive, and
reads a client or bidi stream's requests as NDJSON from stdin (avrpc call --help).`,
  );

await program.parseAsync(process.argv);
