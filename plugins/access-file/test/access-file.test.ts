/** The access-file plugin: salted scrypt password files, mosquitto-style ACLs, loaded through a host. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readFile, writeFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHost, createLogger } from '@trellis/sdk';
import { hashPassword, verifyPassword, parsePasswordFile, updatePasswordFile, checkUser } from '../src/passwords.js';
import { parseAcl, allowed, covers, AclFileError } from '../src/acl.js';
import { createFileAccess } from '../src/index.js';

test('hashes are salted scrypt and verify only the right password', async () => {
  const a = await hashPassword('s3cret');
  const b = await hashPassword('s3cret');
  assert.match(a, /^\$scrypt\$ln=14,r=8,p=1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
  assert.is.not(a, b, 'a fresh salt every time');
  assert.ok(await verifyPassword('s3cret', a));
  assert.not.ok(await verifyPassword('s3cret ', a));
  assert.not.ok(await verifyPassword('s3cret', 'plain-text'));
  const users = new Map([['alice', a]]);
  assert.ok(await checkUser(users, 'alice', 's3cret'));
  assert.not.ok(await checkUser(users, 'mallory', 's3cret'), 'unknown users are refused (after a decoy check)');
});

test('password files: written atomically, owner-only, updated and deleted like mosquitto_passwd', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-passwd-'));
  try {
    const file = join(dir, 'passwd');
    assert.is(await updatePasswordFile(file, 'alice', 'one'), 'added');
    assert.is(await updatePasswordFile(file, 'bob', 'two'), 'added');
    assert.is(await updatePasswordFile(file, 'alice', 'three'), 'updated');
    const users = parsePasswordFile(await readFile(file, 'utf8'));
    assert.equal([...users.keys()], ['alice', 'bob']);
    assert.ok(await verifyPassword('three', users.get('alice')!));
    assert.is((await stat(file)).mode & 0o777, 0o600);
    assert.is(await updatePasswordFile(file, 'bob', undefined), 'deleted');
    assert.is(await updatePasswordFile(file, 'bob', undefined), 'absent');
    assert.not.ok(/two|three|one/.test(await readFile(file, 'utf8')), 'no clear text');
    assert.throws(() => parsePasswordFile('alice:plaintext\n', 'f'), /f:1: the hash of "alice" is not a \$scrypt\$ hash/);
    assert.throws(() => parsePasswordFile('bad user:x\n', 'f'), /f:1/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const ACL = `
# anonymous clients
topic read public/#

user alice
topic readwrite /sensors/#
topic read /weather/#

user bob
topic write /weather/temperature

pattern readwrite /users/%u/#
`;

test('ACLs: per-user grants, anonymous lines first, %u patterns, read vs write, everything else refused', () => {
  const acl = parseAcl(ACL);
  assert.ok(allowed(acl, 'alice', 'publish', '/sensors/kitchen'));
  assert.ok(allowed(acl, 'alice', 'subscribe', '/sensors/#'));
  assert.ok(allowed(acl, 'alice', 'subscribe', '/weather/+/celsius'));
  assert.not.ok(allowed(acl, 'alice', 'publish', '/weather/x'), 'read only');
  assert.not.ok(allowed(acl, 'alice', 'subscribe', '#'), 'not everything');
  assert.ok(allowed(acl, 'bob', 'publish', '/weather/temperature'));
  assert.not.ok(allowed(acl, 'bob', 'subscribe', '/weather/temperature'), 'write only');
  assert.ok(allowed(acl, 'bob', 'subscribe', '/users/bob/#'));
  assert.not.ok(allowed(acl, 'bob', 'subscribe', '/users/alice/#'), "%u is the user's own name");
  assert.ok(allowed(acl, undefined, 'subscribe', 'public/news'));
  assert.not.ok(allowed(acl, undefined, 'publish', 'public/news'));
  assert.not.ok(allowed(acl, undefined, 'subscribe', '/users/undefined/#'), 'patterns are for authenticated users only');
  assert.ok(covers('/a/+/c', '/a/b/c'));
  assert.not.ok(covers('/a/+/c', '/a/+/#'));
  assert.throws(() => parseAcl('topic sometimes /x'), /access must be read, write or readwrite/);
  assert.throws(() => parseAcl('topic read /a/#/b'), /"#" may only be the last segment/);
  assert.throws(() => parseAcl('grant /x'), /unknown keyword/);
});

test('the plugin provides access provider "file" through a real PluginHost', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-access-'));
  const host = createHost({ logger: createLogger('test', 'silent') });
  try {
    const passwordFile = join(dir, 'passwd');
    const aclFile = join(dir, 'acl');
    await updatePasswordFile(passwordFile, 'alice', 'pw');
    await writeFile(aclFile, ACL);
    assert.ok(host.access.providers().length === 0 || host.access.providers().includes('file'));
    await host.scan();
    assert.ok(host.access.providers().includes('file'));
    const provider = await host.access.create('file', { passwordFile, aclFile });
    assert.equal(await provider.authenticate({ username: 'alice', password: 'pw', remote: '127.0.0.1' }), { username: 'alice' });
    assert.is(await provider.authenticate({ username: 'alice', password: 'nope', remote: '127.0.0.1' }), undefined);
    assert.is(await provider.authenticate({ remote: '127.0.0.1' }), undefined, 'anonymous is off unless asked for');
    assert.ok(provider.authorize({ username: 'alice' }, 'publish', '/sensors/x'));
    const open = await host.access.create('file', { aclFile, allowAnonymous: true });
    assert.equal(await open.authenticate({ remote: '127.0.0.1' }), { username: undefined });
    let failed = '';
    try {
      await host.access.create('file', { passwordFile: join(dir, 'missing') });
    } catch (err) {
      failed = String(err);
    }
    assert.match(failed, /ENOENT|missing/);
  } finally {
    await host.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});

test('reload() swaps both files in together or not at all; admits() follows the password each client logged in with', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-access-reload-'));
  try {
    const passwordFile = join(dir, 'passwd');
    const aclFile = join(dir, 'acl');
    await updatePasswordFile(passwordFile, 'alice', 'a');
    await updatePasswordFile(passwordFile, 'bob', 'b');
    await writeFile(aclFile, 'user alice\ntopic readwrite /a/#\nuser bob\ntopic read /b/#\n');
    const p = await createFileAccess({ options: { passwordFile, aclFile } });
    const alice = (await p.authenticate({ username: 'alice', password: 'a', remote: '127.0.0.1' }))!;
    const bob = (await p.authenticate({ username: 'bob', password: 'b', remote: '127.0.0.1' }))!;
    assert.ok(p.admits!(alice) && p.admits!(bob));

    // bob's password changes and the ACL breaks on line 3: nothing of either file applies
    await updatePasswordFile(passwordFile, 'bob', 'b2');
    await writeFile(aclFile, 'user alice\ntopic readwrite /a/#\ntopic maybe /b/#\n');
    const err = await Promise.resolve(p.reload!()).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof AclFileError, String(err));
    assert.is((err as AclFileError).file, aclFile);
    assert.is((err as AclFileError).line, 3);
    assert.ok(p.admits!(bob), "bob's old password is still the one in force");
    assert.ok(await p.authenticate({ username: 'bob', password: 'b', remote: '127.0.0.1' }));
    assert.not.ok(await p.authenticate({ username: 'bob', password: 'b2', remote: '127.0.0.1' }));
    assert.ok(p.authorize(bob, 'subscribe', '/b/#'));

    // the files fixed: both apply at once
    await writeFile(aclFile, 'user alice\ntopic readwrite /a/#\n');
    assert.equal(await p.reload!(), { users: 2, rules: 1 });
    assert.ok(p.admits!(alice), 'alice logged in with the password still in force');
    assert.not.ok(p.admits!(bob), 'bob logged in with a password that changed');
    assert.not.ok(p.authorize(bob, 'subscribe', '/b/#'));
    const bob2 = (await p.authenticate({ username: 'bob', password: 'b2', remote: '127.0.0.1' }))!;
    assert.ok(p.admits!(bob2));

    // options given to reload replace the old ones (and stay for the next reload)
    assert.not.ok(p.admits!({ username: undefined }));
    await p.reload!({ passwordFile, aclFile, allowAnonymous: true });
    assert.ok(p.admits!({ username: undefined }));
    await p.reload!();
    assert.ok(p.admits!({ username: undefined }));
    await updatePasswordFile(passwordFile, 'alice', undefined);
    assert.equal(await p.reload!({ passwordFile, allowAnonymous: true }), { users: 1 }, 'without an ACL file there are no rules to count');
    assert.not.ok(p.admits!(alice), 'a removed user is no longer admitted');
    assert.equal(await p.authenticate({ username: 'alice', password: 'a', remote: '127.0.0.1' }), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
