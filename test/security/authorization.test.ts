import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Code,
  RpcError,
  aclAuthorizer,
  createHmacAuth,
  createServer,
  type Acl,
  type Authorizer,
  type Client,
  type Protocol,
} from '../../src/index.js';
import { outcome as code, securityFixture } from '../helpers/security-fixture.js';

/** Issue 5, per-call authorization: an `authorize` hook and a declarative ACL; refused calls never run. */
const test = suite('security: authorization');
let protocol: Protocol;
const fixture = securityFixture(test, (p) => {
  protocol = p;
});
const item = { id: 3, name: 'authz', tags: [], score: 0, blob: Buffer.alloc(0) };
const auth = createHmacAuth({ secret: 'authorization tests need a long secret' });
let ran: string[] = [];

test.before.each(() => {
  ran = [];
});

async function serve(opts: { authorize?: Authorizer; acl?: Acl }): Promise<number> {
  const { port } = await fixture.serve({
    authenticate: auth.authenticate,
    ...opts,
    handlers: {
      echo: (req: { item: unknown }) => {
        ran.push('echo');
        return req.item;
      },
      fail: (req: { reason: string }) => {
        ran.push('fail');
        return { ...item, name: req.reason };
      },
      notify: () => {
        ran.push('notify');
      },
    },
  });
  return port;
}

function client(port: number, who: string, roles: string[] = []): Client {
  return fixture.client(port, { credentials: auth.issue(who, roles) });
}

test('authorize sees the principal, the message and the metadata; false is PERMISSION_DENIED and the handler never runs', async () => {
  const asked: unknown[] = [];
  const port = await serve({
    authorize: (principal, message, metadata) => {
      asked.push([(principal as { id: string }).id, message, { ...metadata }]);
      return metadata['tenant'] === 'blue';
    },
  });
  const c = client(port, 'alice');
  assert.is(await code(c.call('echo', { item }, { metadata: { tenant: 'red' } })), Code.PERMISSION_DENIED);
  assert.is(await code(c.call('echo', { item }, { metadata: { tenant: 'blue' } })), 'OK');
  assert.equal(asked, [
    ['alice', 'echo', { tenant: 'red' }],
    ['alice', 'echo', { tenant: 'blue' }],
  ]);
  assert.equal(ran, ['echo'], 'only the allowed call ran');
});

test('a promise of false, a rejecting promise, a throw and a truthy non-boolean all deny', async () => {
  const verdicts: Array<() => unknown> = [
    async () => false,
    async () => {
      throw new Error('policy store down');
    },
    () => {
      throw new Error('bug in the hook');
    },
    () => 'yes',
  ];
  let n = 0;
  const port = await serve({ authorize: () => verdicts[n++]!() as boolean });
  const c = client(port, 'alice');
  for (let i = 0; i < verdicts.length; i++) assert.is(await code(c.call('echo', { item })), Code.PERMISSION_DENIED, `verdict ${i}`);
  assert.equal(ran, []);
  // The connection survives denials.
  const allowAll = await serve({ authorize: async () => true });
  assert.is(await code(client(allowAll, 'alice').call('echo', { item })), 'OK');
});

test('the declarative ACL allows by id, by role and by wildcard, and denies everything unlisted', async () => {
  const port = await serve({ acl: { echo: ['alice', 'role:admin'], fail: ['*'] } });
  const alice = client(port, 'alice');
  const bob = client(port, 'bob', ['admin']);
  const carol = client(port, 'carol', ['viewer']);
  assert.is(await code(alice.call('echo', { item })), 'OK');
  assert.is(await code(bob.call('echo', { item })), 'OK');
  assert.is(await code(carol.call('echo', { item })), Code.PERMISSION_DENIED);
  assert.is(await code(carol.call('fail', { reason: 'x' })), 'OK');
  // notify is listed nowhere and there is no '*' entry: denied (silently, it is one-way).
  await carol.call('notify', { item });
  assert.is(await code(carol.call('fail', { reason: 'after notify' })), 'OK');
  assert.equal(ran, ['echo', 'echo', 'fail', 'fail']);
});

test('a "*" ACL entry covers unlisted messages, and ACL and authorize must both allow', async () => {
  const port = await serve({ acl: { '*': ['role:user'], echo: ['alice'] }, authorize: (_p, message) => message !== 'fail' });
  const alice = client(port, 'alice', ['user']);
  const dave = client(port, 'dave', ['user']);
  assert.is(await code(alice.call('echo', { item })), 'OK');
  assert.is(await code(dave.call('echo', { item })), Code.PERMISSION_DENIED, 'echo is alice only');
  assert.is(await code(dave.call('fail', { reason: 'r' })), Code.PERMISSION_DENIED, 'the ACL allows, authorize does not');
  assert.equal(ran, ['echo']);
});

test('aclAuthorizer is usable on its own, and a bad ACL is refused naming its path', () => {
  const allow = aclAuthorizer({ echo: ['role:ops'] });
  assert.is(allow({ id: 'x', roles: ['ops'] }, 'echo', {}), true);
  assert.is(allow('x', 'echo', {}), false);
  assert.is(allow({ id: 'x', roles: ['ops'] }, 'fail', {}), false);
  for (const inherited of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    assert.is(allow({ id: 'x', roles: ['ops'] }, inherited, {}), false, inherited);
    assert.is(aclAuthorizer({ '*': ['*'] })('x', inherited, {}), true, `${inherited} falls back to '*'`);
  }
  for (const [acl, path] of [
    [{ nope: ['*'] }, 'options.acl.nope'],
    [{ echo: 'alice' }, 'options.acl.echo'],
  ] as const) {
    try {
      createServer({ protocol, handlers: {}, acl: acl as unknown as Acl });
      assert.unreachable('should throw');
    } catch (err) {
      assert.is((err as RpcError).code, Code.INVALID_ARGUMENT);
      assert.match((err as Error).message, path);
    }
  }
});

test.run();
