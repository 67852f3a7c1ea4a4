/**
 * `avrpc health <target>`: asks a server whether it takes calls (SPEC.md section 14) and prints
 * SERVING (exit 0), or NOT_SERVING / SERVICE_UNKNOWN (exit 1). A server that cannot be reached or
 * refuses fails as every command does (`CODE_NAME: message`, exit 64 + code), so a probe script tells
 * "not ready" from "not there".
 */
import { Command } from 'commander';
import { checkHealth } from '../client/health-check.js';
import { addConnectFlags, duration, reportFailure, resolveTarget, type ConnectFlags } from './options.js';

interface HealthFlags extends ConnectFlags {
  service?: string;
  timeout: number;
}

/** Exit status of an answer other than SERVING. */
export const NOT_SERVING_EXIT = 1;

/** The `health` command. */
export function healthCommand(): Command {
  const cmd = new Command('health')
    .description('ask a server whether it takes calls: prints SERVING (exit 0) or NOT_SERVING (exit 1)')
    .argument('<target>', 'host:port, or a service name with --registry')
    .option('--service <name>', "ask about one protocol (its full name, e.g. avrpc.echo.Echo): SERVICE_UNKNOWN if the server's is another")
    .option('--timeout <duration>', 'time allowed for connect and answer: 500ms, 10s, 2m or plain ms', duration, 5000);
  addConnectFlags(cmd, false);
  return cmd.action(async (targetText: string, flags: HealthFlags) => {
    await runHealth(targetText, flags).catch(reportFailure);
  });
}

async function runHealth(targetText: string, flags: HealthFlags): Promise<void> {
  const target = resolveTarget(targetText, flags);
  try {
    const result = await checkHealth(await target.first(), {
      timeoutMs: flags.timeout,
      ...(flags.service === undefined ? {} : { service: flags.service }),
      ...(target.client.tls === undefined ? {} : { tls: target.client.tls }),
    });
    process.stdout.write(`${result.status}${result.supported ? '' : ' (the server predates health checks: it is up)'}\n`);
    if (result.status !== 'SERVING') process.exitCode = NOT_SERVING_EXIT;
  } finally {
    await target.close();
  }
}
