import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const test = suite('trellis command');
const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../../../sdk/test/fixtures/plugins', import.meta.url));

function trellis(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--conditions=trellis-source', '--import', 'tsx', MAIN, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as any).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('--help lists the commands and --version prints the SDK version', async () => {
  const help = await trellis('--help');
  assert.is(help.code, 0);
  assert.match(help.stdout, /Usage: trellis <command>/);
  assert.match(help.stdout, /plugins/);
  const version = await trellis('--version');
  assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
});

test('a bad flag or command gives one line on stderr and exit code 2', async () => {
  const bad = await trellis('plugins', '--bogus');
  assert.is(bad.code, 2);
  assert.is(bad.stderr.trim().split('\n').length, 1);
  assert.match(bad.stderr, /unknown option '--bogus'/);
  const unknown = await trellis('frobnicate');
  assert.is(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
});

test('plugins --help documents its options', async () => {
  const r = await trellis('plugins', '--help');
  assert.is(r.code, 0);
  assert.match(r.stdout, /--plugin-dir <dir>/);
});

test('plugins lists discovered plugins with versions, contributions and state', async () => {
  const r = await trellis('plugins', '--no-discover', '--plugin-dir', FIXTURES, '--json');
  const list = JSON.parse(r.stdout) as { id: string; version: string; state: string; contributes: any; error: any }[];
  const first = list.find((p) => p.id === 'first-strategy')!;
  assert.is(first.version, '1.0.0');
  assert.is(first.state, 'discovered');
  assert.equal(first.contributes.strategies.map((s: any) => s.id), ['first']);
  assert.ok(list.some((p) => p.state === 'invalid' && p.error.code === 'TRELLIS_ERR_ENGINE_MISMATCH'));
  assert.is(r.code, 1, 'non-zero because some plugins are invalid');
  const table = await trellis('plugins', '--no-discover', '--plugin-dir', FIXTURES, '--activate', '--activation-timeout', '300');
  assert.match(table.stdout, /first-strategy\s+1\.0\.0\s+active\s+strategy:first/);
  assert.match(table.stdout, /throws-on-activate\s+1\.0\.0\s+failed/);
});

test.run();
