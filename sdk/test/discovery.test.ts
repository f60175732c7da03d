/**
 * How the plugin host finds plugins the way Node finds packages: discovery of the app's installed
 * plugin packages (marker: `engines.trellis`), package names resolved from the app, folders, and
 * errors for what cannot be found. Each test builds a small app in a temporary folder.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, mkdir, rm, writeFile, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHost, ErrorCodes, TrellisError } from '@trellis/sdk';
import { memoryLogger } from './helpers.js';

const test = suite('plugin discovery');

interface Pkg {
  name: string;
  marker?: boolean;
  strategy?: string;
}

async function writePackage(dir: string, { name, marker = true, strategy }: Pkg): Promise<void> {
  await mkdir(dir, { recursive: true });
  const manifest: Record<string, unknown> = { name, version: '1.0.0', type: 'module', main: './index.js' };
  if (marker) manifest.engines = { node: '>=20', trellis: '^0.1.0' };
  if (strategy) manifest.contributes = { strategies: [{ id: strategy, title: strategy }] };
  // an exports map that hides package.json: discovery must still find the folder
  manifest.exports = { '.': './index.js' };
  await writeFile(join(dir, 'package.json'), JSON.stringify(manifest));
  await writeFile(
    join(dir, 'index.js'),
    strategy
      ? `export function activate(ctx) { ctx.routing.registerStrategy(${JSON.stringify(strategy)}, ({ backends }) => ({ select: () => backends[0], update() {}, setBackends() {} })); }\n`
      : 'export function activate() {}\n',
  );
}

/** A temporary app: package.json with `deps`, and the packages installed in its node_modules. */
async function makeApp(deps: Record<string, Record<string, string>>, installed: Pkg[]): Promise<string> {
  const app = await mkdtemp(join(tmpdir(), 'trellis-discovery-'));
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, ...deps }));
  for (const p of installed) await writePackage(join(app, 'node_modules', p.name), p);
  return app;
}

const backends = [{ id: 'a', host: '127.0.0.1', port: 1 }];

test('createHost() discovers the marked plugin packages listed in the app package.json, and nothing else', async () => {
  const app = await makeApp(
    { dependencies: { '@acme/trellis-first': '1.0.0', 'left-pad': '1.0.0' }, devDependencies: { 'trellis-dev-plugin': '1.0.0' } },
    [
      { name: '@acme/trellis-first', strategy: 'first' },
      { name: 'left-pad', marker: false },
      { name: 'trellis-dev-plugin', strategy: 'dev' },
      { name: 'installed-not-listed', strategy: 'hidden' },
    ],
  );
  try {
    const host = createHost({ appRoot: app, logger: memoryLogger() });
    await host.scan();
    assert.equal(host.plugins().map((p) => p.id).sort(), ['@acme/trellis-first', 'trellis-dev-plugin']);
    const s = await host.routing.createStrategy('first', { backends, options: {} });
    assert.is(s.select()?.id, 'a');
    assert.is(host.plugin('@acme/trellis-first')?.state, 'active');
    const missing = await host.routing.createStrategy('hidden', { backends, options: {} }).then(() => undefined, (err: Error) => err);
    assert.match(String(missing?.message), /hidden/);
    await host.dispose();
  } finally {
    await rm(app, { recursive: true, force: true });
  }
});

test('the app is the nearest package.json at or above appRoot (the default is process.cwd())', async () => {
  const app = await makeApp({ dependencies: { 'trellis-p': '1.0.0' } }, [{ name: 'trellis-p', strategy: 'p' }]);
  try {
    const nested = join(app, 'src', 'deep');
    await mkdir(nested, { recursive: true });
    const host = createHost({ appRoot: nested, logger: memoryLogger() });
    assert.equal(host.appRoots, [app]);
    await host.scan();
    assert.equal(host.plugins().map((p) => p.id), ['trellis-p']);
    await host.dispose();
  } finally {
    await rm(app, { recursive: true, force: true });
  }
});

test('plugins: package names resolve from the app, folders from its root; discover: false skips the rest', async () => {
  const app = await makeApp({ dependencies: { 'trellis-listed': '1.0.0' } }, [
    { name: 'trellis-listed', strategy: 'listed' },
    { name: '@acme/trellis-named', strategy: 'named' },
  ]);
  try {
    await writePackage(join(app, 'my-plugins', 'local'), { name: 'local-plugin', strategy: 'local' });
    const host = createHost({ appRoot: app, discover: false, plugins: ['@acme/trellis-named', './my-plugins'], logger: memoryLogger() });
    await host.scan();
    assert.equal(host.plugins().map((p) => p.id).sort(), ['@acme/trellis-named', 'local-plugin']);
    await host.routing.createStrategy('named', { backends, options: {} });
    await host.routing.createStrategy('local', { backends, options: {} });
    await host.dispose();
  } finally {
    await rm(app, { recursive: true, force: true });
  }
});

test('one plugin reached twice (a name, a folder and discovery, through a symlink) loads once', async () => {
  const app = await makeApp({ dependencies: { 'trellis-twice': '1.0.0' } }, []);
  try {
    await writePackage(join(app, 'packages', 'twice'), { name: 'trellis-twice', strategy: 'twice' });
    await mkdir(join(app, 'node_modules'), { recursive: true });
    await symlink(join(app, 'packages', 'twice'), join(app, 'node_modules', 'trellis-twice'), 'dir');
    const log = memoryLogger();
    const host = createHost({ appRoot: app, plugins: ['trellis-twice', './packages/twice'], logger: log });
    await host.scan();
    assert.equal(host.plugins().map((p) => `${p.id}:${p.state}`), ['trellis-twice:discovered']);
    await host.dispose();
  } finally {
    await rm(app, { recursive: true, force: true });
  }
});

test('a missing plugin package or folder is an error at createHost, not a warning', async () => {
  const app = await makeApp({}, []);
  try {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        assert.ok(err instanceof TrellisError);
        return [(err as TrellisError).code, (err as Error).message];
      }
      throw new Error('expected a throw');
    };
    const [c1, m1] = code(() => createHost({ appRoot: app, plugins: ['@acme/not-installed'] }));
    assert.is(c1, ErrorCodes.PLUGIN_NOT_FOUND);
    assert.match(m1!, /"@acme\/not-installed" is not installed/);
    const [c2, m2] = code(() => createHost({ appRoot: app, dirs: [join(app, 'nope')] }));
    assert.is(c2, ErrorCodes.PLUGIN_NOT_FOUND);
    assert.match(m2!, /plugin folder ".*nope" does not exist/);
    const [c3] = code(() => createHost({ appRoot: app, plugins: ['./nope'] }));
    assert.is(c3, ErrorCodes.PLUGIN_NOT_FOUND);
  } finally {
    await rm(app, { recursive: true, force: true });
  }
});

test('an app without package.json discovers nothing and still takes in-process plugins', async () => {
  const empty = await mkdtemp(join(tmpdir(), 'trellis-nopkg-'));
  try {
    const host = createHost({
      appRoot: empty,
      logger: memoryLogger(),
      plugins: [{ manifest: { name: 'inline', version: '1.0.0', engines: { trellis: '^0.1.0' }, contributes: { strategies: [{ id: 'inline', title: 'i' }] } }, activate(ctx) { ctx.routing.registerStrategy('inline', ({ backends: b }) => ({ select: () => b[0], update() {}, setBackends() {} })); } }],
    });
    await host.scan();
    assert.equal(host.plugins().map((p) => p.id), ['inline']);
    await host.dispose();
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
});

test.run();
