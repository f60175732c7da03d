import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, Agent } from 'node:http';
import { PassThrough } from 'node:stream';
import { runCommand } from '@trellis/sdk/cli';
import { lb } from '../src/cli.js';
import { parseConfig, ConfigError } from '../src/config.js';
import { startPis, get, serverOf, waitFor } from './helpers.js';
import { freePort } from '../bench/tools.js';

const TOKEN = 'reload-token-for-the-tests-0123456789';

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

function refused(text: string, file = 'lb.yaml'): string {
  try {
    parseConfig(text, file);
  } catch (err) {
    assert.instance(err, ConfigError);
    return (err as Error).message;
  }
  throw new Error(`accepted: ${text}`);
}

test('an invalid configuration is refused with its line, column and field', () => {
  assert.is(refused('backends:\n  - 127.0.0.1:5000\n  - host: 127.0.0.1\n    port: 5001\n    weight: 300\n'), 'lb.yaml:5:13: backends[1].weight: must be <= 256');
  assert.is(refused('strategy: round-robin\nbakends: []\n'), 'lb.yaml:2:1: bakends: unknown field');
  assert.is(refused('mode: udp\n'), 'lb.yaml:1:7: mode: must be one of "http", "tcp"');
  assert.is(refused('timeouts:\n  idleMs: -1\n'), 'lb.yaml:2:11: timeouts.idleMs: must be >= 0');
  assert.is(refused('backends:\n  - 127.0.0.1:1\n  - 127.0.0.1:1,weight=300\n'), 'lb.yaml:3:5: backends[1]: back-end "127.0.0.1:1,weight=300": weight must be an integer in 0..256, got 300');
  assert.is(refused('backends:\n  - a:1\n  - {host: a, port: 1}\n'), 'lb.yaml:3:5: backends[1]: back-end a:1 is listed twice');
  assert.is(refused('{\n  "backends": [{"host": "a", "port": 70000}]\n}\n', 'lb.json'), 'lb.json:2:38: backends[0].port: must be <= 65535');
  assert.match(refused('backends: [\n'), /^lb\.yaml:\d+:\d+: /);
  assert.match(refused('retries: 1\nretries: 2\n'), /^lb\.yaml:2:1: .*[Mm]ap keys must be unique/);
  assert.is(refused(''), 'lb.yaml:1:1: the file is empty');
  assert.match(refused('forwardHeaders: [x-forwarded, x-real-ip]\n'), /^lb\.yaml:1:31: forwardHeaders\[1\]: must be one of "x-forwarded", "forwarded", "via"/);
  assert.match(refused('forwardHeaders: [via, via]\n'), /^lb\.yaml:1:\d+: forwardHeaders: /);
});

test('a valid YAML file describes back-ends with weights and tags, strategy and options', () => {
  const cfg = parseConfig(
    [
      'listen: { host: 127.0.0.1, port: 8080 }',
      'strategy: { id: consistent-hash, options: { hashOn: "cookie:sid", stickyCookie: lb } }',
      'backends:',
      '  - 127.0.0.1:5000,weight=2,tag=blue',
      '  - { host: 127.0.0.1, port: 5001, tags: [green] }',
      'healthCheck: { intervalMs: 500, path: /health }',
      'timeouts: { upstreamMs: 2000 }',
      'forwardHeaders: [x-forwarded, via]',
    ].join('\n'),
    'lb.yaml',
  );
  assert.equal(cfg.backends, [
    { host: '127.0.0.1', port: 5000, weight: 2, tags: ['blue'] },
    { host: '127.0.0.1', port: 5001, tags: ['green'] },
  ]);
  assert.equal(cfg.strategy, { id: 'consistent-hash', options: { hashOn: 'cookie:sid', stickyCookie: 'lb' } });
  assert.equal(cfg.forwardHeaders, ['x-forwarded', 'via']);
});

