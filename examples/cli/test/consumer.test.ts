/**
 * The consumer test: Trellis used the way a user outside this repository uses it. Every
 * publishable workspace is packed with `npm pack` (from the built dist/), the tarballs are
 * installed into a fresh app under os.tmpdir() (registry packages from the local npm cache), and
 * there the app: runs a balancer with a shipped strategy found by discovery; scaffolds, tests,
 * packs and installs its own strategy plugin package and balances with it; runs a broker where
 * JSON, XML and Pickle clients exchange a value; runs two DHT nodes with chord-fingers; runs
 * `npx trellis --help`, `plugins` and `lb`; and type-checks a TypeScript app (strict, NodeNext)
 * against the installed types. Nothing comes from this checkout but the tarballs.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const test = suite('consumer app outside the repository');
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const NPX = process.platform === 'win32' ? 'npx.cmd' : 'npx';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd: string, timeout = 180_000): Promise<Run> {
  return new Promise((resolve) => {
    // npm_config_* of the outer `npm test` (workspace, prefix…) must not leak into the app's npm.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
    execFile(cmd, args, { cwd, timeout, maxBuffer: 32 * 1024 * 1024, env: { ...env, NODE_OPTIONS: '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as any).code === 'number' ? (err as any).code : 1) : 0, stdout, stderr });
    });
  });
}

const ok = (r: Run, what: string) => assert.is(r.code, 0, `${what} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);

let work = '';
let app = '';
let tarballs = '';
const children: ChildProcess[] = [];
const servers: Server[] = [];

/** Publishable workspaces: every workspace package.json that is not private. */
async function publishable(): Promise<string[]> {
  const names: string[] = [];
  const dirs = ['sdk', ...(await readdir(join(ROOT, 'plugins'))).map((d) => `plugins/${d}`), ...(await readdir(join(ROOT, 'examples'))).map((d) => `examples/${d}`)];
  for (const dir of dirs) {
    const file = join(ROOT, dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(await readFile(file, 'utf8'));
    if (!pkg.private) names.push(pkg.name);
  }
  return names;
}

const tarballOf = (name: string) => `${name.replace(/^@/, '').replace('/', '-')}-0.1.0.tgz`;

/** Back-ends that answer their own name. */
async function backend(name: string): Promise<number> {
  const server = createServer((_req, res) => res.end(name));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'trellis-consumer-'));
  tarballs = join(work, 'tarballs');
  app = join(work, 'app');
  await mkdir(tarballs);
  await mkdir(app);
});

function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

test.after(async () => {
  for (const c of children) stop(c, 'SIGKILL');
  for (const s of servers) s.close();
  if (work) await rm(work, { recursive: true, force: true });
});

