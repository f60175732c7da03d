/** `trellis plugins --plugin-dir …` lists the custom plugin with its contribution and state. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const MAIN = fileURLToPath(new URL('../../cli/src/main.ts', import.meta.url));

function trellis(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--conditions=trellis-source', '--import', 'tsx', MAIN, ...args], { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('trellis plugins --plugin-dir shows the custom plugin, its strategy and that it is not active yet', async () => {
  const { code, stdout } = await trellis('plugins', '--no-discover', '--plugin-dir', 'examples/custom-strategy');
  assert.is(code, 0);
  const row = stdout.split('\n').find((l) => l.startsWith('p2c-least-request '));
  assert.ok(row, stdout);
  assert.match(row!, /\b0\.1\.0\b/);
  assert.match(row!, /\bdiscovered\b/);
  assert.match(row!, /strategy:p2c-least-request/);
});

test('trellis plugins --activate --json reports the custom plugin active with its contributions', async () => {
  const { code, stdout } = await trellis('plugins', '--no-discover', '--plugin-dir', 'examples/custom-strategy/p2c-least-request', '--activate', '--json');
  assert.is(code, 0);
  const list = JSON.parse(stdout) as { id: string; state: string; dir: string; contributes: { strategies: { id: string; title: string }[] } }[];
  assert.is(list.length, 1);
  assert.is(list[0]!.id, 'p2c-least-request');
  assert.is(list[0]!.state, 'active');
  assert.ok(list[0]!.dir.endsWith('examples/custom-strategy/p2c-least-request'));
  assert.equal(list[0]!.contributes.strategies.map((s) => s.id), ['p2c-least-request']);
});

test.run();
