/**
 * `--data-dir`: nodes keep their keys in LMDB and come back with them after a kill -9 or a crash
 * of the whole ring.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHost, createLogger } from '@trellis/sdk';
import { checkRing, DhtClient } from '@trellis/sdk/dht';
import { startRing } from '../src/ring.js';
import { FAST, waitFor } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = fileURLToPath(new URL('../../cli/src/main.ts', import.meta.url));
const quiet = createLogger('dht-test', 'silent');

/** Ports free for both UDP and TCP (a node listens on both: datagrams and the stream side channel). */
async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < n) {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const port = s.address().port;
    const server = createServer();
    const tcpFree = await new Promise<boolean>((r) => {
      server.once('error', () => r(false));
      server.listen(port, '127.0.0.1', () => r(true));
    });
    if (tcpFree) await new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => s.close(() => r()));
    if (tcpFree && !ports.includes(port)) ports.push(port);
  }
  return ports;
}

function startNode(port: number, dir: string) {
  const child = spawn(process.execPath, ['--conditions=trellis-source', '--import', 'tsx', MAIN, 'dht', 'node', '--port', String(port), '--data-dir', dir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  return { child, out: () => out, err: () => err, exited };
}

test('a node killed with SIGKILL comes back from its --data-dir with every key', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-dht-'));
  const [port] = (await freePorts(1)) as [number];
  const host = createHost();
  const client = new DhtClient({ codec: await host.serialization.codec('pickle'), timeoutMs: 5000 });
  const procs: ReturnType<typeof startNode>[] = [];
  try {
    const first = startNode(port, dir);
    procs.push(first);
    assert.ok(await waitFor(() => first.out().includes('"address"'), 30_000), first.err());
    const node = { host: '127.0.0.1', port };
    for (let i = 0; i < 20; i++) assert.ok(await client.put(node, `k${i}`, { i, s: `value ${i}` }));
    assert.ok(await client.put(node, 'big', 'b'.repeat(300_000)));
    assert.ok(await client.put(node, 'k0', 'rewritten'));
    first.child.kill('SIGKILL');
    await first.exited;
    const second = startNode(port, dir);
    procs.push(second);
    assert.ok(await waitFor(() => second.out().includes('"address"'), 30_000), second.err());
    assert.is(await client.get(node, 'k0'), 'rewritten');
    for (let i = 1; i < 20; i++) assert.equal(await client.get(node, `k${i}`), { i, s: `value ${i}` });
    assert.is(await client.get(node, 'big'), 'b'.repeat(300_000));
    const info = await client.info(node);
    assert.is(info.keys, 21);
  } finally {
    for (const p of procs) p.child.kill('SIGKILL');
    await client.close();
    await host.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a whole ring that crashes comes back with its keys from per-port data directories', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-dht-ring-'));
  const ports = await freePorts(3);
  const opts = { ports, ...FAST, bits: 32, hash: 'sha1' as const, replicas: 1, logger: quiet, dataDir: dir };
  let ring = await startRing(opts);
  const codec = await ring.pluginHost.serialization.codec('pickle');
  const client = new DhtClient({ codec, timeoutMs: 5000 });
  try {
    assert.ok(await waitFor(() => checkRing(ring.nodes).correct === 3, 5000));
    const keys = Array.from({ length: 30 }, (_, i) => `ring-${i}`);
    for (const k of keys) assert.ok(await client.put(ring.nodes[0]!.address, k, k.toUpperCase()));
    await ring.close(); // not graceful: no transfers, as in a crash
    ring = await startRing(opts);
    assert.ok(await waitFor(() => checkRing(ring.nodes).correct === 3, 5000));
    for (const k of keys) assert.is(await client.get(ring.nodes[1]!.address, k), k.toUpperCase(), k);
  } finally {
    await client.close();
    await ring.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
