import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, aclAuthorizer, createHmacAuth, createServer, type Acl, type Protocol } from '../../src/index.js';
import { outcome as code, securityFixture } from '../helpers/security-fixture.js';

/**
 * Issue 14: ACL ids and roles are distinct kinds. An id and a role used to be compared in one string
 * space, so a principal whose id was `role:admin` passed an entry meant for the role admin.
 */
const test = suite('security: ACL entry kinds');
let protocol: Protocol;
const fixture = securityFixture(test, (p) => {
  protocol = p;
});
const item = { id: 4, name: 'acl', tags: [], score: 0, blob: Buffer.alloc(0) };
const auth = createHmacAuth({ secret: 'ACL kind tests need a long secret too' });

test('a principal whose id is "role:admin" does not pass a role entry, in either spelling', () => {
  const impostors = [{ id: 'role:admin', roles: [] }, 'role:admin'];
  for (const acl of [{ echo: ['role:admin'] }, { echo: [{ role: 'admin' }] }] as Acl[]) {
    const allow = aclAuthorizer(acl);
    for (const p of impostors) assert.is(allow(p, 'echo', {}), false, `${JSON.stringify(p)} vs ${JSON.stringify(acl)}`);
    assert.is(allow({ id: 'x', roles: ['admin'] }, 'echo', {}), true, 'the role itself passes');
  }
});

test('ids and roles in object form; an id that looks like a role is named with { id }', () => {
  const allow = aclAuthorizer({ echo: [{ id: 'alice' }, { role: 'ops' }, { id: 'role:admin' }] });
  assert.is(allow({ id: 'alice' }, 'echo', {}), true);
  assert.is(allow('alice', 'echo', {}), true, 'a string principal is an id');
  assert.is(allow({ id: 'bob', roles: ['ops'] }, 'echo', {}), true);
  assert.is(allow({ id: 'role:admin' }, 'echo', {}), true, 'named as an id, it is one');
  assert.is(allow({ id: 'carol', roles: ['admin'] }, 'echo', {}), false, '{ id: "role:admin" } is no role entry');
  assert.is(allow({ id: 'ops', roles: [] }, 'echo', {}), false, 'a role name is no id');
  assert.is(allow({ id: 'dave', roles: ['alice'] }, 'echo', {}), false, 'an id is no role');
});

test('malformed entries are refused naming the entry', () => {
  const bad: Array<[unknown, string]> = [
    [{ echo: [{ role: 'a', id: 'b' }] }, 'options.acl.echo[0]'],
    [{ echo: [{ user: 'a' }] }, 'options.acl.echo[0]'],
    [{ echo: ['alice', 7] }, 'options.acl.echo[1]'],
    [{ echo: [{ role: 3 }] }, 'options.acl.echo[0]'],
  ];
  for (const [acl, path] of bad) {
    try {
      createServer({ protocol, handlers: {}, acl: acl as Acl });
      assert.unreachable('should throw');
    } catch (err) {
      assert.is((err as RpcError).code, Code.INVALID_ARGUMENT, path);
      assert.match((err as Error).message, path);
    }
  }
});

test('through a real server: the impostor is denied, the role holder and the named id are allowed', async () => {
  const ran: string[] = [];
  const { port } = await fixture.serve({
    authenticate: auth.authenticate,
    acl: { echo: [{ role: 'admin' }, 'alice'] },
    handlers: {
      echo: (req: { item: { name: string } }, ctx) => {
        ran.push((ctx.peer.principal as { id: string }).id);
        return req.item;
      },
    },
  });
  const as = (id: string, roles: string[] = []) => fixture.client(port, { credentials: auth.issue(id, roles) });
  assert.is(await code(as('role:admin').call('echo', { item })), Code.PERMISSION_DENIED);
  assert.is(await code(as('bob', ['admin']).call('echo', { item })), 'OK');
  assert.is(await code(as('alice').call('echo', { item })), 'OK');
  assert.is(await code(as('admin').call('echo', { item })), Code.PERMISSION_DENIED, 'the id "admin" holds no role');
  assert.equal(ran, ['bob', 'alice']);
});

test.run();
