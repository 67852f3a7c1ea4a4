/**
 * Test helper: throw-away X.509 material made with Debian's `openssl` CLI in a temporary directory,
 * removed again by `cleanup()`. Two CAs (so that "wrong CA" can be tested), a server certificate for
 * 127.0.0.1 and localhost, and a client certificate, all signed by the first CA.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const OPENSSL = process.env['OPENSSL_BIN'] ?? 'openssl';

/** PEM strings of one test PKI. */
export interface TestCerts {
  /** The CA that signed server and client certificates. */
  ca: string;
  /** A second, unrelated CA: trusting only it must fail. */
  otherCa: string;
  serverCert: string;
  serverKey: string;
  /** Client certificate, CN `client-1`, SAN `URI:spiffe://avrpc.test/client-1`. */
  clientCert: string;
  clientKey: string;
  /** A client certificate signed by `otherCa` (not trusted by the server). */
  strangerCert: string;
  strangerKey: string;
  /** Removes the temporary directory. Safe to call twice. */
  cleanup(): Promise<void>;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await run(OPENSSL, args, { cwd: dir });
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.pem`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

async function makeLeaf(dir: string, ca: string, name: string, cn: string, ext: string): Promise<void> {
  await openssl(dir, [
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    `/CN=${cn}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
  ]);
  await writeFile(join(dir, `${name}.ext`), ext);
  await openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.pem`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-days',
    '2',
    '-out',
    `${name}.pem`,
    '-extfile',
    `${name}.ext`,
  ]);
}

/** Generates the whole set (a few hundred ms of openssl). */
export async function makeTestCerts(): Promise<TestCerts> {
  const dir = await mkdtemp(join(tmpdir(), 'avrpc-certs-'));
  let removed: Promise<void> | undefined;
  const cleanup = (): Promise<void> => (removed ??= rm(dir, { recursive: true, force: true }));
  try {
    await makeCa(dir, 'ca');
    await makeCa(dir, 'other-ca');
    await makeLeaf(dir, 'ca', 'server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    await makeLeaf(dir, 'ca', 'client', 'client-1', 'subjectAltName=URI:spiffe://avrpc.test/client-1\nextendedKeyUsage=clientAuth\n');
    await makeLeaf(dir, 'other-ca', 'stranger', 'stranger', 'extendedKeyUsage=clientAuth\n');
    const read = (f: string): Promise<string> => readFile(join(dir, f), 'utf8');
    return {
      ca: await read('ca.pem'),
      otherCa: await read('other-ca.pem'),
      serverCert: await read('server.pem'),
      serverKey: await read('server.key'),
      clientCert: await read('client.pem'),
      clientKey: await read('client.key'),
      strangerCert: await read('stranger.pem'),
      strangerKey: await read('stranger.key'),
      cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
