/**
 * `avrpc describe <target>`: prints a server's protocol, learned from its handshake, as Avro IDL
 * (default) or as its JSON text (`--json`).
 */
import { Command } from 'commander';
import { describeServer } from '../client/describe.js';
import { protocolToIdl } from './idl-printer.js';
import { stringifyJson } from '../codec/lossless-json.js';
import { addConnectFlags, duration, reportFailure, resolveTarget, type ConnectFlags } from './options.js';

interface DescribeFlags extends ConnectFlags {
  json?: boolean;
  timeout: number;
}

/** The `describe` command. */
export function describeCommand(): Command {
  const cmd = new Command('describe')
    .description("print a server's protocol (from its handshake) as Avro IDL, or as JSON with --json")
    .argument('<target>', 'host:port, or a service name with --registry')
    .option('--json', 'print the protocol JSON (.avpr) instead of IDL')
    .option('--timeout <duration>', 'time allowed for connect and handshake: 500ms, 10s, 2m or plain ms', duration, 5000);
  addConnectFlags(cmd, false);
  return cmd.action(async (targetText: string, flags: DescribeFlags) => {
    await runDescribe(targetText, flags).catch(reportFailure);
  });
}

async function runDescribe(targetText: string, flags: DescribeFlags): Promise<void> {
  const target = resolveTarget(targetText, flags);
  try {
    const protocol = await describeServer(await target.first(), {
      timeoutMs: flags.timeout,
      ...(target.client.tls === undefined ? {} : { tls: target.client.tls }),
      ...(target.client.credentials === undefined ? {} : { credentials: target.client.credentials }),
    });
    const text = flags.json ? stringifyJson(JSON.parse(protocol.text), 2) : protocolToIdl(protocol.text);
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  } finally {
    await target.close();
  }
}