test('npm pack of every publishable workspace: built code and types, README and LICENSE, no tests or sources', async () => {
  assert.ok(existsSync(join(ROOT, 'sdk/dist/index.js')), 'build first (npm test builds through pretest)');
  const names = await publishable();
  assert.ok(names.includes('@trellis/sdk') && names.includes('@trellis/cli') && names.includes('@trellis/plugin-round-robin'), names.join(' '));
  const r = await run(NPM, ['pack', '--json', '--ignore-scripts', '--pack-destination', tarballs, ...names.flatMap((n) => ['-w', n])], ROOT);
  ok(r, 'npm pack');
  const packs = JSON.parse(r.stdout) as { name: string; filename: string; files: { path: string }[] }[];
  assert.is(packs.length, names.length);
  for (const p of packs) {
    const files = p.files.map((f) => f.path);
    assert.ok(files.includes('README.md') && files.includes('LICENSE') && files.includes('package.json'), `${p.name}: ${files.join(' ')}`);
    assert.ok(files.some((f) => f.startsWith('dist/') && f.endsWith('.js')), `${p.name} has no dist/*.js`);
    assert.ok(files.some((f) => f.startsWith('dist/') && f.endsWith('.d.ts')), `${p.name} has no .d.ts`);
    assert.equal(files.filter((f) => /(^|\/)(test|tests|fixtures|vectors|src)\//.test(f) || f.endsWith('.map')), [], `${p.name} ships dev files`);
    const pkg = JSON.parse(await readFile(join(ROOT, p.name === '@trellis/sdk' ? 'sdk' : p.name.startsWith('@trellis/plugin-') ? `plugins/${p.name.slice(16)}` : `examples/${p.name === '@trellis/cli' ? 'cli' : p.name.slice(17)}`, 'package.json'), 'utf8'));
    assert.is(pkg.engines?.node, '>=20.18.1', `${p.name} engines.node`);
    assert.is(pkg.exports?.['./package.json'], './package.json', `${p.name} exports ./package.json`);
    if (p.name.startsWith('@trellis/plugin-')) {
      assert.is(typeof pkg.engines.trellis, 'string', `${p.name} marker`);
      assert.is(pkg.peerDependencies?.['@trellis/sdk'], '^0.1.0', `${p.name} peer`);
      assert.is(pkg.dependencies, undefined, `${p.name} has no runtime dependency`);
    }
  }
});

test('a fresh app installs the tarballs (registry packages from the npm cache)', async () => {
  const names = await publishable();
  const spec = (n: string) => `file:../tarballs/${tarballOf(n)}`;
  // What a user lists; `overrides` makes the packages' own @trellis/* dependencies come from the
  // tarballs too, since they are not on the registry from here.
  const direct = ['@trellis/sdk', '@trellis/plugin-round-robin', '@trellis/plugin-json', '@trellis/plugin-xml', '@trellis/plugin-pickle', '@trellis/plugin-chord-fingers', '@trellis/plugin-access-file', '@trellis/cli'];
  await writeFile(
    join(app, 'package.json'),
    JSON.stringify(
      {
        name: 'consumer-app',
        version: '1.0.0',
        private: true,
        type: 'module',
        dependencies: Object.fromEntries(direct.map((n) => [n, spec(n)])),
        devDependencies: { typescript: '^5.9.0', '@types/node': '^20.19.0', tsx: '^4.20.0', uvu: '^0.5.6' },
        overrides: Object.fromEntries(names.map((n) => [n, spec(n)])),
      },
      null,
      2,
    ),
  );
  ok(await run(NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], app, 300_000), 'npm install');
  for (const n of direct) assert.ok(existsSync(join(app, 'node_modules', n, 'package.json')), n);
});

test('importing the core entry loads neither undici nor an engine', async () => {
  await writeFile(
    join(app, 'core.mjs'),
    `import { createRequire } from 'node:module';
const sdk = await import('@trellis/sdk');
const require = createRequire(import.meta.url);
console.log(JSON.stringify({
  createHost: typeof sdk.createHost,
  engines: ['createBalancer', 'createBroker', 'createUdpNode'].filter((n) => n in sdk),
  undici: Object.keys(require.cache).filter((k) => k.includes('undici')).length,
}));
`,
  );
  const r = await run(process.execPath, ['core.mjs'], app);
  ok(r, 'core.mjs');
  assert.equal(JSON.parse(r.stdout), { createHost: 'function', engines: [], undici: 0 });
});

test('an app running with its own `source` condition still loads the installed packages', async () => {
  // monorepos often resolve their own packages with --conditions=source: the published exports
  // must not answer that condition with TypeScript files the tarballs do not ship
  const r = await run(process.execPath, ['--conditions=source', '--conditions=development', 'core.mjs'], app);
  ok(r, 'core.mjs with --conditions=source');
  assert.equal(JSON.parse(r.stdout), { createHost: 'function', engines: [], undici: 0 });
  for (const dir of ['sdk', 'plugin-round-robin', 'cli']) {
    const pkg = JSON.parse(await readFile(join(app, 'node_modules', '@trellis', dir, 'package.json'), 'utf8'));
    const conditions = new Set<string>();
    const walk = (v: unknown): void => {
      if (v === null || typeof v !== 'object') return;
      for (const [k, x] of Object.entries(v)) {
        if (!k.startsWith('.')) conditions.add(k);
        walk(x);
      }
    };
    walk(pkg.exports);
    assert.not.ok(conditions.has('source'), `@trellis/${dir} answers the "source" condition`);
  }
});

test('the installed trellis command: --help, new, plugins', async () => {
  const help = await run(NPX, ['--no-install', 'trellis', '--help'], app);
  ok(help, 'trellis --help');
  for (const c of ['lb', 'broker', 'dht', 'demo', 'plugins', 'new']) assert.match(help.stdout, new RegExp(`\\n  ${c}\\s`));
  for (const c of ['lb', 'broker', 'dht', 'demo']) ok(await run(NPX, ['--no-install', 'trellis', c, '--help'], app), `trellis ${c} --help`);
  // the plugin author's path: scaffold, build + test, pack, install as a package of the app
  ok(await run(NPX, ['--no-install', 'trellis', 'new', 'strategy', 'my-strategy', '--dir', 'plugin-src'], app), 'trellis new');
  const pluginDir = join(app, 'plugin-src', 'my-strategy');
  const tested = await run(NPM, ['test'], pluginDir, 300_000);
  ok(tested, 'npm test of the scaffolded plugin');
  assert.match(tested.stdout, /Passed:\s+2/);
  ok(await run(NPM, ['pack', '--pack-destination', tarballs, '--loglevel=error'], pluginDir), 'npm pack of the scaffolded plugin');
  ok(await run(NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', `file:../tarballs/my-strategy-0.1.0.tgz`], app, 300_000), 'npm install my-strategy');
  const list = await run(NPX, ['--no-install', 'trellis', 'plugins', '--json'], app);
  ok(list, 'trellis plugins');
  const ids = (JSON.parse(list.stdout) as { id: string; state: string }[]).map((p) => p.id);
  for (const id of ['@trellis/plugin-round-robin', '@trellis/plugin-json', '@trellis/plugin-xml', '@trellis/plugin-pickle', '@trellis/plugin-chord-fingers', 'my-strategy']) {
    assert.ok(ids.includes(id), `${id} missing from ${ids.join(' ')}`);
  }
});

test('a balancer uses a shipped strategy found by discovery and the custom strategy package', async () => {
  const ports = [await backend('a'), await backend('b')];
  await writeFile(
    join(app, 'lb.mjs'),
    `import { createHost } from '@trellis/sdk';
import { createBalancer } from '@trellis/sdk/balancer';
const host = createHost(); // no path: the plugin packages listed in this app's package.json
const out = {};
for (const strategy of ['round-robin', 'my-strategy']) {
  const lb = await createBalancer({ host, strategy, backends: ${JSON.stringify(ports.map((p) => `127.0.0.1:${p}`))}, healthCheck: false });
  const { port } = await lb.listen(0, '127.0.0.1');
  out[strategy] = [];
  for (let i = 0; i < 4; i++) out[strategy].push(await (await fetch('http://127.0.0.1:' + port + '/')).text());
  await lb.close();
}
out.plugins = host.plugins().filter((p) => p.state === 'active').map((p) => p.id).sort();
await host.dispose();
console.log(JSON.stringify(out));
`,
  );
  const r = await run(process.execPath, ['lb.mjs'], app, 60_000);
  ok(r, 'lb.mjs');
  const out = JSON.parse(r.stdout);
  assert.equal(out['round-robin'], ['a', 'b', 'a', 'b']);
  assert.equal(out['my-strategy'], ['a', 'b', 'a', 'b']);
  assert.equal(out.plugins, ['@trellis/plugin-round-robin', 'my-strategy']);
});

test('npx trellis lb balances with a shipped strategy, and with the custom one from --plugin-dir', async () => {
  const ports = [await backend('x'), await backend('y')];
  for (const args of [['--strategy', 'round-robin'], ['--plugin-dir', 'plugin-src/my-strategy', '--strategy', 'my-strategy']]) {
    // its own process group, so stopping it stops npx's child too
    const child = spawn(NPX, ['--no-install', 'trellis', 'lb', '--port', '0', ...args, ...ports.flatMap((p) => ['--backend', `127.0.0.1:${p}`]), '--health-interval', '0'], { cwd: app, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    children.push(child);
    const line = await firstLine(child);
    const port = Number(/:(\d+),/.exec(line)?.[1]);
    assert.ok(port > 0, line);
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(await (await fetch(`http://127.0.0.1:${port}/`)).text());
    assert.equal([...seen].sort(), ['x', 'y']);
    stop(child);
  }
});

function firstLine(child: ChildProcess, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no output in ${timeoutMs} ms: ${err}`)), timeoutMs);
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(out.split('\n')[0]!);
      }
    });
    child.stderr!.on('data', (d) => (err += d));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code}: ${out}${err}`));
    });
  });
}

