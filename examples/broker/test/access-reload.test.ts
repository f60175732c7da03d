/**
 * Reloading the access rules of a running broker (`broker.reloadAccess()`, SIGHUP in the CLI):
 * clients whose credentials no longer hold are disconnected, grants the new ACL drops stop
 * deliveries and publishes at once, everyone else keeps connection and subscriptions, and a
 * file that does not parse changes nothing at all. Also the certificate reload of a TLS broker.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, writeFile, rm, readFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect as tlsConnect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { AccessReloadError, ErrorCodes, type AccessProvider } from '@trellis/sdk';
import { connect, connectReliable, createBroker, openLmdbStore, joinRedisCluster, BrokerError, BrokerErrorCode, type Broker, type BrokerClient, type RedisCluster, type ReliableClient } from '@trellis/sdk/broker';
import { updatePasswordFile } from '@trellis/plugin-access-file/passwords';
import { startBroker, take, arrivedWithin, until, testHost, startRedis, HAVE_REDIS, type Running } from './helpers.js';

const ACL = `
topic read public/#
user alice
topic readwrite /sensors/#
topic read /weather/#
user bob
topic write /weather/temperature
topic read /weather/#
topic read /sensors/+/temp
user carol
topic readwrite /weather/#
`;

/** The same ACL without bob's grants on /weather (write and read) and his wildcard read. */
const ACL_BOB_REVOKED = `
topic read public/#
user alice
topic readwrite /sensors/#
topic read /weather/#
user bob
topic read /sensors/kitchen/#
user carol
topic readwrite /weather/#
`;

interface Files {
  dir: string;
  passwordFile: string;
  aclFile: string;
  remove(): Promise<void>;
}

async function files(acl = ACL): Promise<Files> {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-access-reload-'));
  const passwordFile = join(dir, 'passwd');
  const aclFile = join(dir, 'acl');
  for (const u of ['alice', 'bob', 'carol']) await updatePasswordFile(passwordFile, u, `${u}-pw`);
  await writeFile(aclFile, acl);
  return { dir, passwordFile, aclFile, remove: () => rm(dir, { recursive: true, force: true }) };
}

async function withBroker(run: (r: Running, f: Files) => Promise<void>, { allowAnonymous = false } = {}): Promise<void> {
  const f = await files();
  const r = await startBroker({ authFailureDelayMs: 50, access: { provider: 'file', options: { passwordFile: f.passwordFile, aclFile: f.aclFile, allowAnonymous } } });
  try {
    await run(r, f);
  } finally {
    await r.stop();
    await f.remove();
  }
}

function login(r: Running, username: string | undefined, password = `${username}-pw`): Promise<BrokerClient> {
  return connect({ port: r.port, codec: 'json', plugins: r.host, ...(username !== undefined ? { username, password } : {}) }).then((c) => {
    r.clients.push(c);
    return c;
  });
}

/** Resolves with the error a client's connection ended with (set up before the broker acts). */
function ended(c: BrokerClient): Promise<Error | undefined> {
  return new Promise((resolve) => c.once('close', (err) => resolve(err)));
}

async function failure(p: Promise<unknown>): Promise<BrokerError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof BrokerError, `expected a BrokerError, got ${String(err)}`);
  return err as BrokerError;
}

async function reloadFailure(p: Promise<unknown>): Promise<AccessReloadError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof AccessReloadError, `expected an AccessReloadError, got ${String(err)}`);
  return err as AccessReloadError;
}

