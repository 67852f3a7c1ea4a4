import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code } from '../../src/index.js';
import { exitStatusFor } from '../../src/cli/options.js';
import { KITCHEN, KITCHEN_HANDLERS, avrpc, serve } from '../helpers/cli.js';

/** `avrpc serve --tls-cert/--tls-key` with `avrpc call/describe --tls-ca`, on a throwaway self-signed certificate. */
const test = suite('avrpc with TLS');
const dir = mkdtempSync(join(tmpdir(), 'avrpc-cli-tls-'));
const cert = join(dir, 'cert.pem');
const key = join(dir, 'key.pem');

test.before(() => {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=avrpc-test',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('call and describe over TLS with --tls-ca; an untrusted certificate is UNAVAILABLE', async () => {
  const server = await serve(KITCHEN, KITCHEN_HANDLERS, '--longs', 'bigint', '--tls-cert', cert, '--tls-key', key);
  try {
    const ok = await avrpc('call', server.address, 'fail', '{"reason": "t", "code": 0}', '--tls-ca', cert);
    assert.is(ok.status, exitStatusFor(Code.NOT_FOUND), ok.stderr);
    assert.is(ok.stderr, 'NOT_FOUND: not found: t\n');
    const described = await avrpc('describe', server.address, '--tls-ca', cert);
    assert.is(described.status, 0, described.stderr);
    assert.match(described.stdout, /protocol Kitchen/);
    const untrusted = await avrpc('call', server.address, 'ping', '--tls', '--timeout', '3000');
    assert.is(untrusted.status, exitStatusFor(Code.UNAVAILABLE));
    assert.match(untrusted.stderr, /^UNAVAILABLE: /);
  } finally {
    await server.stop();
  }
});

test('a server requiring a client certificate: UNAUTHENTICATED without one, served with one', async () => {
  // The self-signed certificate is its own CA: trusted for the server, and accepted as a client certificate.
  const server = await serve(KITCHEN, KITCHEN_HANDLERS, '--longs', 'bigint', '--tls-cert', cert, '--tls-key', key, '--tls-ca', cert);
  try {
    const without = await avrpc('call', server.address, 'ping', '--tls-ca', cert, '--timeout', '3s');
    assert.is(without.status, exitStatusFor(Code.UNAUTHENTICATED), without.stderr);
    assert.match(without.stderr, /^UNAUTHENTICATED: TLS certificate refused by the peer \(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED/);
    const described = await avrpc('describe', server.address, '--tls-ca', cert, '--timeout', '3s');
    assert.is(described.status, exitStatusFor(Code.UNAUTHENTICATED), described.stderr);
    const withCert = await avrpc(
      'call',
      server.address,
      'fail',
      '{"reason": "m", "code": 0}',
      '--tls-ca',
      cert,
      '--tls-cert',
      cert,
      '--tls-key',
      key,
    );
    assert.is(withCert.stderr, 'NOT_FOUND: not found: m\n');
  } finally {
    await server.stop();
  }
});

test('--tls-key without --tls-cert (or the reverse) is refused, not a plain TCP connection', async () => {
  const server = await serve(KITCHEN, KITCHEN_HANDLERS, '--tls-cert', cert, '--tls-key', key);
  try {
    for (const args of [
      ['call', server.address, 'ping', '--tls-key', key],
      ['call', server.address, 'ping', '--tls-ca', cert, '--tls-cert', cert],
      ['describe', server.address, '--tls-key', key],
    ]) {
      const r = await avrpc(...args);
      assert.is(r.status, 2, `a usage error: ${args.join(' ')}: ${r.stderr}`);
      assert.is(r.stderr, 'error: --tls-cert and --tls-key go together (a client certificate needs its key)\n');
    }
  } finally {
    await server.stop();
  }
});

test.run();
