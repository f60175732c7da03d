/**
 * `trellis dht node` as a process: a failed join exits non-zero with one line, SIGTERM and SIGINT
 * end the node (during a join too), and `node` and `ring` name a port the same way.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { addressRepr, fnv1aHash } from '@trellis/sdk/dht';
import { startRing } from '../src/ring.js';
import { defaultIdentityHost } from '../src/cli.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = fileURLToPath(new URL('../../cli/src/main.ts', import.meta.url));

interface Proc {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function trellis(...args: string[]): Proc {
  const child = spawn(process.execPath, ['--conditions=trellis-source', '--import', 'tsx', MAIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, out: () => out, err: () => err, exited };
}

/** Waits for the child to exit within `ms`; kills it (and fails) otherwise. */
async function exitWithin(p: Proc, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), ms)));
  const r = await Promise.race([p.exited, late]);
  clearTimeout(timer);
  if (r === 'late') {
    p.child.kill('SIGKILL');
    await p.exited;
    throw new Error(`the process did not exit within ${ms} ms; stderr: ${p.err()}`);
  }
  return r;
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end && !check()) await new Promise((r) => setTimeout(r, 50));
  return check();
}

/** A UDP port nobody listens on (bound, read, released). */
async function deadPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('a join to a dead port exits non-zero with a one-line reason and frees its port', async () => {
  const dead = await deadPort();
  const p = trellis('dht', 'node', '--port', '0', '--join', `127.0.0.1:${dead}`);
  try {
    const { code } = await exitWithin(p, 40_000);
    assert.is(code, 1);
    const lines = p.err().trim().split('\n');
    assert.is(lines.length, 1, p.err());
    assert.match(lines[0]!, /join through 127\.0\.0\.1:\d+ failed: no answer/);
    assert.match(lines[0]!, /TRELLIS_ERR_JOIN_FAILED/);
  } finally {
    p.child.kill('SIGKILL');
  }
});

test('a join refused for an id collision exits non-zero with the reason', async () => {
  // two ports whose "('localhost', port)" hash to the same id with m = 3
  const ring = await startRing({ ports: [0], bits: 3, identityHost: 'localhost' });
  const p: Proc[] = [];
  try {
    const taken = ring.nodes[0]!.self.id;
    let port = 0;
    for (let candidate = 20000; candidate < 60000; candidate++) {
      if (fnv1aHash(addressRepr('localhost', candidate), 3) !== taken || candidate === ring.nodes[0]!.address.port) continue;
      const s = createSocket('udp4');
      const free = await new Promise<boolean>((r) => {
        s.once('error', () => r(false));
        s.bind(candidate, '127.0.0.1', () => r(true));
      });
      await new Promise<void>((r) => (free ? s.close(() => r()) : r()));
      // the node also listens on TCP at its port number (the stream side channel)
      const server = createServer();
      const tcpFree = free && (await new Promise<boolean>((r) => {
        server.once('error', () => r(false));
        server.listen(candidate, '127.0.0.1', () => r(true));
      }));
      if (tcpFree) await new Promise<void>((r) => server.close(() => r()));
      if (tcpFree) {
        port = candidate;
        break;
      }
    }
    assert.ok(port > 0);
    const child = trellis('dht', 'node', '--bits', '3', '--port', String(port), '--join', `127.0.0.1:${ring.nodes[0]!.address.port}`);
    p.push(child);
    const { code } = await exitWithin(child, 40_000);
    assert.is(code, 1);
    assert.is(child.err().trim().split('\n').length, 1, child.err());
    assert.match(child.err(), /id \d+ is taken/);
  } finally {
    for (const c of p) c.child.kill('SIGKILL');
    await ring.close();
  }
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} ends a running node, and ends a node stuck joining a dead port`, async () => {
    const a = trellis('dht', 'node', '--port', '0');
    const dead = await deadPort();
    const b = trellis('dht', 'node', '--port', '0', '--join', `127.0.0.1:${dead}`);
    try {
      assert.ok(await until(() => a.out().includes('"address"'), 30_000), a.err());
      assert.match(a.out(), /"address":\["localhost",\d+\]/);
      a.child.kill(signal);
      const ra = await exitWithin(a, 10_000);
      assert.is(ra.code, 0, a.err());
      await new Promise((r) => setTimeout(r, 1500)); // b is now inside its join attempts
      b.child.kill(signal);
      const rb = await exitWithin(b, 10_000);
      assert.ok(rb.code !== 0 && rb.code !== null, `exit ${rb.code}`);
      assert.match(b.err(), /interrupted/);
    } finally {
      a.child.kill('SIGKILL');
      b.child.kill('SIGKILL');
    }
  });
}

test('node and ring name a loopback port the same way: localhost, as the original', () => {
  assert.is(defaultIdentityHost('127.0.0.1'), 'localhost');
  assert.is(defaultIdentityHost('localhost'), 'localhost');
  assert.is(defaultIdentityHost('10.0.0.5'), '10.0.0.5');
});

test.run();
