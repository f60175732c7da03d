/**
 * Values larger than one datagram: up to megabytes over the stream side channel (TCP, same port),
 * small values still on the original one-datagram client protocol, and a clear NACK — never
 * silence — when a value is over the limit or cannot reach a UDP client.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough } from 'node:stream';
import { runCommand } from '@trellis/sdk/cli';
import { createLogger, type Value } from '@trellis/sdk';
import { checkRing, DhtClient, type ChordNode } from '@trellis/sdk/dht';
import { startRing, type Ring } from '../src/ring.js';
import { dht } from '../src/cli.js';
import { FAST, python, waitFor } from './helpers.js';

const quiet = createLogger('dht-test', 'silent');

async function ringOf(n: number, extra: object = {}): Promise<Ring> {
  return startRing({ ports: Array.from({ length: n }, () => 0), ...FAST, bits: 32, hash: 'sha1', logger: quiet, ...extra });
}

/** A key whose owner is not `entry`. */
function remoteKey(ring: Ring, entry: ChordNode, prefix: string): string {
  for (let i = 0; ; i++) {
    const k = `${prefix}-${i}`;
    if (!entry.owns(entry.hashOf(k))) return k;
  }
}

const MiB = 1024 * 1024;

test('a 1 MiB value is stored through one node, read through another, survives a graceful leave of its owner', async () => {
  const ring = await ringOf(4, { replicas: 1 });
  const codec = await ring.pluginHost.serialization.codec('pickle');
  const client = new DhtClient({ codec, timeoutMs: 10_000 });
  try {
    assert.ok(await waitFor(() => checkRing(ring.nodes).correct === 4, 5000), JSON.stringify(checkRing(ring.nodes)));
    const entry = ring.nodes[0]!;
    const key = remoteKey(ring, entry, 'big');
    const value = Buffer.alloc(MiB, 'abcdefgh').toString('latin1');
    const bytes = new Uint8Array(MiB).map((_, i) => i % 251);
    assert.ok(await client.put(entry.address, key, value), 'PUT 1 MiB string');
    assert.ok(await client.put(entry.address, `${key}-bytes`, bytes), 'PUT 1 MiB bytes');
    const other = ring.nodes[2]!;
    assert.is(await client.get(other.address, key), value);
    assert.equal(await client.get(other.address, `${key}-bytes`), bytes);
    const owner = ring.nodes.find((n) => n.owns(n.hashOf(key)))!;
    assert.is(owner.localValue(key), value);
    await owner.close(); // graceful: the 1 MiB entry moves to the successor
    const live = ring.nodes.filter((n) => n !== owner);
    assert.ok(await waitFor(() => checkRing(live).correct === 3, 5000));
    assert.is(await client.get(live[0]!.address, key), value);
  } finally {
    await client.close();
    await ring.close();
  }
});

test('a value just under one datagram is stored when the forward would not fit a datagram (was silent)', async () => {
  const ring = await ringOf(2, { replicas: 0 });
  const codec = await ring.pluginHost.serialization.codec('pickle');
  const client = new DhtClient({ codec, timeoutMs: 5000 });
  try {
    assert.ok(await waitFor(() => checkRing(ring.nodes).correct === 2, 5000));
    const entry = ring.nodes[0]!;
    const key = remoteKey(ring, entry, 'edge');
    let value = 'e'.repeat(65_000);
    while (codec.encode({ method: 'PUT', args: { key, value } }).byteLength < 65_490) value += 'e';
    const rep = await client.request(entry.address, { method: 'PUT', args: { key, value } }); // one datagram, the original protocol
    assert.is(rep.method, 'ACK');
    assert.is(await client.get(entry.address, key), value);
  } finally {
    await client.close();
    await ring.close();
  }
});

test('a UDP client asking for a value too large for a datagram gets a NACK with the reason; too-large PUTs get a NACK, and trellis dht put says why', async () => {
  const ring = await ringOf(2, { replicas: 0, maxValueBytes: 2 * MiB });
  const codec = await ring.pluginHost.serialization.codec('pickle');
  const client = new DhtClient({ codec, timeoutMs: 10_000 });
  try {
    assert.ok(await waitFor(() => checkRing(ring.nodes).correct === 2, 5000));
    const a = ring.nodes[0]!;
    const value = 'z'.repeat(200_000);
    assert.ok(await client.put(a.address, 'wide', value));
    const rep = await client.request(a.address, { method: 'GET', args: { key: 'wide' } });
    assert.is(rep.method, 'NACK');
    assert.match(String((rep.args as Record<string, Value>).error), /too large for a datagram; read it over the stream side channel/);
    assert.is(await python(a.address.port, 'get', 'wide'), null); // the original client: a NACK, not a hang
    const over = await client.request(a.address, { method: 'PUT', args: { key: 'huge', value: 'h'.repeat(3 * MiB) } });
    assert.is(over.method, 'NACK');
    assert.match(String((over.args as Record<string, Value>).error), /over this ring's 2097152-byte limit/);
    const stdout = new PassThrough();
    let out = '';
    stdout.on('data', (d) => (out += d));
    const code = await runCommand('trellis dht', dht, ['put', '--node', `127.0.0.1:${a.address.port}`, 'huge', 'h'.repeat(3 * MiB)], { stdout, stderr: new PassThrough(), signal: new AbortController().signal });
    assert.is(code, 1);
    assert.match(out, /^NACK: the value is about \d+ bytes, over this ring's 2097152-byte limit\n$/);
  } finally {
    await client.close();
    await ring.close();
  }
});

test.run();
