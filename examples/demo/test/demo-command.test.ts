/**
 * `trellis demo` as a user runs it: a child process on ephemeral ports that prints its URLs,
 * serves them, rejects bad requests with a 4xx while it keeps serving, and stops cleanly on Ctrl-C.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const MAIN = fileURLToPath(new URL('../../cli/src/main.ts', import.meta.url));

function waitFor(child: ChildProcess, output: { text: string }, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = output.text.match(pattern);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', check);
        resolve(m);
      }
    };
    const timer = setTimeout(() => {
      child.stdout!.off('data', check);
      reject(new Error(`no ${pattern} within ${timeoutMs} ms; output:\n${output.text}`));
    }, timeoutMs);
    child.stdout!.on('data', check);
    check();
  });
}

const post = (url: string, body: string) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

test('trellis demo prints working URLs, answers bad input with 4xx, and stops cleanly on SIGINT', async () => {
  const child = spawn(process.execPath, ['--conditions=trellis-source', '--import', 'tsx', MAIN, 'demo', '--port', '0', '--nodes', '4', '--no-open', '--duration', '60'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { text: '' };
  let err = '';
  child.stdout!.on('data', (d) => (out.text += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const [, web] = await waitFor(child, out, /live view:\s+(http:\/\/127\.0\.0\.1:\d+\/)/, 30_000);
    const [, lb] = await waitFor(child, out, /balancer:\s+(http:\/\/127\.0\.0\.1:\d+)/, 1_000);
    assert.match(out.text, /trellis sub --port \d+ --topic \/weather/);
    const [, admin] = await waitFor(child, out, /curl (http:\/\/127\.0\.0\.1:\d+)\/-\/stats/, 1_000);
    const adminStats = (await (await fetch(`${admin}/-/stats`)).json()) as { strategy: string; backends: unknown[] };
    assert.is(adminStats.strategy, 'round-robin');
    assert.is(adminStats.backends.length, 4);
    assert.match(out.text, /trellis dht get --node 127\.0\.0\.1:\d+ A/);

    const page = await fetch(web!);
    assert.is(page.status, 200);
    assert.match(await page.text(), /<title>Trellis demo/);
    const pi = await fetch(`${lb}/30`, { headers: { accept: 'application/json' } });
    assert.is(pi.status, 200);
    assert.match(((await pi.json()) as { pi: string }).pi, /^3\.14159/);

    const snap = (await (await fetch(`${web}api/snapshot`)).json()) as Record<string, { available: boolean }>;
    assert.ok(snap.balancer!.available && snap.broker!.available && snap.chord!.available, JSON.stringify(snap).slice(0, 400));

    // Bad input: a typed 4xx, and the demo keeps serving.
    const unknown = await post(`${web}api/strategy`, '{"strategy":"no-such-strategy"}');
    assert.is(unknown.status, 400);
    assert.match(((await unknown.json()) as { error: string }).error, /unknown strategy "no-such-strategy"/);
    assert.is((await post(`${web}api/strategy`, '{not json')).status, 400);
    assert.is((await post(`${web}api/lookup`, '{"key":""}')).status, 400);
    assert.is((await post(`${web}api/lookup`, JSON.stringify({ key: 'x'.repeat(5000) }))).status, 400);
    assert.is((await fetch(`${web}nope`)).status, 404);
    assert.is((await post(`${web}api/backend`, '{"id":"127.0.0.1:1","running":false}')).status, 400);
    assert.is((await post(`${web}api/backend`, '{"id":"x","running":"no"}')).status, 400);
    const ok = await post(`${web}api/strategy`, '{"strategy":"least-connections"}');
    assert.equal(await ok.json(), { strategy: 'least-connections' });
    const lookup = (await (await post(`${web}api/lookup`, '{"key":"2"}')).json()) as { path: number[]; owner: number; value: unknown };
    assert.is(lookup.value, 'xpto');
    assert.is(lookup.path.at(-1), lookup.owner);

    child.kill('SIGINT');
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([exited, new Promise((r) => (timer = setTimeout(() => r('timeout'), 15_000)))]);
    clearTimeout(timer);
    assert.is(code, 0, `exit ${String(code)}; stderr:\n${err}`);
    assert.match(out.text, /stopping…\nstopped\n$/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
  }
});

test('trellis demo rejects a bad flag with one line and exit 2', async () => {
  const child = spawn(process.execPath, ['--conditions=trellis-source', '--import', 'tsx', MAIN, 'demo', '--nodes', '1'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.is(code, 2);
  assert.is(err.trim().split('\n').length, 1);
  assert.match(err, /--nodes must be between 2 and 64/);
});

test('trellis demo on a busy web port says so in one line, exits 1, and starts nothing', async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  // An ephemeral port (32768–60999 on Linux) always leaves room for the plan above it.
  const port = (blocker.address() as AddressInfo).port;
  try {
    const child = spawn(process.execPath, ['--conditions=trellis-source', '--import', 'tsx', MAIN, 'demo', '--port', String(port), '--no-open'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.is(code, 1);
    assert.is(out, '');
    assert.match(err, new RegExp(`port ${port} for the web view is in use`));
    assert.is(err.trim().split('\n').length, 1, err);
  } finally {
    blocker.close();
  }
});

test.run();
