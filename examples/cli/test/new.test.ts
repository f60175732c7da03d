/**
 * `trellis new`: each kind of scaffolded plugin package builds, passes its own uvu test, loads
 * with `--plugin-dir` (the DHT node included) and packs to dist/ + README without its tests.
 * The packages are created under os.tmpdir(); their node_modules is this checkout's.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, symlink, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const test = suite('trellis new');
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd: string, timeout = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as any).code === 'number' ? (err as any).code : 1) : 0, stdout, stderr });
    });
  });
}

const trellis = (cwd: string, ...args: string[]) => run(process.execPath, ['--conditions=trellis-source', '--import', 'tsx', MAIN, ...args], cwd, 60_000);

let work = '';

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'trellis-new-'));
  await symlink(join(ROOT, 'node_modules'), join(work, 'node_modules'), 'dir');
});

test.after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

test('scaffolds the three kinds; a bad kind, name or an existing folder is a usage error', async () => {
  for (const kind of ['strategy', 'codec', 'dht-routing']) {
    const r = await trellis(work, 'new', kind, `my-${kind}`);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`created ${kind} plugin my-${kind}`));
  }
  const pkg = JSON.parse(await readFile(join(work, 'my-codec', 'package.json'), 'utf8'));
  assert.equal(pkg.contributes, { serializers: [{ id: 'my-codec', title: 'my-codec', description: 'TODO: what my-codec does', wireId: 128 }] });
  assert.is(typeof pkg.engines.trellis, 'string');
  assert.is((await trellis(work, 'new', 'widget', 'x')).code, 2);
  assert.is((await trellis(work, 'new', 'strategy', 'Bad Name')).code, 2);
  const again = await trellis(work, 'new', 'strategy', 'my-strategy');
  assert.is(again.code, 2);
  assert.match(again.stderr, /exists and is not empty/);
});

test('each package builds and passes its own test', async () => {
  for (const kind of ['strategy', 'codec', 'dht-routing']) {
    const r = await run(NPM, ['test'], join(work, `my-${kind}`), 180_000);
    assert.is(r.code, 0, `${kind}: ${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /Passed:\s+[1-9]/);
    assert.not.match(r.stdout, /Failed/);
  }
});

test('each package packs to dist/, README and package.json, without tests or sources', async () => {
  for (const kind of ['strategy', 'codec', 'dht-routing']) {
    const r = await run(NPM, ['pack', '--dry-run', '--json', '--ignore-scripts'], join(work, `my-${kind}`));
    assert.is(r.code, 0, r.stderr);
    const files = (JSON.parse(r.stdout)[0].files as { path: string }[]).map((f) => f.path).sort();
    assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts') && files.includes('README.md'), files.join(' '));
    assert.equal(files.filter((f) => !f.startsWith('dist/') && f !== 'README.md' && f !== 'package.json'), []);
  }
});

test('trellis plugins --plugin-dir activates all three; a missing --plugin-dir folder is an error', async () => {
  const r = await trellis(work, 'plugins', '--no-discover', '--plugin-dir', work, '--activate', '--json');
  assert.is(r.code, 0, r.stderr);
  const list = JSON.parse(r.stdout) as { id: string; state: string }[];
  assert.equal(list.map((p) => `${p.id}:${p.state}`).sort(), ['my-codec:active', 'my-dht-routing:active', 'my-strategy:active']);
  const missing = await trellis(work, 'plugins', '--plugin-dir', join(work, 'nope'));
  assert.is(missing.code, 1);
  assert.match(missing.stderr, /plugin folder ".*nope" does not exist/);
});

test('a DHT node runs with the custom routing plugin from --plugin-dir', async () => {
  const child = spawn(process.execPath, ['--conditions=trellis-source', '--import', 'tsx', MAIN, 'dht', 'node', '--port', '0', '--plugin-dir', join(work, 'my-dht-routing'), '--routing', 'my-dht-routing'], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      let err = '';
      const timer = setTimeout(() => reject(new Error(`no output in 60 s: ${err}`)), 60_000);
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('\n')) {
          clearTimeout(timer);
          resolve(out.split('\n')[0]!);
        }
      });
      child.stderr.on('data', (d) => (err += d));
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`exited ${code}: ${err}`));
      });
    });
    const info = JSON.parse(line) as { id: unknown; address: [string, number] };
    // a node bound to loopback names itself after localhost, as the original does (issue 15)
    assert.is(info.address[0], 'localhost');
    assert.ok(info.address[1] > 0);
  } finally {
    child.kill('SIGTERM');
  }
});

test.run();