test('removing a user or changing a password disconnects those clients (AUTH_FAILED); the others keep connection and subscriptions', async () => {
  await withBroker(async (r, f) => {
    const alice = await login(r, 'alice');
    const aliceSub = await alice.subscribe('/weather');
    const bob = await login(r, 'bob');
    const bobSub = await bob.subscribe('/weather');
    const carol = await login(r, 'carol');
    const bobEnded = ended(bob);
    const carolEnded = ended(carol);
    let aliceClosed = false;
    alice.once('close', () => (aliceClosed = true));

    await updatePasswordFile(f.passwordFile, 'bob', undefined); // trellis passwd -D
    await updatePasswordFile(f.passwordFile, 'carol', 'carol-new-pw');
    const result = await r.broker.reloadAccess();
    assert.equal(result, { users: 2, rules: 7, clients: 3, disconnected: 2, subscriptionsDropped: 0 });

    const bobErr = await bobEnded;
    assert.ok(bobErr instanceof BrokerError && bobErr.wireCode === BrokerErrorCode.AUTH_FAILED, String(bobErr));
    assert.match(bobErr.message, /user "bob" is no longer accepted/);
    const carolErr = await carolEnded;
    assert.ok(carolErr instanceof BrokerError && carolErr.wireCode === BrokerErrorCode.AUTH_FAILED, String(carolErr));
    assert.ok(bobSub.closed, "bob's subscription ended with his connection");

    // bob may no longer log in; carol only with her new password
    assert.is((await failure(login(r, 'bob'))).wireCode, BrokerErrorCode.AUTH_FAILED);
    assert.is((await failure(login(r, 'carol'))).wireCode, BrokerErrorCode.AUTH_FAILED);
    const carol2 = await login(r, 'carol', 'carol-new-pw');
    await carol2.publish('/weather/now', 'sunny', { ack: true });
    // alice was not touched: same connection, same subscription, still served
    assert.equal((await take(aliceSub, 1)).map((m) => m.value), ['sunny']);
    assert.is(aliceClosed, false, 'alice is still connected');
    assert.equal(r.broker.clients().map((c) => c.subscriptions), [['/weather'], []], "alice's subscription is still there, carol2 has none");
  });
});

test('revoking a read grant stops deliveries to that subscriber (plain, wildcard, acknowledged) while the others keep receiving', async () => {
  await withBroker(async (r, f) => {
    const alice = await login(r, 'alice');
    const aliceWeather = await alice.subscribe('/weather');
    const bob = await login(r, 'bob');
    const bobWeather = await bob.subscribe('/weather');
    const bobWild = await bob.subscribe('/sensors/+/temp');
    const bobAcked: ReliableClient = await connectReliable({ port: r.port, codec: 'json', plugins: r.host, username: 'bob', password: 'bob-pw', reconnect: false, clientId: 'bob-phone' });
    try {
      const bobAckedSub = await bobAcked.subscribe('/weather');
      const carol = await login(r, 'carol'); // writes and reads /weather
      const carolWeather = await carol.subscribe('/weather');
      const sensors = await login(r, 'alice'); // writes /sensors/#
      await carol.publish('/weather/temperature', 20, { ack: true });
      await sensors.publish('/sensors/hall/temp', 1, { ack: true });
      for (const s of [aliceWeather, bobWeather, bobAckedSub, carolWeather]) assert.equal((await take(s, 1)).map((m) => m.value), [20]);
      assert.equal((await take(bobWild, 1)).map((m) => m.value), [1]);
      let bobClosed = false;
      bob.once('close', () => (bobClosed = true));

      await writeFile(f.aclFile, ACL_BOB_REVOKED);
      const result = await r.broker.reloadAccess();
      assert.is(result.disconnected, 0);
      assert.is(result.subscriptionsDropped, 3, "bob's /weather, /sensors/+/temp and acknowledged /weather");
      assert.is(r.broker.stats().delivery.ackedSubscriptions, 0);
      assert.equal(r.broker.clients().find((c) => c.id === 2)?.subscriptions, [], "bob's connection holds no subscription");

      await carol.publish('/weather/temperature', 21, { ack: true });
      await sensors.publish('/sensors/hall/temp', 2, { ack: true });
      assert.equal((await take(aliceWeather, 1)).map((m) => m.value), [21], 'alice still receives');
      assert.equal((await take(carolWeather, 1)).map((m) => m.value), [21], 'carol still receives');
      assert.is(await arrivedWithin(bobWeather, 200), 0, 'bob no longer receives /weather');
      assert.is(bobWild.buffered, 0, 'nor /sensors/+/temp');
      assert.is(bobAckedSub.buffered, 0, 'nor on his acknowledged subscription');
      assert.is(bobClosed, false, 'bob is still connected (he may still read /sensors/kitchen)');
      const kitchen = await bob.subscribe('/sensors/kitchen');
      await sensors.publish('/sensors/kitchen', 3, { ack: true });
      assert.equal((await take(kitchen, 1)).map((m) => m.value), [3], 'and what the new ACL grants him works');
      assert.is((await failure(bob.subscribe('/weather'))).wireCode, BrokerErrorCode.NOT_ALLOWED, 'subscribing again is refused');
    } finally {
      await bobAcked.close();
    }
  });
});