test('forwardHeaders from the file applies ([] adds none); the flag overrides it', async () => {
  const { startServer } = await import('./helpers.js');
  let seen: Record<string, unknown> = {};
  const echo = await startServer((req, res) => {
    seen = req.headers;
    res.end('ok');
  });
  const dir = mkdtempSync(join(tmpdir(), 'trellis-lb-fwd-'));
  const file = join(dir, 'lb.yaml');
  writeFileSync(file, `backends: [127.0.0.1:${echo.port}]\nhealthCheck: false\nforwardHeaders: []\n`);
  try {
    for (const [flags, expected] of [
      [[], [undefined, undefined]],
      [['--forward-headers', 'via'], [undefined, '1.1 trellis']],
    ] as const) {
      const port = await freePort();
      const cli = io();
      const running = runCommand('trellis lb', lb, ['--config', file, '-p', String(port), '--quiet', ...flags], cli);
      try {
        await waitFor(() => cli.out().includes('lb: http mode'), 5000, 'the balancer to start');
        assert.is((await get(port, '/')).body, 'ok');
        assert.equal([seen['x-forwarded-for'], seen.via], [...expected], flags.join(' '));
      } finally {
        cli.stop();
        assert.is(await running, 0);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await echo.close();
  }
});

test("the README's example configuration file is valid", async () => {
  const { readFileSync } = await import('node:fs');
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const block = /```yaml\n(# lb\.yaml[\s\S]*?)```/.exec(readme);
  assert.ok(block, 'the README has a lb.yaml block');
  const cfg = parseConfig(block![1]!, 'README lb.yaml');
  assert.is(cfg.backends!.length, 2);
  assert.equal(cfg.admin, { port: 9090, tokenFile: '/run/secrets/lb-admin' });
});

/** POST /-/reload on the admin port. */
function reloadVia(adminPort: number, token = TOKEN): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: adminPort, path: '/-/reload', method: 'POST', agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('flags override the file; reloads under load (admin POST and SIGHUP) apply back-ends, weights, strategy and timeouts with 0 failed requests', async () => {
  const { servers, ports } = await startPis(4);
  const [A, B, C, D] = ports.map((p) => `127.0.0.1:${p}`) as [string, string, string, string];
  const dir = mkdtempSync(join(tmpdir(), 'trellis-lb-config-'));
  const file = join(dir, 'lb.yaml');
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, TOKEN);
  const write = (lines: string[]) => writeFileSync(file, lines.join('\n') + '\n');
  const port = await freePort();
  const adminPort = await freePort();
  write(['listen: { port: 1 }', 'strategy: round-robin', 'healthCheck: false', 'retries: 0', 'backends:', `  - ${A}`, `  - ${B}`, 'stats: yes']);
  const cli = io();
  // an unknown field: refused at start with the line and field
  assert.is(await runCommand('trellis lb', lb, ['--config', file, '-p', String(port)], cli), 1);
  assert.match(cli.err(), /lb\.yaml:8:1: stats: unknown field/);
  write(['listen: { port: 1 }', 'strategy: round-robin', 'healthCheck: false', 'retries: 0', 'backends:', `  - ${A}`, `  - ${B}`]);
  const running = runCommand('trellis lb', lb, ['--config', file, '-p', String(port), '--admin-port', String(adminPort), '--admin-token-file', tokenFile, '--quiet'], cli);
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  let failures = 0;
  let done = 0;
  let stop = false;
  const seenAfter = new Set<string>();
  let markAfter = false;
  const worker = async () => {
    while (!stop && done < 20_000) {
      const after = markAfter; // sent after the last reload was applied
      try {
        const r = await get(port, '/5', { agent });
        if (r.status !== 200) failures++;
        else if (after) seenAfter.add(serverOf(r));
      } catch {
        failures++;
      }
      done++;
    }
  };
  let workers: Promise<void>[] = [];
  try {
    await waitFor(() => cli.out().includes('lb: http mode'), 5000, 'the balancer to start');
    assert.match(cli.out(), new RegExp(`on 127\\.0\\.0\\.1:${port},`), '-p overrides listen.port');
    workers = Array.from({ length: 6 }, worker);
    await waitFor(() => done > 100, 10_000, 'traffic');
    // 1. a third back-end with weight 3 (admin POST)
    write(['strategy: round-robin', 'healthCheck: false', 'retries: 0', 'backends:', `  - ${A}`, `  - ${B}`, `  - ${C},weight=3`]);
    let r = await reloadVia(adminPort);
    assert.is(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.changed, ['backends']);
    await waitFor(() => done > 300, 10_000, 'traffic');
    // 2. strategy, timeouts and back-ends at once (SIGHUP); A leaves with requests in flight
    write(['strategy: least-connections', 'healthCheck: false', 'retries: 0', 'timeouts: { upstreamMs: 20000 }', 'backends:', `  - ${B}`, `  - ${C}`]);
    process.kill(process.pid, 'SIGHUP');
    await waitFor(() => /reloaded .*"changed":\["strategy","timeouts","backends"\]/.test(cli.out()), 10_000, 'the SIGHUP reload');
    await waitFor(() => done > 500, 10_000, 'traffic');
    // 3. an invalid file: refused, the running configuration stays
    write(['strategy: least-connections', 'backends:', `  - ${D},weight=999`]);
    r = await reloadVia(adminPort);
    assert.is(r.status, 422);
    assert.match(r.body.error, /lb\.yaml:3:5: backends\[0\]: .*weight must be an integer in 0\.\.256/);
    process.kill(process.pid, 'SIGHUP');
    await waitFor(() => cli.err().includes('reload refused'), 10_000, 'the refused SIGHUP reload');
    assert.is((await reloadVia(adminPort, 'not-the-token-but-long-enough')).status, 401);
    const stats = JSON.parse((await get(adminPort, '/-/stats')).body) as { strategy: string; backends: { id: string; weight: number }[] };
    assert.is(stats.strategy, 'least-connections', 'the running configuration stays');
    assert.equal(stats.backends.map((x) => [x.id, x.weight]), [[B, 1], [C, 1]]);
    // 4. consistent hashing over C and D, and a restart-only change reported as such
    write(['listen: { host: 127.0.0.2 }', 'strategy: { id: consistent-hash, options: { hashOn: path } }', 'healthCheck: false', 'retries: 0', 'backends:', `  - ${C}`, `  - ${D}`]);
    r = await reloadVia(adminPort);
    assert.is(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.changed, ['strategy', 'timeouts', 'backends'], 'upstreamMs back to its default');
    assert.equal(r.body.needsRestart, ['host']);
    markAfter = true;
    const before = done;
    await waitFor(() => done > before + 300, 10_000, 'traffic after the last reload');
    stop = true;
    await Promise.all(workers);
    assert.is(failures, 0, `${failures} of ${done} requests failed`);
    assert.is(seenAfter.size, 1, `hash-on path: one path, one back-end, got ${[...seenAfter]}`);
    assert.ok(seenAfter.has(C) || seenAfter.has(D));
    assert.ok(done >= 800, `${done} requests`);
  } finally {
    stop = true;
    await Promise.all(workers);
    agent.destroy();
    cli.stop();
    await running;
    await Promise.all(servers.map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