test('a broker: JSON, XML and Pickle clients exchange a value', async () => {
  await writeFile(
    join(app, 'broker.mjs'),
    `import { createHost } from '@trellis/sdk';
import { createBroker, connect } from '@trellis/sdk/broker';
const host = createHost();
const broker = createBroker({ host });
const { port } = await broker.listen(0);
const [xml, pickle, json] = await Promise.all(['xml', 'pickle', 'json'].map((codec) => connect({ port, codec, plugins: host })));
const subs = await Promise.all([xml, pickle].map((c) => c.subscribe('/t')));
const value = { n: 42, big: 2n ** 70n, list: ['x', 1.5, true, null] };
await json.publish('/t/v', value, { ack: true });
const got = [];
for (const sub of subs) {
  const { value: next } = await sub[Symbol.asyncIterator]().next();
  got.push(next.value);
}
const show = (v) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() + 'n' : x));
console.log(JSON.stringify({ sent: show(value), got: got.map(show) }));
await Promise.all([xml, pickle, json].map((c) => c.close()));
await broker.close({ timeoutMs: 1000 });
await host.dispose();
`,
  );
  const r = await run(process.execPath, ['broker.mjs'], app, 60_000);
  ok(r, 'broker.mjs');
  const out = JSON.parse(r.stdout);
  assert.equal(out.got, [out.sent, out.sent]);
});

