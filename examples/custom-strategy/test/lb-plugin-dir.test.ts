/**
 * The guide's step 6 for real: `trellis lb --plugin-dir examples/custom-strategy --strategy
 * p2c-least-request` balances live HTTP traffic with the custom plugin.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const MAIN = fileURLToPath(new URL('../../cli/src/main.ts', import.meta.url));

/** A back-end that holds every request until released, so active counts stay visible. */
async function holdingBackend(name: string) {
  const held: ServerResponse[] = [];
  const server = createServer((_req, res) => void held.push(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    name,
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    held,
    release() {
      for (const res of held.splice(0)) res.end(name);
    },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

test('trellis lb --plugin-dir runs the custom p2c-least-request strategy: held requests split evenly over two back-ends', async () => {
  const a = await holdingBackend('a');
  const b = await holdingBackend('b');
  const child = spawn(process.execPath, ['--conditions=trellis-source', '--import', 'tsx', MAIN, 'lb', '--port', '0', '--admin-port', '0', '--health-interval', '0', '--plugin-dir', 'examples/custom-strategy', '--strategy', 'p2c-least-request', '--backend', a.address, '--backend', b.address], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    const deadline = Date.now() + 20_000;
    let m: RegExpMatchArray | null = null;
    let admin: RegExpMatchArray | null = null;
    while (!(m && admin) && Date.now() < deadline) {
      m = out.match(/on 127\.0\.0\.1:(\d+), strategy ([\w.-]+)/);
      admin = out.match(/(http:\/\/127\.0\.0\.1:\d+)\/-\/stats/);
      if (!(m && admin)) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(m && admin, `the balancer did not start:\n${out}`);
    assert.is(m![2], 'p2c-least-request');
    const url = `http://127.0.0.1:${m![1]}/`;

    // Six concurrent requests, none finishing: with both back-ends sampled, fewer-active wins every time.
    const responses = Array.from({ length: 6 }, () => fetch(url).then((r) => r.text()));
    const until = Date.now() + 10_000;
    while (a.held.length + b.held.length < 6 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.is(a.held.length, 3, `a holds ${a.held.length}, b holds ${b.held.length}`);
    assert.is(b.held.length, 3);
    const stats = (await (await fetch(`${admin![1]}/-/stats`)).json()) as { strategy: string; backends: { active: number }[] };
    assert.is(stats.strategy, 'p2c-least-request');
    assert.equal(stats.backends.map((x) => x.active), [3, 3]);
    a.release();
    b.release();
    const bodies = await Promise.all(responses);
    assert.equal(bodies.sort(), ['a', 'a', 'a', 'b', 'b', 'b']);
  } finally {
    a.release();
    b.release();
    child.kill('SIGINT');
    await exited;
    await a.close();
    await b.close();
  }
});

test.run();
