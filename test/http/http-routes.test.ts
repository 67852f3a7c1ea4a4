/**
 * HttpRoutes.atPath: a request target finds its message's route by exact path, whether the paths of
 * its length are few (compared one by one) or many (looked up by hash), in both bytes modes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Protocol } from '../../src/index.js';
import { HttpRoutes } from '../../src/server/http/http-route.js';

/** Messages m00..m(n-1): every name of one length, so all their paths share one length. */
function protocolOf(n: number, extra: string[] = []): Protocol {
  const names = [...Array.from({ length: n }, (_, i) => `m${String(i).padStart(2, '0')}`), ...extra];
  const messages = Object.fromEntries(names.map((name) => [name, { request: [{ name: 'x', type: 'int' }], response: 'int' }]));
  return new Protocol({ protocol: 'P', namespace: 'org.t', messages });
}

for (const n of [1, 3, 8, 9, 40]) {
  test(`${n} paths of one length: each target finds its own route, in both bytes modes`, () => {
    const routes = new HttpRoutes(protocolOf(n, ['longer_name']));
    for (let i = 0; i < n; i++) {
      const name = `m${String(i).padStart(2, '0')}`;
      // Built at run time, as a request's target is: not the interned string the table holds.
      const target = ['/org.t.P/', name].join('');
      for (const bytes of ['latin1', 'base64'] as const) {
        const route = routes.atPath(target, bytes);
        assert.ok(route !== undefined, `${target} ${bytes}`);
        assert.is(route.msg.name, name);
        assert.is(route, routes.get(name, bytes), 'the same route as by name');
        assert.is.not(route, routes.get(name, bytes === 'latin1' ? 'base64' : 'latin1'), 'each mode its own route');
      }
    }
    assert.is(routes.atPath('/org.t.P/longer_name', 'latin1')?.msg.name, 'longer_name');
    // Same length, no such message; a prefix; another protocol; a query string left on.
    for (const miss of ['/org.t.P/m99', '/org.t.P/x00', '/org.t.Q/m00', '/org.t.P/m0', '/org.t.P/m00?a', '']) {
      assert.is(routes.atPath(miss, 'latin1'), undefined, miss);
    }
  });
}

test.run();
