/**
 * `avrpc gen <protocol.avdl|.avpr>... --out <dir> [--longs number|bigint|string]`: writes one
 * TypeScript module of types per protocol (`<dir>/<file name without extension>.ts`, see
 * src/codegen/module.ts) for `createClient<Api>` and `createServer<Api>`. Every protocol is loaded
 * before anything is written, so a bad one leaves the directory as it was; a module is written only
 * when its text changes (regenerating is a no-op: the file, and its mtime, stay). Prints `wrote
 * <path>` or `unchanged <path>` for each.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { Command, Option } from 'commander';
import { loadProtocol } from '../codec/protocol.js';
import { generateModule } from '../codegen/module.js';
import type { LongsMode } from '../codegen/type-printer.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { reportFailure } from './options.js';

interface GenFlags {
  out: string;
  longs: LongsMode;
}

/** The `gen` command. */
export function genCommand(): Command {
  return new Command('gen')
    .description('generate TypeScript types (records, enums, errors and the <Protocol>Api type) from protocols, one module each')
    .argument('<protocol...>', 'protocol files (.avdl or .avpr)')
    .requiredOption('--out <dir>', 'directory of the generated modules (created if missing)')
    .addOption(
      new Option('--longs <mode>', 'how Avro longs are typed: as the longs option the protocol is used with')
        .choices(['number', 'bigint', 'string'])
        .default('number'),
    )
    .action(async (files: string[], flags: GenFlags) => {
      await runGen(files, flags).catch(reportFailure);
    });
}

async function runGen(files: readonly string[], flags: GenFlags): Promise<void> {
  const outputs = outputNames(files);
  // All loaded first: a missing or bad protocol writes nothing. Longs as numbers: the types follow --longs.
  const modules: { path: string; text: string }[] = [];
  for (const [i, file] of files.entries()) {
    const protocol = await loadProtocol(file, { longs: 'number' });
    modules.push({ path: join(flags.out, outputs[i]!), text: generateModule(protocol, { source: basename(file), longs: flags.longs }) });
  }
  await mkdir(flags.out, { recursive: true }).catch((err: unknown) => {
    throw fileError(`--out ${flags.out}`, 'cannot create the directory', err);
  });
  for (const { path, text } of modules) {
    const old = await readFile(path, 'utf8').catch(() => undefined);
    if (old === text) {
      process.stdout.write(`unchanged ${path}\n`);
      continue;
    }
    await writeFile(path, text).catch((err: unknown) => {
      throw fileError(path, 'cannot write it', err);
    });
    process.stdout.write(`wrote ${path}\n`);
  }
}

/** `<name>.ts` for each input; refused when two inputs would write the same module (`a/echo.avdl`, `b/echo.avpr`). */
function outputNames(files: readonly string[]): string[] {
  const seen = new Map<string, string>();
  return files.map((file) => {
    const name = `${basename(file, extname(file))}.ts`;
    const other = seen.get(name);
    if (other !== undefined)
      throw new RpcError(
        Code.INVALID_ARGUMENT,
        `${other} and ${file} would both be written to ${name}: generate them into different --out directories`,
      );
    seen.set(name, file);
    return name;
  });
}

function fileError(what: string, problem: string, err: unknown): RpcError {
  const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return new RpcError(Code.INVALID_ARGUMENT, `${what}: ${problem} (${reason})`, { cause: err });
}
