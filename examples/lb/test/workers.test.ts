import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from '../bench/tools.js';
import { startServer, get, waitFor, sleep } from './helpers.js';

// `trellis lb --workers 2` as a real process tree (node:cluster forks the CLI itself).

const MAIN = fileURLToPath(new URL('../../cli/src/main.ts', import.meta.url));

function trellis(args: string[]): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--conditions=trellis-source', '--import', 'tsx', MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, out: () => out, exited };
}

test('--workers 2: one port, two processes, one admin view summing both; SIGTERM drains a request in flight', async () => {
  const be = await startServer((req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end('slow done'), 1000);
    else res.end('ok');
  });
  const port = await freePort();
  const adminPort = await freePort();
  const lb = trellis(['lb', '--workers', '2', '-p', String(port), '-b', `127.0.0.1:${be.port}`, '--admin-port', String(adminPort), '--health-interval', '0', '--quiet']);
  try {
    await waitFor(() => lb.out().includes('(all workers)'), 60_000, `the balancer to start: ${lb.out()}`);
    assert.match(lb.out(), /2 workers/);
    for (let i = 0; i < 20; i++) assert.is((await get(port, '/')).status, 200);
    // every worker reports to the primary's admin view
    let stats: { workers: number; requests: number } = { workers: 0, requests: 0 };
    await waitFor(
      () => {
        void get(adminPort, '/-/stats').then((r) => (stats = JSON.parse(r.body)));
        return stats.workers === 2 && stats.requests === 20;
      },
      10_000,
      'the summed stats',
    );
    const metrics = await get(adminPort, '/-/metrics');
    assert.match(metrics.body, /trellis_lb_requests_total\{balancer="lb"\} 20/);
    // graceful drain: a request in flight when SIGTERM arrives still completes
    const slow = get(port, '/slow');
    await sleep(300);
    lb.child.kill('SIGTERM');
    const r = await slow;
    assert.is(r.status, 200);
    assert.is(r.body, 'slow done');
    assert.is(await lb.exited, 0);
    assert.match(lb.out(), /draining every worker/);
  } finally {
    lb.child.kill('SIGKILL');
    await be.close();
  }
});

test.run();
