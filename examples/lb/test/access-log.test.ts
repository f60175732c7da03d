import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough } from 'node:stream';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from '@trellis/sdk/cli';
import { lb as lbCommand } from '../src/cli.js';
import { freePort } from '../bench/tools.js';
import { startBalancer, startServer, get, raw, waitFor } from './helpers.js';

interface Line {
  time: string;
  client: string;
  method: string;
  path: string;
  status: number;
  bytes: number;
  backend: string;
  ms: number;
}

for (const engine of ['raw', 'undici'] as const) {
  test(`${engine} engine: the access log has one JSON line per request: client, method, path, status, bytes, back-end, duration`, async () => {
    const be = await startServer((req, res) => res.end(req.url === '/big' ? 'x'.repeat(1000) : 'ok'));
    const out = new PassThrough();
    let text = '';
    out.on('data', (c) => (text += c));
    const lb = await startBalancer([be.port], { engine, accessLog: out, limits: { requestsPerSecondPerClient: 1000 } });
    try {
      assert.is((await get(lb.port, '/a?q=1')).status, 200);
      assert.is((await get(lb.port, '/big', { method: 'POST', body: 'data' })).status, 200);
      await raw(lb.port, 'GET /bad\x01 HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor(() => text.split('\n').length >= 4, 3000, 'three lines');
      const lines = text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Line);
      assert.is(lines.length, 3);
      const [a, big, bad] = lines as [Line, Line, Line];
      assert.equal(Object.keys(a), ['time', 'client', 'method', 'path', 'status', 'bytes', 'backend', 'ms']);
      assert.ok(!Number.isNaN(Date.parse(a.time)));
      assert.is(a.client, '127.0.0.1');
      assert.is(a.method, 'GET');
      assert.is(a.path, '/a?q=1');
      assert.is(a.status, 200);
      assert.is(a.backend, `127.0.0.1:${be.port}`);
      assert.ok(a.ms >= 0);
      assert.ok(a.bytes > 2 && a.bytes < 400, `bytes ${a.bytes}`);
      assert.is(big.method, 'POST');
      assert.ok(big.bytes > 1000, `bytes ${big.bytes}`);
      assert.is(bad.status, 400);
      assert.is(bad.method, '-');
      assert.is(bad.backend, '-');
    } finally {
      await lb.close();
      await be.close();
    }
  });
}

test('a log stream that falls behind drops lines instead of buffering without bound', async () => {
  const be = await startServer((_req, res) => res.end('ok'));
  const stuck = new PassThrough({ highWaterMark: 1 }); // never read: every write stays buffered
  const lb = await startBalancer([be.port], { accessLog: stuck });
  try {
    const { AccessLog } = await import('../../../sdk/src/balancer/access-log.js');
    const log = new AccessLog(stuck, { maxBufferedBytes: 300 });
    for (let i = 0; i < 10; i++) log.write({ client: 'c', method: 'GET', path: '/', status: 200, bytes: 1, backend: 'b', ms: 1 });
    assert.ok(log.written >= 1 && log.written <= 3, `written ${log.written}`);
    assert.is(log.dropped, 10 - log.written);
    assert.is((await get(lb.port, '/')).status, 200); // the balancer keeps serving
  } finally {
    await lb.close();
    await be.close();
  }
});

test('trellis lb --access-log FILE appends the lines; an unopenable file is a clear start-up error', async () => {
  const be = await startServer((_req, res) => res.end('ok'));
  const dir = mkdtempSync(join(tmpdir(), 'trellis-log-'));
  const file = join(dir, 'access.log');
  const port = await freePort();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += c));
  stderr.on('data', (c) => (err += c));
  const controller = new AbortController();
  const running = runCommand(
    'trellis lb',
    lbCommand,
    ['-p', String(port), '-b', `127.0.0.1:${be.port}`, '--access-log', file, '--health-interval', '0', '--quiet'],
    { stdout, stderr, signal: controller.signal },
  );
  try {
    await waitFor(() => out.includes('lb: http mode'), 5000, 'the balancer to start');
    assert.is((await get(port, '/logged')).status, 200);
    controller.abort();
    assert.is(await running, 0);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.is(lines.length, 1);
    assert.is((JSON.parse(lines[0]!) as Line).path, '/logged');
    const bad = new AbortController();
    const code = await runCommand('trellis lb', lbCommand, ['-p', '0', '-b', `127.0.0.1:${be.port}`, '--access-log', join(dir, 'no/such/dir/x.log')], {
      stdout,
      stderr,
      signal: bad.signal,
    });
    assert.is(code, 2);
    assert.match(err, /--access-log: cannot open .*ENOENT/);
  } finally {
    controller.abort();
    await running.catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    await be.close();
  }
});

test.run();
