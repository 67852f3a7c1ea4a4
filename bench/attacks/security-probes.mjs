// Issue 14 (Medium, security): before/after figures for token expiry, HMAC token spelling and audience,
// the ACL id/role confusion and unknown option names. Loopback only, bounded (a few seconds).
//   node bench/attacks/security-probes.mjs            (this checkout's dist/)
//   AVRPC_DIST=/tmp/sec-old/dist node bench/attacks/security-probes.mjs   (another build, e.g. the old code)
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const dist = resolve(process.env.AVRPC_DIST ?? new URL('../../dist', import.meta.url).pathname);
const avrpc = await import(pathToFileURL(`${dist}/src/index.js`).href);
const { createServer, createClient, createHmacAuth, aclAuthorizer, loadProtocol, Code, codeName } = avrpc;
const protocol = await loadProtocol(resolve(dist, '../protocol/echo.avdl'));
const item = { id: 1, name: 'p', tags: [], score: 0, blob: Buffer.alloc(0) };
const SECRET = 'a shared secret of at least 32 bytes!';
const out = {};

// 1. A token of 300 ms on a connection kept busy for 1.5 s after it expired.
{
  const auth = createHmacAuth({ secret: SECRET });
  let handled = 0;
  const server = createServer({
    protocol,
    authenticate: auth.authenticate,
    handlers: {
      echo: (r) => {
        handled++;
        return r.item;
      },
    },
  });
  const { port } = await server.listen();
  const token = auth.issue('alice', [], 300);
  const expiresAt = auth.verify(token).expiresAt;
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], credentials: token, maxAttempts: 1 });
  let okAfter = 0;
  let refusedAfter = 0;
  let lateMs = 0;
  let handledAtExpiry = -1;
  const codes = {};
  while (Date.now() < expiresAt + 1500) {
    const r = await client.call('echo', { item }).then(
      () => 'OK',
      (e) => codeName(e.code),
    );
    const now = Date.now();
    if (now > expiresAt) {
      if (handledAtExpiry < 0) handledAtExpiry = handled;
      codes[r] = (codes[r] ?? 0) + 1;
      if (r === 'OK') {
        okAfter++;
        lateMs = now - expiresAt;
      } else refusedAfter++;
    }
    await sleep(10);
  }
  out.expiry = {
    callsAnsweredOkAfterExpiry: okAfter,
    lastOkMsAfterExpiry: lateMs,
    refusedAfterExpiry: refusedAfter,
    codesAfterExpiry: codes,
    handlersRunAfterExpiry: handled - handledAtExpiry,
  };
  await client.close();
  await server.close({ graceMs: 100 });
}

// 2. Rewritten spellings of a real token's signature (and payload): how many still verify.
{
  const auth = createHmacAuth({ secret: SECRET });
  let token;
  // A signature with both '-' and '_' and whose last char has spare low bits set to 0.
  for (let i = 0; ; i++) {
    token = auth.issue(`user${i}`);
    const mac = token.split('.')[1];
    if (mac.includes('-') && mac.includes('_')) break;
  }
  const [payload, mac] = token.split('.');
  const b64 = Buffer.from(mac, 'base64url').toString('base64');
  const last = mac[mac.length - 1];
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  // 43 chars carry 258 bits for 256: the last char's 2 low bits are spare.
  const bumped = alphabet[alphabet.indexOf(last) ^ 1];
  const rewrites = {
    padded: `${mac}=`,
    standardAlphabet: b64.replace(/=+$/, ''),
    standardPadded: b64,
    trailingBits: mac.slice(0, -1) + bumped,
    leadingSpace: ` ${mac}`,
    trailingNewline: `${mac}\n`,
    innerSpace: `${mac.slice(0, 10)} ${mac.slice(10)}`,
    innerTab: `${mac.slice(0, 20)}\t${mac.slice(20)}`,
    junkAfterPadding: `${mac}=x`,
  };
  const verified = [];
  for (const [name, m] of Object.entries(rewrites)) {
    try {
      auth.verify(`${payload}.${m}`);
      verified.push(name);
    } catch {
      /* refused */
    }
  }
  out.spelling = { rewrites: Object.keys(rewrites).length, verified: verified.length, which: verified };
  // Refusal messages of distinct bad tokens, as the client would read them.
  let now = 1_000_000;
  const clocked = createHmacAuth({ secret: SECRET, ttlMs: 1000, now: () => now });
  const t = clocked.issue('bob');
  now += 5000;
  const messages = new Set();
  for (const bad of [t, `${t.split('.')[0]}.${'A'.repeat(43)}`, 'not-a-token', `${t}x`]) {
    try {
      clocked.verify(bad);
    } catch (e) {
      messages.add(e.message);
    }
  }
  out.refusalMessages = { distinct: messages.size, messages: [...messages] };
}

// 3. Audience: a token minted by service A's issuer, presented to service B (same secret).
{
  const mk = (audience) => {
    try {
      return createHmacAuth({ secret: SECRET, audience });
    } catch {
      return createHmacAuth({ secret: SECRET });
    }
  };
  const a = mk('orders');
  const b = mk('billing');
  let accepted = false;
  try {
    b.verify(a.issue('alice'));
    accepted = true;
  } catch {
    /* refused */
  }
  out.audience = { serviceBAcceptsServiceAToken: accepted };
}

// 4. ACL: a principal whose id is 'role:admin', against an entry meant for the role admin.
{
  const acl = { echo: ['role:admin'] };
  let allowed;
  try {
    allowed = aclAuthorizer(acl)({ id: 'role:admin', roles: [] }, 'echo', {});
  } catch (e) {
    allowed = `refused ACL: ${e.message}`;
  }
  let typed;
  try {
    typed = aclAuthorizer({ echo: [{ role: 'admin' }] })({ id: 'role:admin', roles: [] }, 'echo', {});
  } catch (e) {
    typed = `n/a (${e.message.slice(0, 60)})`;
  }
  out.acl = { idRoleAdminPassesRoleEntry: allowed, idRoleAdminPassesTypedRoleEntry: typed };
}

// 5. Unknown option names.
{
  const tried = {
    'createServer maxConcurentCalls': () => createServer({ protocol, handlers: {}, maxConcurentCalls: 10 }),
    'createClient timeoutMS': () => createClient({ protocol, endpoints: ['127.0.0.1:1'], timeoutMS: 10 }),
    'createServer tls.rejectUnauthorised': () =>
      createServer({ protocol, handlers: {}, tls: { cert: 'x', key: 'y', rejectUnauthorised: false } }),
  };
  const res = {};
  for (const [name, f] of Object.entries(tried)) {
    try {
      const x = f();
      res[name] = 'accepted silently';
      await x.close?.();
    } catch (e) {
      res[name] = e.message;
    }
  }
  out.unknownOptions = res;
}

console.log(JSON.stringify(out, null, 2));
void Code;