test("a persistent session whose client is away loses a revoked subscription and what it held; after a restart too", async () => {
  await withBroker(async (r, f) => {
    const away = await connectReliable({ port: r.port, codec: 'json', plugins: r.host, username: 'bob', password: 'bob-pw', reconnect: false, clientId: 'bob-phone' });
    await away.subscribe('/weather');
    await away.close();
    const carol = await login(r, 'carol');
    await carol.publish('/weather/now', 'queued for bob', { ack: true });
    assert.is(r.broker.stats().delivery.queued, 1);
    await writeFile(f.aclFile, ACL_BOB_REVOKED);
    const result = await r.broker.reloadAccess();
    assert.equal([result.clients, result.disconnected, result.subscriptionsDropped], [1, 0, 1]);
    assert.equal([r.broker.stats().delivery.ackedSubscriptions, r.broker.stats().delivery.queued], [0, 0], 'the subscription and the message it held are gone');
    const back = await connectReliable({ port: r.port, codec: 'json', plugins: r.host, username: 'bob', password: 'bob-pw', reconnect: false, clientId: 'bob-phone' });
    try {
      assert.equal(back.restored.map((s) => s.topic), [], 'the resumed session lists no /weather subscription');
    } finally {
      await back.close();
    }
  });
  // across a restart: the rules read at start-up apply to the sessions restored from the store
  const f = await files();
  const state = await mkdtemp(join(tmpdir(), 'trellis-access-reload-state-'));
  const start = async () => {
    const host = testHost();
    const broker = createBroker({ host, lingerMs: 200, store: await openLmdbStore(state), access: { provider: 'file', options: { passwordFile: f.passwordFile, aclFile: f.aclFile } } });
    const { port } = await broker.listen(0);
    return { broker, port, host, stop: async () => (await broker.close({ timeoutMs: 1000 }), await host.dispose()) };
  };
  let b = await start();
  try {
    const c = await connectReliable({ port: b.port, codec: 'json', plugins: b.host, username: 'bob', password: 'bob-pw', reconnect: false, clientId: 'bob-phone' });
    await c.subscribe('/weather');
    await c.close();
    await b.stop();
    await writeFile(f.aclFile, ACL_BOB_REVOKED);
    b = await start();
    assert.equal([b.broker.stats().delivery.sessions, b.broker.stats().delivery.ackedSubscriptions], [1, 0]);
  } finally {
    await b.stop();
    await f.remove();
    await rm(state, { recursive: true, force: true });
  }
});

