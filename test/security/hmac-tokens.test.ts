import { createHmac } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createHmacAuth, type Logger } from '../../src/index.js';
import { until } from '../helpers/raw-peer.js';
import { failure, securityFixture } from '../helpers/security-fixture.js';

/**
 * Issue 14: HMAC tokens have one spelling, an audience, and one refusal message. Node's base64url
 * decoder accepts padding, '+' and '/', whitespace and spare bits, so a MAC had many spellings; a
 * token lacked any way to say which service it is for; and refusals told a forger what was wrong.
 */
const test = suite('security: HMAC tokens');
const fixture = securityFixture(test);
const SECRET = 'a shared secret of at least 32 bytes!';
const item = { id: 9, name: 'hmac', tags: [], score: 0, blob: Buffer.alloc(0) };
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function refused(f: () => unknown): RpcError {
  try {
    f();
  } catch (err) {
    assert.instance(err, RpcError);
    return err as RpcError;
  }
  assert.unreachable('should have been refused');
  throw new Error('unreachable');
}

test('only the canonical unpadded base64url spelling of a real signature verifies', () => {
  const auth = createHmacAuth({ secret: SECRET });
  // A signature that has both characters base64url changes, so the '+/' rewrite differs.
  let token = '';
  for (let i = 0; !/-.*_|_.*-/.test(token.split('.')[1] ?? ''); i++) token = auth.issue(`user${i}`);
  const [payload, mac] = token.split('.') as [string, string];
  assert.is(auth.verify(token).id.startsWith('user'), true);
  const std = Buffer.from(mac, 'base64url').toString('base64');
  // 43 characters carry 258 bits for 256: flipping a spare low bit decodes to the same bytes.
  const spare = ALPHABET[ALPHABET.indexOf(mac[mac.length - 1]!) ^ 1]!;
  const rewrites = [
    `${mac}=`,
    std.replace(/=+$/, ''),
    std,
    mac.slice(0, -1) + spare,
    ` ${mac}`,
    `${mac}\n`,
    `${mac.slice(0, 10)} ${mac.slice(10)}`,
    `${mac.slice(0, 20)}\t${mac.slice(20)}`,
    `${mac}=x`,
  ];
  for (const m of rewrites) {
    assert.equal(Buffer.from(m, 'base64url'), Buffer.from(mac, 'base64url'), `${JSON.stringify(m)} decodes to the same MAC`);
    assert.is(refused(() => auth.verify(`${payload}.${m}`)).code, Code.UNAUTHENTICATED, JSON.stringify(m));
  }
  // The payload too: a padded payload with a valid MAC over that spelling (only the secret's holder can make one).
  const padded = `${payload}${'='.repeat((4 - (payload.length % 4)) % 4 || 1)}`;
  const macOfPadded = createHmac('sha256', SECRET).update(padded).digest('base64url');
  assert.is(refused(() => auth.verify(`${padded}.${macOfPadded}`)).code, Code.UNAUTHENTICATED, 'a padded payload');
});

test('audience: a token is accepted only by verifiers of its audience, and an audience-less verifier takes none with one', () => {
  const orders = createHmacAuth({ secret: SECRET, audience: 'orders' });
  const billing = createHmacAuth({ secret: SECRET, audience: 'billing' });
  const plain = createHmacAuth({ secret: SECRET });
  const forOrders = orders.issue('alice', ['user']);
  assert.equal(orders.verify(forOrders), {
    id: 'alice',
    roles: ['user'],
    expiresAt: orders.verify(forOrders).expiresAt,
    audience: 'orders',
  });
  assert.is(refused(() => billing.verify(forOrders)).code, Code.UNAUTHENTICATED, 'another audience');
  assert.is(refused(() => plain.verify(forOrders)).code, Code.UNAUTHENTICATED, 'a verifier without an audience');
  assert.is(refused(() => orders.verify(plain.issue('alice'))).code, Code.UNAUTHENTICATED, 'a token without an audience');
  // An issuer may mint for another audience explicitly.
  assert.is(billing.verify(orders.issue('bob', [], 60_000, 'billing')).id, 'bob');
  for (const audience of ['', 7]) {
    const err = refused(() => createHmacAuth({ secret: SECRET, audience: audience as string }));
    assert.is(err.code, Code.INVALID_ARGUMENT);
    assert.match(err.message, 'createHmacAuth: options.audience');
  }
});

test('every bad token gets the same message; the reason is only the cause, which the server logs', async () => {
  let now = 1_000_000;
  const auth = createHmacAuth({ secret: SECRET, ttlMs: 1000, audience: 'echo', now: () => now });
  const valid = auth.issue('bob');
  const [payload, mac] = valid.split('.') as [string, string];
  const bad: Record<string, string> = {
    'bad signature': `${payload}.${mac.slice(0, -2)}AA`,
    malformed: 'not-a-token',
    'wrong audience': createHmacAuth({ secret: SECRET, audience: 'other', now: () => now }).issue('bob'),
    'malformed claims': `${Buffer.from('{"sub": 1}').toString('base64url')}.${createHmac('sha256', SECRET).update(Buffer.from('{"sub": 1}').toString('base64url')).digest('base64url')}`,
  };
  now += 5000;
  bad.expired = valid;
  const reasons = new Set<string>();
  for (const [name, token] of Object.entries(bad)) {
    const err = refused(() => auth.verify(token));
    assert.is(err.code, Code.UNAUTHENTICATED, name);
    assert.is(err.message, 'invalid token', name);
    assert.instance(err.cause, Error, name);
    reasons.add((err.cause as Error).message);
  }
  assert.is(reasons.size, Object.keys(bad).length, 'the causes do tell the reasons apart, for the log');
  // Through a real server: the client reads the one message, the server's log has the reason.
  const logged: Array<{ level: string; obj: { err?: RpcError } }> = [];
  const record = (level: string) => (obj: object) => {
    logged.push({ level, obj: obj as { err?: RpcError } });
  };
  const logger: Logger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
  const { port } = await fixture.serve({ authenticate: auth.authenticate, logger });
  const err = await failure(fixture.client(port, { credentials: valid, fragmentBytes: 0 }).call('echo', { item }));
  assert.is(err.code, Code.UNAUTHENTICATED);
  assert.is(err.message, 'invalid token');
  const isRefusal = (l: { obj: { err?: RpcError } }) => l.obj.err?.code === Code.UNAUTHENTICATED;
  await until(() => logged.some(isRefusal), 'the server logs the refusal once the connection closed');
  const entry = logged.find(isRefusal)!;
  assert.is(entry.level, 'warn');
  assert.match(String((entry.obj.err!.cause as Error).message), 'expired');
});

test('createHmacAuth refuses an unknown option, naming the closest one', () => {
  const err = refused(() => createHmacAuth({ secret: SECRET, audiance: 'x' } as never));
  assert.is(err.code, Code.INVALID_ARGUMENT);
  assert.is(err.message, 'createHmacAuth: options.audiance: unknown option; did you mean audience?');
});

test.run();
