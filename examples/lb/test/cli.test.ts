import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runCommand } from '@trellis/sdk/cli';
import { lb, stress } from '../src/cli.js';
import { strategyId } from '../src/strategy-names.js';
import { startPis, get, serverOf, waitFor } from './helpers.js';
import { freePort } from '../bench/tools.js';

function io() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += c));
  stderr.on('data', (c) => (err += c));
  const controller = new AbortController();
  return { stdout, stderr, signal: controller.signal, stop: () => controller.abort(), out: () => out, err: () => err };
}

test('reference policy names map to strategy ids, case-insensitive', () => {
  assert.is(strategyId('N2One'), 'n-to-1');
  assert.is(strategyId('roundrobin'), 'round-robin');
  assert.is(strategyId('LeastConnections'), 'least-connections');
  assert.is(strategyId('LEASTRESPONSETIME'), 'least-response-time');
  assert.is(strategyId('least-response-time'), 'least-response-time');
  assert.is(strategyId('my-custom'), 'my-custom');
});

test('trellis lb takes -a -p -s PORT… and a custom strategy from --plugin-dir', async () => {
  const { servers, ports } = await startPis(3);
  const port = await freePort();
  const cli = io();
  const plugins = fileURLToPath(new URL('./fixtures/plugins', import.meta.url));
  const running = runCommand('trellis lb', lb, ['-a', 'last-first', '-p', String(port), '-s', String(ports[0]), String(ports[1]), String(ports[2]), '--plugin-dir', plugins, '--quiet'], cli);
  try {
    await waitFor(() => cli.out().includes('lb: http mode'), 5000, 'the balancer to start');
    assert.is(serverOf(await get(port, '/5')), `127.0.0.1:${ports[2]}`);
    assert.is(serverOf(await get(port, '/5')), `127.0.0.1:${ports[2]}`);
  } finally {
    cli.stop();
    assert.is(await running, 0);
    await Promise.all(servers.map((s) => s.close()));
  }
  assert.match(cli.out(), /strategy last-first, back-ends 127\.0\.0\.1:\d+ 127\.0\.0\.1:\d+ 127\.0\.0\.1:\d+/);
});

test('trellis lb --watch reloads a --plugin-dir strategy when its file changes', async () => {
  const root = mkdtempSync(join(tmpdir(), 'trellis-watch-'));
  const dir = join(root, 'live-strategy');
  mkdirSync(dir);
  const write = (index: number) =>
    writeFileSync(
      join(dir, 'index.js'),
      `export function activate(ctx) {\n  ctx.routing.registerStrategy('live', ({ backends }) => {\n    let list = backends;\n    return { select: () => list[${index}], update() {}, setBackends(b) { list = b; } };\n  });\n}\n`,
    );
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'live-strategy', version: '1.0.0', type: 'module', main: './index.js', engines: { trellis: '*' }, contributes: { strategies: [{ id: 'live', title: 'Live' }] } }));
  write(0);
  const { servers, ports } = await startPis(2);
  const port = await freePort();
  const cli = io();
  const running = runCommand('trellis lb', lb, ['--strategy', 'live', '-p', String(port), '-s', String(ports[0]), String(ports[1]), '--plugin-dir', root, '--watch', '--quiet'], cli);
  try {
    await waitFor(() => cli.out().includes('lb: http mode'), 5000, 'the balancer to start');
    assert.is(serverOf(await get(port, '/5')), `127.0.0.1:${ports[0]}`);
    await new Promise((r) => setTimeout(r, 100)); // the watcher is set up before listen; let it settle
    write(1);
    await waitFor(() => cli.err().includes('lb: plugin live-strategy reloaded'), 10_000, 'the reload');
    assert.is(serverOf(await get(port, '/5')), `127.0.0.1:${ports[1]}`);
  } finally {
    cli.stop();
    assert.is(await running, 0);
    await Promise.all(servers.map((s) => s.close()));
    rmSync(root, { recursive: true, force: true });
  }
});

test('trellis lb takes repeated -s and --backend, in list order, with the reference policy name', async () => {
  const { servers, ports } = await startPis(3);
  const port = await freePort();
  const cli = io();
  const running = runCommand('trellis lb', lb, ['-a', 'RoundRobin', '-p', String(port), '--backend', `127.0.0.1:${ports[0]}`, '-s', String(ports[1]), '-s', String(ports[2]), '--quiet'], cli);
  try {
    await waitFor(() => cli.out().includes('lb: http mode'), 5000, 'the balancer to start');
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) seen.push(serverOf(await get(port, '/2')));
    assert.equal(seen, [0, 1, 2, 0].map((i) => `127.0.0.1:${ports[i]}`));
  } finally {
    cli.stop();
    assert.is(await running, 0);
    await Promise.all(servers.map((s) => s.close()));
  }
  assert.match(cli.out(), /strategy round-robin/);
});

test('trellis lb --forward-headers none adds no forwarding headers', async () => {
  const { startServer } = await import('./helpers.js');
  let seen: Record<string, unknown> = {};
  const echo = await startServer((req, res) => {
    seen = req.headers;
    res.end('ok');
  });
  const port = await freePort();
  const cli = io();
  const running = runCommand('trellis lb', lb, ['-p', String(port), '-s', String(echo.port), '--forward-headers', 'none', '--health-interval', '0', '--quiet'], cli);
  try {
    await waitFor(() => cli.out().includes('lb: http mode'), 5000, 'the balancer to start');
    const r = await get(port, '/');
    assert.is(r.body, 'ok');
    assert.is(r.headers.via, undefined);
    assert.equal([seen['x-forwarded-for'], seen.forwarded, seen.via], [undefined, undefined, undefined]);
  } finally {
    cli.stop();
    assert.is(await running, 0);
    await echo.close();
  }
});

test('trellis lb rejects bad flags with one line and exit code 2', async () => {
  for (const argv of [['--mode', 'udp', '-s', '5000'], [], ['--backend', 'nope'], ['-s', '5000', '--engine', 'x'], ['--retries', 'many', '-s', '5000'], ['-s', '5000', '--forward-headers', 'x-forwarded,x-real-ip']]) {
    const cli = io();
    assert.is(await runCommand('trellis lb', lb, argv, cli), 2, argv.join(' '));
    assert.is(cli.err().trim().split('\n').length, 1);
  }
});

test('trellis stress prints a summary with the share per back-end', async () => {
  const { servers, ports } = await startPis(1);
  const cli = io();
  try {
    const code = await runCommand('trellis stress', stress, ['--url', `http://127.0.0.1:${ports[0]}/10`, '-n', '50', '-c', '5', '--json'], cli);
    assert.is(code, 0);
    const summary = JSON.parse(cli.out());
    assert.is(summary.requests, 50);
    assert.is(summary.ok, 50);
    assert.ok(summary.rps > 0);
    assert.equal(summary.backends, [{ server: `127.0.0.1:${ports[0]}`, count: 50, share: 100 }]);
  } finally {
    await Promise.all(servers.map((s) => s.close()));
  }
});

test.run();
