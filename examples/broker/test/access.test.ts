/**
 * Who may publish and read what: the broker with an access provider (the shipped access-file
 * plugin, and an in-process one), credentials from the TS and Python clients and the CLI.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect, BrokerError, BrokerErrorCode, type AccessProvider, type BrokerClient } from '@trellis/sdk';
import { runCommand } from '@trellis/sdk/cli';
import { updatePasswordFile } from '@trellis/plugin-access-file/passwords';
import { startBroker, take, arrivedWithin, type Running } from './helpers.js';
import { passwd, broker, pub, topics } from '../src/cli.js';

const ACL = `
topic read public/#
user alice
topic readwrite /sensors/#
topic read /weather/#
user bob
topic write /weather/temperature
topic read /sensors/kitchen
pattern readwrite /users/%u/#
`;

async function files(): Promise<{ dir: string; passwordFile: string; aclFile: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-broker-access-'));
  const passwordFile = join(dir, 'passwd');
  const aclFile = join(dir, 'acl');
  await updatePasswordFile(passwordFile, 'alice', 'alice-pw');
  await updatePasswordFile(passwordFile, 'bob', 'bob-pw');
  await writeFile(aclFile, ACL);
  return { dir, passwordFile, aclFile };
}

function login(r: Running, username: string | undefined, password: string, role: 'producer' | 'consumer' | 'both' = 'both'): Promise<BrokerClient> {
  return connect({ port: r.port, codec: 'json', plugins: r.host, role, ...(username !== undefined ? { username, password } : {}) }).then((c) => {
    r.clients.push(c);
    return c;
  });
}

async function failure(p: Promise<unknown>): Promise<BrokerError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof BrokerError, `expected a BrokerError, got ${String(err)}`);
  return err as BrokerError;
}

test('the file provider: wrong passwords and anonymous clients are refused with AUTH_FAILED', async () => {
  const f = await files();
  const r = await startBroker({ access: { provider: 'file', options: { passwordFile: f.passwordFile, aclFile: f.aclFile } } });
  try {
    assert.is((await failure(login(r, 'alice', 'wrong'))).wireCode, BrokerErrorCode.AUTH_FAILED);
    assert.is((await failure(login(r, 'mallory', 'alice-pw'))).wireCode, BrokerErrorCode.AUTH_FAILED);
    const anon = await failure(login(r, undefined, ''));
    assert.is(anon.wireCode, BrokerErrorCode.AUTH_FAILED);
    assert.match(anon.message, /anonymous access is off/);
    const alice = await login(r, 'alice', 'alice-pw');
    await alice.publish('/sensors/kitchen', 21, { ack: true });
  } finally {
    await r.stop();
    await rm(f.dir, { recursive: true, force: true });
  }
});

test('publish and subscribe follow the ACL; the listing shows only readable topics', async () => {
  const f = await files();
  const r = await startBroker({ access: { provider: 'file', options: { passwordFile: f.passwordFile, aclFile: f.aclFile } } });
  try {
    const alice = await login(r, 'alice', 'alice-pw');
    const bob = await login(r, 'bob', 'bob-pw');
    await bob.publish('/weather/temperature', 19, { ack: true });
    await alice.publish('/sensors/kitchen', 21, { ack: true });
    await alice.publish('/sensors/hall', 22, { ack: true });
    const weather = await alice.subscribe('/weather'); // a prefix subscription reads /weather/#: granted
    assert.equal((await take(weather, 1))[0]!.value, 19);
    assert.equal(await alice.listTopics(), ['/sensors/hall', '/sensors/kitchen', '/weather/temperature']);
    assert.equal(await bob.listTopics(), ['/sensors/kitchen'], 'bob reads only /sensors/kitchen');
    const kitchen = await bob.subscribe('/sensors/kitchen/+').catch((e: Error) => e);
    assert.ok(kitchen instanceof BrokerError && kitchen.wireCode === BrokerErrorCode.NOT_ALLOWED, 'bob may read /sensors/kitchen, not what is under it');

    const bob2 = await login(r, 'bob', 'bob-pw');
    const denied = await failure(bob2.publish('/sensors/kitchen', 0, { ack: true }));
    assert.is(denied.wireCode, BrokerErrorCode.NOT_ALLOWED);
    assert.match(denied.message, /user "bob" may not publish to "\/sensors\/kitchen"/);
    const bob3 = await login(r, 'bob', 'bob-pw');
    assert.is((await failure(bob3.subscribe('/'))).wireCode, BrokerErrorCode.NOT_ALLOWED, 'nobody but a "#" reader sees everything');
    const bob4 = await login(r, 'bob', 'bob-pw');
    assert.is((await failure(bob4.clear('/sensors/kitchen'))).wireCode, BrokerErrorCode.NOT_ALLOWED, 'clearing is writing');
    const bob5 = await login(r, 'bob', 'bob-pw');
    const own = await bob5.subscribe('/users/bob');
    await bob5.publish('/users/bob/inbox', 'hi', { ack: true });
    assert.equal((await take(own, 1))[0]!.topic, '/users/bob/inbox');
    assert.equal(r.broker.lastValue('/sensors/kitchen'), 21, 'nothing a refused client sent was applied');
    assert.is(await arrivedWithin(weather, 50), 0);
  } finally {
    await r.stop();
    await rm(f.dir, { recursive: true, force: true });
  }
});

test('anonymous access is an explicit option, limited by the ACL lines before any user', async () => {
  const f = await files();
  const r = await startBroker({ access: { provider: 'file', options: { passwordFile: f.passwordFile, aclFile: f.aclFile, allowAnonymous: true } } });
  try {
    const alice = await login(r, 'alice', 'alice-pw');
    const anon = await login(r, undefined, '');
    const sub = await anon.subscribe('public/news');
    await failure(alice.publish('public/news', 1, { ack: true })); // alice has no write grant there
    const anon2 = await login(r, undefined, '');
    assert.is((await failure(anon2.publish('public/news', 1, { ack: true }))).wireCode, BrokerErrorCode.NOT_ALLOWED);
    assert.is(sub.buffered, 0);
  } finally {
    await r.stop();
    await rm(f.dir, { recursive: true, force: true });
  }
});

test('budgets count per user when clients log in, whatever their address', async () => {
  const f = await files();
  const r = await startBroker({ maxRetainedBytesPerClient: 4000, access: { provider: 'file', options: { passwordFile: f.passwordFile, aclFile: f.aclFile } } });
  try {
    const a1 = await login(r, 'alice', 'alice-pw');
    await a1.publish('/sensors/a', 'x'.repeat(3000), { ack: true });
    const a2 = await connect({ port: r.port, codec: 'json', plugins: r.host, localAddress: '127.0.0.3', username: 'alice', password: 'alice-pw' });
    r.clients.push(a2);
    assert.match((await failure(a2.publish('/sensors/b', 'y'.repeat(3000), { ack: true }))).message, /user:alice.*per client/);
    const b = await login(r, 'bob', 'bob-pw');
    await b.publish('/weather/temperature', 'z'.repeat(3000), { ack: true }); // bob has his own budget
  } finally {
    await r.stop();
    await rm(f.dir, { recursive: true, force: true });
  }
});

test('an in-process access provider works too; one that throws refuses (fails closed) and is reported', async () => {
  const seen: string[] = [];
  const provider: AccessProvider = {
    authenticate: ({ username, password }) => (username === 'svc' && password === 'token' ? { username } : undefined),
    authorize: (_id, action, topic) => {
      seen.push(`${action} ${topic}`);
      if (topic.startsWith('/boom')) throw new Error('directory down');
      return topic.startsWith('/ok');
    },
  };
  const r = await startBroker({ access: provider });
  try {
    const c = await login(r, 'svc', 'token');
    const sub = await c.subscribe('/ok');
    await c.publish('/ok/1', 1, { ack: true });
    await take(sub, 1);
    const c2 = await login(r, 'svc', 'token');
    const boom = await failure(c2.publish('/boom', 1, { ack: true }));
    assert.is(boom.wireCode, BrokerErrorCode.NOT_ALLOWED);
    assert.equal(seen.slice(0, 2), ['subscribe /ok/#', 'publish /ok/1']);
  } finally {
    await r.stop();
  }
});

test('the Python client logs in with username/password (or the environment)', async () => {
  const f = await files();
  const r = await startBroker({ access: { provider: 'file', options: { passwordFile: f.passwordFile, aclFile: f.aclFile } } });
  try {
    const PYTHON_DIR = fileURLToPath(new URL('../python', import.meta.url));
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('python3', ['-c', `
from trellis_broker import JSONQueue, PRODUCER, CONSUMER, BrokerError
c = JSONQueue("/sensors", _type=CONSUMER, username="alice", password="alice-pw")
JSONQueue("/sensors/x", _type=PRODUCER).push(5, ack=True)   # alice from the environment
print(c.pull())
try:
    JSONQueue("/sensors/x", _type=PRODUCER, username="alice", password="bad")
except BrokerError as e:
    print(e.name)
`], { env: { ...process.env, PYTHONPATH: PYTHON_DIR, TRELLIS_BROKER_PORT: String(r.port), TRELLIS_BROKER_HOST: '127.0.0.1', TRELLIS_BROKER_USER: 'alice', TRELLIS_BROKER_PASSWORD: 'alice-pw' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let o = '';
      let e = '';
      child.stdout.on('data', (c) => (o += c));
      child.stderr.on('data', (c) => (e += c));
      const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('close', (code) => {
        clearTimeout(t);
        if (code === 0) resolve(o);
        else reject(new Error(`python3 exited ${code}: ${e}`));
      });
    });
    assert.equal(out.trim().split('\n'), ["('/sensors/x', 5)", 'AUTH_FAILED']);
  } finally {
    await r.stop();
    await rm(f.dir, { recursive: true, force: true });
  }
});

test('trellis passwd writes the password file the broker reads', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-passwd-cli-'));
  try {
    const file = join(dir, 'passwd');
    const { PassThrough } = await import('node:stream');
    const io = () => {
      const stderr = new PassThrough();
      let err = '';
      stderr.on('data', (c) => (err += c));
      return { stdout: new PassThrough(), stderr, signal: new AbortController().signal, err: () => err };
    };
    const a = io();
    assert.is(await runCommand('trellis passwd', passwd, [file, 'carol', '--password', 'pw1'], a), 0, a.err());
    assert.match(a.err(), /added carol/);
    const r = await startBroker({ access: { provider: 'file', options: { passwordFile: file } } });
    try {
      await login(r, 'carol', 'pw1');
      assert.is((await failure(login(r, 'carol', 'pw2'))).wireCode, BrokerErrorCode.AUTH_FAILED);
    } finally {
      await r.stop();
    }
    const d = io();
    assert.is(await runCommand('trellis passwd', passwd, ['-D', file, 'carol'], d), 0, d.err());
    const bad = io();
    assert.is(await runCommand('trellis passwd', passwd, [file, 'bad:name', '--password', 'x'], bad), 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('trellis broker --password-file --acl-file; pub/sub/topics take --user and --password', async () => {
  const f = await files();
  const { PassThrough } = await import('node:stream');
  const io = (signal = new AbortController().signal) => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (c) => (out += c));
    stderr.on('data', (c) => (err += c));
    return { stdout, stderr, signal, out: () => out, err: () => err };
  };
  const controller = new AbortController();
  const brokerIo = io(controller.signal);
  const running = runCommand('trellis broker', broker, ['--port', '0', '--password-file', f.passwordFile, '--acl-file', f.aclFile], brokerIo);
  try {
    for (let i = 0; i < 500 && !/listening on/.test(brokerIo.out()); i++) await new Promise((res) => setTimeout(res, 10));
    const port = /listening on 127\.0\.0\.1:(\d+)/.exec(brokerIo.out())![1]!;
    const ok = io();
    assert.is(await runCommand('trellis pub', pub, ['--port', port, '--topic', '/sensors/t', '--user', 'alice', '--password', 'alice-pw', '7'], ok), 0, ok.err());
    const refused = io();
    assert.is(await runCommand('trellis pub', pub, ['--port', port, '--topic', '/sensors/t', '--user', 'bob', '--password', 'bob-pw', '8'], refused), 1);
    assert.match(refused.err(), /NOT_ALLOWED/);
    const anonymous = io();
    assert.is(await runCommand('trellis topics', topics, ['--port', port], anonymous), 1);
    assert.match(anonymous.err(), /AUTH_FAILED/);
    const listed = io();
    assert.is(await runCommand('trellis topics', topics, ['--port', port, '-u', 'alice', '--password', 'alice-pw'], listed), 0, listed.err());
    assert.equal(JSON.parse(listed.out()), ['/sensors/t']);
    const usage = io();
    assert.is(await runCommand('trellis broker', broker, ['--port', '0', '--acl-file', f.aclFile], usage), 2);
    assert.match(usage.err(), /--allow-anonymous/);
  } finally {
    controller.abort();
    assert.is(await running, 0);
    await rm(f.dir, { recursive: true, force: true });
  }
});

test('password guessing is slowed: refusals wait, and logins in progress per address are capped', async () => {
  const f = await files();
  const r = await startBroker({ authFailureDelayMs: 500, maxLoginsInProgressPerAddress: 2, access: { provider: 'file', options: { passwordFile: f.passwordFile } } });
  try {
    const t0 = Date.now();
    const results = await Promise.all(Array.from({ length: 5 }, () => login(r, 'alice', 'guess').then(() => 'in', (e: Error) => `${Date.now() - t0}ms ${e.message}`)));
    const slow = results.filter((m) => /not accepted/.test(m));
    const capped = results.filter((m) => /too many logins in progress/.test(m));
    assert.is(slow.length + capped.length, 5, results.join('\n'));
    assert.ok(slow.length >= 1 && slow.length <= 2 && capped.length >= 3, results.join('\n'));
    for (const m of slow) assert.ok(Number.parseInt(m) >= 450, `a refusal came after ${m}`);
    await login(r, 'alice', 'alice-pw'); // the right password still gets in afterwards
  } finally {
    await r.stop();
    await rm(f.dir, { recursive: true, force: true });
  }
});

test('a broker whose access provider cannot start refuses to listen', async () => {
  let err: unknown;
  try {
    await startBroker({ access: { provider: 'file', options: { passwordFile: '/nonexistent/trellis/passwd' } } });
  } catch (e) {
    err = e;
  }
  assert.match(String(err), /ENOENT|nonexistent/);
});

test.run();