test('in a Redis cluster, a session resumed on a reloaded node does not bring back a revoked subscription another node still lists', async () => {
  if (!HAVE_REDIS) {
    console.log('SKIP cluster reload test: redis-server is absent');
    return;
  }
  const f = await files();
  const redis = await startRedis();
  const host = testHost();
  const nodes: { broker: Broker; cluster: RedisCluster; port: number }[] = [];
  const clients: ReliableClient[] = [];
  const node = async () => {
    const broker = createBroker({ host, lingerMs: 200, access: { provider: 'file', options: { passwordFile: f.passwordFile, aclFile: f.aclFile } } });
    const cluster = await joinRedisCluster(broker, { url: redis.url });
    const { port } = await broker.listen(0);
    nodes.push({ broker, cluster, port });
    return nodes.at(-1)!;
  };
  const bob = async (port: number) => {
    const c = await connectReliable({ port, codec: 'json', plugins: host, username: 'bob', password: 'bob-pw', reconnect: false, clientId: 'bob-phone' });
    clients.push(c);
    return c;
  };
  try {
    const [a, b] = [await node(), await node()];
    const first = await bob(a.port);
    await first.subscribe('/weather');
    await first.close();
    await until(() => b.broker.stats().delivery.ackedSubscriptions === 1, 5000, 'node B mirroring the session');
    await writeFile(f.aclFile, ACL_BOB_REVOKED);
    const result = await b.broker.reloadAccess(); // node A is not reloaded: Redis still lists /weather
    assert.is(result.subscriptionsDropped, 1, "node B's copy of the session");
    const again = await bob(b.port);
    assert.equal(again.restored.map((s) => s.topic), [], 'resumed on node B: the revoked subscription stays gone');
    assert.is(b.broker.stats().delivery.ackedSubscriptions, 0);
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
    for (const n of nodes) {
      await n.cluster.close();
      await n.broker.close({ timeoutMs: 500 });
    }
    await host.dispose();
    await redis.stop();
    await f.remove();
  }
});

test('revoking a write grant refuses the very next publish; other writers go on', async () => {
  await withBroker(async (r, f) => {
    const bob = await login(r, 'bob');
    const alice = await login(r, 'alice');
    await bob.publish('/weather/temperature', 19, { ack: true }); // allowed, and the answer is cached for the connection
    await writeFile(f.aclFile, ACL_BOB_REVOKED);
    await r.broker.reloadAccess();
    const denied = await failure(bob.publish('/weather/temperature', 20, { ack: true }));
    assert.is(denied.wireCode, BrokerErrorCode.NOT_ALLOWED);
    assert.match(denied.message, /user "bob" may not publish to "\/weather\/temperature"/);
    assert.equal(r.broker.lastValue('/weather/temperature'), 19, 'the refused publish was not applied');
    await alice.publish('/sensors/kitchen', 22, { ack: true });
    await alice.publish('/sensors/kitchen', 23, { ack: true });
    assert.equal(r.broker.lastValue('/sensors/kitchen'), 23);
  });
});