test('a broker with the file access provider reloads its password file; a broken file is an AccessReloadError', async () => {
  const pw = join(app, 'broker.passwd');
  ok(await run(NPX, ['trellis', 'passwd', pw, 'alice', '--password', 'alice-pw'], app, 60_000), 'trellis passwd alice');
  ok(await run(NPX, ['trellis', 'passwd', pw, 'bob', '--password', 'bob-pw'], app, 60_000), 'trellis passwd bob');
  await writeFile(
    join(app, 'access.mjs'),
    `import { writeFile } from 'node:fs/promises';
import { createHost, AccessReloadError } from '@trellis/sdk';
import { createBroker, connect } from '@trellis/sdk/broker';
import { updatePasswordFile } from '@trellis/plugin-access-file/passwords';
const file = ${JSON.stringify(pw)};
const host = createHost();
const broker = createBroker({ host, access: { provider: 'file', options: { passwordFile: file } } });
const { port } = await broker.listen(0);
const alice = await connect({ port, codec: 'json', plugins: host, username: 'alice', password: 'alice-pw' });
const bob = await connect({ port, codec: 'json', plugins: host, username: 'bob', password: 'bob-pw' });
const aliceError = new Promise((resolve) => alice.on('error', (e) => resolve(e.message)));
alice.on('close', () => undefined);
await updatePasswordFile(file, 'alice', undefined);
const reloaded = await broker.reloadAccess();
const why = await aliceError;
await bob.publish('/still/here', 1, { ack: true });
await writeFile(file, 'not a password line\\n');
let refused;
try {
  await broker.reloadAccess();
} catch (err) {
  refused = { isClass: err instanceof AccessReloadError, code: err.code };
}
await bob.publish('/still/here', 2, { ack: true });
console.log(JSON.stringify({ reloaded, why: /AUTH_FAILED|no longer accepted/.test(String(why)), refused }));
await bob.close();
await broker.close({ timeoutMs: 1000 });
await host.dispose();
`,
  );
  const r = await run(process.execPath, ['access.mjs'], app, 60_000);
  ok(r, 'access.mjs');
  const out = JSON.parse(r.stdout);
  // (no ACL file: no rule count, which JSON leaves out)
  assert.equal(out.reloaded, { users: 1, clients: 2, disconnected: 1, subscriptionsDropped: 0 });
  assert.is(out.why, true);
  assert.equal(out.refused, { isClass: true, code: 'TRELLIS_ERR_ACCESS_RELOAD' });
});