test('a file that does not parse (or read) changes nothing: the old rules stay in force, all of them, and the error names file and line', async () => {
  await withBroker(async (r, f) => {
    const alice = await login(r, 'alice');
    const aliceSub = await alice.subscribe('/weather');
    const bob = await login(r, 'bob');
    let closed = 0;
    for (const c of [alice, bob]) c.once('close', () => closed++);

    // a valid password file (without alice) beside a broken ACL: neither is applied
    await updatePasswordFile(f.passwordFile, 'alice', undefined);
    const withoutAlice = await readFile(f.passwordFile, 'utf8');
    await writeFile(f.aclFile, `${ACL_BOB_REVOKED}\ntopic sometimes /x\n`);
    const acl = await reloadFailure(r.broker.reloadAccess());
    assert.is(acl.code, ErrorCodes.ACCESS_RELOAD);
    assert.is(acl.file, f.aclFile);
    assert.is(acl.line, ACL_BOB_REVOKED.split('\n').length + 1);
    assert.match(acl.message, /previous rules stay in force: .*acl:\d+: access must be read, write or readwrite/);

    // a hash in the wrong format
    await writeFile(f.passwordFile, `${withoutAlice}mallory:plaintext\n`);
    await writeFile(f.aclFile, ACL_BOB_REVOKED);
    const hash = await reloadFailure(r.broker.reloadAccess());
    assert.is(hash.file, f.passwordFile);
    assert.is(hash.line, 3);
    assert.match(hash.message, /passwd:3: the hash of "mallory" is not a \$scrypt\$ hash/);

    // an ACL that cannot be read, beside a password file with a new user
    await writeFile(f.passwordFile, withoutAlice);
    await updatePasswordFile(f.passwordFile, 'dave', 'dave-pw');
    await rm(f.aclFile);
    const missing = await reloadFailure(r.broker.reloadAccess());
    assert.match(missing.message, /ENOENT/);
    assert.is(missing.file, f.aclFile);

    // proof the old rules are whole: alice (gone from the new file) still reads and writes and may
    // log in again, dave (only in the refused file) may not, bob is refused what the old ACL refuses
    assert.is(closed, 0, 'nobody was disconnected');
    await bob.publish('/weather/temperature', 5, { ack: true }); // granted by the old ACL only
    assert.equal((await take(aliceSub, 1)).map((m) => m.value), [5]);
    await alice.publish('/sensors/x', 1, { ack: true });
    const alice2 = await login(r, 'alice');
    await alice2.publish('/sensors/y', 1, { ack: true });
    assert.is((await failure(login(r, 'dave'))).wireCode, BrokerErrorCode.AUTH_FAILED, 'a user only in a refused file does not get in');
    assert.is((await failure(bob.publish('/sensors/x', 2, { ack: true }))).wireCode, BrokerErrorCode.NOT_ALLOWED);

    // once the files are good again, they apply
    await writeFile(f.aclFile, ACL);
    const ok = await r.broker.reloadAccess();
    assert.is(ok.users, 3, 'bob, carol, dave');
    assert.is(ok.disconnected, 2, "alice's two connections");
  });
});

test('turning anonymous access off disconnects anonymous clients; a later reload keeps it off', async () => {
  await withBroker(
    async (r) => {
      const anon = await login(r, undefined);
      const anonSub = await anon.subscribe('public/news');
      const alice = await login(r, 'alice');
      const anonEnded = ended(anon);
      const result = await r.broker.reloadAccess({ allowAnonymous: false });
      assert.is(result.disconnected, 1);
      const err = await anonEnded;
      assert.ok(err instanceof BrokerError && err.wireCode === BrokerErrorCode.AUTH_FAILED, String(err));
      assert.match(err.message, /anonymous access was turned off/);
      assert.ok(anonSub.closed);
      assert.is((await failure(login(r, undefined))).wireCode, BrokerErrorCode.AUTH_FAILED, 'and stays off for new clients');
      await alice.publish('/sensors/x', 1, { ack: true });
      // a later reload without options keeps the options given before (anonymous stays off)
      await r.broker.reloadAccess();
      assert.is((await failure(login(r, undefined))).wireCode, BrokerErrorCode.AUTH_FAILED);

    },
    { allowAnonymous: true },
  );
});

test('a login still being checked when the rules are reloaded is judged by the new rules (an in-process provider)', async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let checking = false;
  let revoked = false;
  const provider: AccessProvider = {
    async authenticate({ username }) {
      if (username === 'slow') {
        checking = true;
        await gate; // the password check is still running…
      }
      return { username };
    },
    authorize: () => true,
    reload: () => {
      revoked = true; // …when the user is revoked
      return { users: 0, rules: 0 };
    },
    admits: () => !revoked,
  };
  const r = await startBroker({ authFailureDelayMs: 0, access: provider });
  try {
    const early = await login(r, 'early', 'x');
    const earlyEnded = ended(early);
    const racing = login(r, 'slow', 'x').then(() => undefined, (e: unknown) => e); // settled either way: no unhandled rejection if an assertion fails first
    await until(() => checking, 5000, 'the slow login to be under way');
    assert.equal(await r.broker.reloadAccess(), { users: 0, rules: 0, clients: 1, disconnected: 1, subscriptionsDropped: 0 });
    release();
    const refused = await racing;
    assert.ok(refused instanceof BrokerError && refused.wireCode === BrokerErrorCode.AUTH_FAILED, `the login that began under the old rules does not get in: ${String(refused)}`);
    assert.ok((await earlyEnded) instanceof BrokerError);
  } finally {
    release();
    await r.stop();
  }
});

test('without access control, or with a provider that cannot reload, reloadAccess is refused with a typed error', async () => {
  const plain = await startBroker();
  try {
    const err = await plain.broker.reloadAccess().then(() => undefined, (e: unknown) => e);
    assert.is((err as { code?: string }).code, ErrorCodes.STATE);
  } finally {
    await plain.stop();
  }
  const fixed = await startBroker({ access: { authenticate: () => ({ username: 'x' }), authorize: () => true } });
  try {
    const err = await reloadFailure(fixed.broker.reloadAccess());
    assert.match(err.message, /cannot reload/);
  } finally {
    await fixed.stop();
  }
});

const MAIN = fileURLToPath(new URL('../../cli/src/main.ts', import.meta.url));

test('trellis broker reloads its password and ACL files on SIGHUP (a real process), and keeps them when the new ones are broken', async () => {
  const f = await files();
  const child = spawn(process.execPath, ['--conditions=trellis-source', '--import', 'tsx', MAIN, 'broker', '--port', '0', '--in-memory', '--password-file', f.passwordFile, '--acl-file', f.aclFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (err += c));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const host = testHost();
  const clients: BrokerClient[] = [];
  const as = async (username: string, password = `${username}-pw`) => {
    const c = await connect({ port, codec: 'json', plugins: host, username, password });
    clients.push(c);
    return c;
  };
  let port = 0;
  try {
    await until(() => /listening on 127\.0\.0\.1:\d+/.test(out), 60_000, `the broker to start: ${out} ${err}`);
    port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(out)![1]);
    const alice = await as('alice');
    const aliceSub = await alice.subscribe('/weather');
    const bob = await as('bob');
    const bobEnded = ended(bob);

    await updatePasswordFile(f.passwordFile, 'bob', undefined);
    await writeFile(f.aclFile, ACL_BOB_REVOKED);
    child.kill('SIGHUP');
    await until(() => /access reloaded/.test(out), 20_000, `the reload: ${out} ${err}`);
    assert.match(out, /access reloaded from .*passwd and .*acl: 2 users, 5 rules; 1 of 2 clients disconnected, 0 subscriptions dropped/);
    const bobErr = await bobEnded;
    assert.ok(bobErr instanceof BrokerError && bobErr.wireCode === BrokerErrorCode.AUTH_FAILED, String(bobErr));
    const carol = await as('carol');
    await carol.publish('/weather/now', 'sunny', { ack: true });
    assert.equal((await take(aliceSub, 1, 10_000)).map((m) => m.value), ['sunny'], 'alice kept her connection and subscription');

    // a broken ACL: refused, logged, the process goes on with the rules of the last good reload
    await writeFile(f.aclFile, 'user carol\ntopic readwrite /weather/#\nbogus line\n'); // alice would lose /weather
    child.kill('SIGHUP');
    await until(() => /access reload refused/.test(err), 20_000, `the refusal: ${out} ${err}`);
    assert.match(err, /acl:3: unknown keyword "bogus"/);
    await carol.publish('/weather/now', 'rain', { ack: true });
    assert.equal((await take(aliceSub, 1, 10_000)).map((m) => m.value), ['rain'], 'alice still reads /weather: the broken file changed nothing');
    assert.is((await failure(as('bob'))).wireCode, BrokerErrorCode.AUTH_FAILED, 'bob stays out');
    assert.is(child.exitCode, null, 'SIGHUP does not stop the broker');
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await host.dispose();
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000).unref())]);
    if (code === 'hung') child.kill('SIGKILL');
    await f.remove();
    assert.is(code, 0, `the broker exits cleanly on SIGTERM: ${err}`);
  }
});