test('two DHT nodes with chord-fingers store and find a key', async () => {
  // 32-bit ids: at the reference's 10 bits two random ports hash to the same id once in 1,024
  // runs, and the join is then (rightly) refused with "id … is taken" (seen once)
  await writeFile(
    join(app, 'dht.mjs'),
    `import { createHost } from '@trellis/sdk';
import { createUdpNode } from '@trellis/sdk/dht';
const host = createHost();
const options = { bits: 32, routing: 'chord-fingers', stabilizeMs: 50, fixFingersMs: 100, checkPredecessorMs: 100 };
const a = await createUdpNode(host, options);
const b = await createUdpNode(host, options);
await a.listen(0, '127.0.0.1');
await b.listen(0, '127.0.0.1');
await b.join(a.address);
await a.put('greeting', 'hello');
const got = await b.get('greeting');
console.log(JSON.stringify({ got, fingers: host.plugin('@trellis/plugin-chord-fingers')?.state }));
await a.close();
await b.close();
await host.dispose();
`,
  );
  const r = await run(process.execPath, ['dht.mjs'], app, 60_000);
  ok(r, 'dht.mjs');
  assert.equal(JSON.parse(r.stdout), { got: 'hello', fingers: 'active' });
});

test('a TypeScript app type-checks against the installed types (strict, NodeNext)', async () => {
  await mkdir(join(app, 'ts'));
  await writeFile(
    join(app, 'ts', 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'] }, include: ['*.ts'] }),
  );
  const source = `import { createHost, TrellisError, type InProcessPlugin, type Strategy, type PluginHost } from '@trellis/sdk';
import { createBalancer, type Balancer } from '@trellis/sdk/balancer';
import { createBroker, connect } from '@trellis/sdk/broker';
import { createUdpNode } from '@trellis/sdk/dht';
import { createJsonCodec } from '@trellis/plugin-json';
import { activate } from '@trellis/plugin-round-robin';

const first: InProcessPlugin = {
  manifest: { name: 'first', version: '1.0.0', engines: { trellis: '^0.1.0' }, contributes: { strategies: [{ id: 'first', title: 'First' }] } },
  activate(ctx) {
    ctx.routing.registerStrategy('first', ({ backends }): Strategy => ({ select: () => backends[0], update() {}, setBackends() {} }));
    const codec = createJsonCodec(ctx.errors);
    ctx.log.info(\`json wire id \${codec.wireId}\`);
  },
};
export async function main(): Promise<void> {
  const host: PluginHost = createHost({ plugins: ['@trellis/plugin-round-robin', first] });
  const lb: Balancer = await createBalancer({ host, strategy: 'first', backends: ['127.0.0.1:8081'] });
  const broker = createBroker({ host });
  const client = await connect({ port: 7000, codec: 'json', plugins: host });
  const node = await createUdpNode(host, { bits: 10 });
  const n: number = activate.length;
  // @ts-expect-error a strategy id is a string
  await createBalancer({ host, strategy: 42, backends: [] });
  try {
    await host.activate('nope');
  } catch (err) {
    if (err instanceof TrellisError) console.log(err.code, n);
  }
  await Promise.all([lb.close(), broker.close(), client.close(), node.close()]);
}
`;
  await writeFile(join(app, 'ts', 'app.ts'), source);
  const r = await run(NPX, ['--no-install', 'tsc', '-p', 'ts'], app, 180_000);
  ok(r, 'tsc');
  // and the check can fail: a wrong type is reported
  await writeFile(join(app, 'ts', 'bad.ts'), `import { createHost } from '@trellis/sdk';\nconst host = createHost({ discover: 'yes' });\nexport { host };\n`);
  const bad = await run(NPX, ['--no-install', 'tsc', '-p', 'ts'], app, 180_000);
  assert.is.not(bad.code, 0);
  assert.match(bad.stdout, /bad\.ts\(2,\d+\): error TS\d+/);
});

test.run();