const TLS = fileURLToPath(new URL('./fixtures/tls/', import.meta.url));

/** The SHA-256 fingerprint of the certificate the broker presents to a new connection. */
function presented(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.destroy();
    });
    s.once('error', reject);
  });
}

test('reloadTls serves a new certificate to new connections; open TLS connections keep going; a bad key changes nothing', async () => {
  const [cert, key, ca, cert2, key2] = await Promise.all(['broker.crt', 'broker.key', 'ca.crt', 'reload.crt', 'reload.key'].map((n) => readFile(join(TLS, n), 'utf8')));
  const r = await startBroker({ tls: { cert: cert!, key: key! } });
  try {
    const first = new X509Certificate(cert!).fingerprint256;
    const second = new X509Certificate(cert2!).fingerprint256;
    assert.is(await presented(r.port), first);
    const old = await connect({ port: r.port, codec: 'json', plugins: r.host, tls: true, ca: ca! });
    r.clients.push(old);
    const sub = await old.subscribe('/t');
    assert.throws(() => r.broker.reloadTls({ cert: cert2!, key: key! }), (e: Error) => /TLS reload refused/.test(e.message), 'a key that does not match the certificate');
    assert.is(await presented(r.port), first, 'the refused pair changed nothing');
    r.broker.reloadTls({ cert: cert2!, key: key2! });
    assert.is(await presented(r.port), second);
    const fresh = await connect({ port: r.port, codec: 'json', plugins: r.host, tls: true, ca: cert2! });
    r.clients.push(fresh);
    await fresh.publish('/t', 'over the new certificate', { ack: true });
    assert.equal((await take(sub, 1)).map((m) => m.value), ['over the new certificate'], 'the connection made before the reload still works');
  } finally {
    await r.stop();
  }
  const plain = await startBroker();
  try {
    assert.throws(() => plain.broker.reloadTls({ cert: cert!, key: key! }), /does not serve TLS/);
  } finally {
    await plain.stop();
  }
});

test('trellis broker --tls-cert/--tls-key re-reads the certificate on SIGHUP (a real process)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-broker-tls-hup-'));
  const [certFile, keyFile] = [join(dir, 'broker.crt'), join(dir, 'broker.key')];
  await copyFile(join(TLS, 'broker.crt'), certFile);
  await copyFile(join(TLS, 'broker.key'), keyFile);
  const child = spawn(process.execPath, ['--conditions=trellis-source', '--import', 'tsx', MAIN, 'broker', '--port', '0', '--in-memory', '--tls-cert', certFile, '--tls-key', keyFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await until(() => /listening on 127\.0\.0\.1:\d+ with TLS/.test(out), 60_000, `the broker to start: ${out}`);
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(out)![1]);
    assert.is(await presented(port), new X509Certificate(await readFile(certFile)).fingerprint256);
    await copyFile(join(TLS, 'reload.crt'), certFile);
    await copyFile(join(TLS, 'reload.key'), keyFile);
    child.kill('SIGHUP');
    await until(() => /TLS certificate reloaded/.test(out), 20_000, `the reload: ${out}`);
    assert.is(await presented(port), new X509Certificate(await readFile(certFile)).fingerprint256);
    assert.not.match(out, /access reload/, 'no access files: nothing else is reloaded');
  } finally {
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000).unref())]);
    if (code === 'hung') child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    assert.is(code, 0, out);
  }
});

test('trellis broker --help tells that SIGHUP re-reads the access files', async () => {
  const { runCommand } = await import('@trellis/sdk/cli');
  const { PassThrough } = await import('node:stream');
  const { broker } = await import('../src/cli.js');
  const stdout = new PassThrough();
  let text = '';
  stdout.on('data', (c) => (text += c));
  await runCommand('trellis broker', broker, ['--help'], { stdout, stderr: new PassThrough(), signal: new AbortController().signal });
  assert.match(text, /SIGHUP re-reads --password-file and --acl-file/);
});

test.run();
