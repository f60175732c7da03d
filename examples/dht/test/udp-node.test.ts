import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createSocket } from 'node:dgram';
import { createLogger, type Codec } from '@trellis/sdk';
import { DhtClient, checkRing } from '@trellis/sdk/dht';
import { startRing, type Ring } from '../src/ring.js';
import { FAST, python, waitFor } from './helpers.js';

async function ringOf(n: number, extra: object = {}): Promise<Ring> {
  return startRing({ ports: Array.from({ length: n }, () => 0), ...FAST, ...extra });
}

test('a ring on ephemeral ports skips a port whose id the ring already has (ids are hashes of addresses)', async () => {
  // with 2 bits, 3 nodes on random ports collide most of the time: the join would be refused
  for (let trial = 0; trial < 5; trial++) {
    const ring = await ringOf(3, { bits: 2 });
    try {
      assert.is(new Set(ring.nodes.map((n) => n.self.id)).size, 3);
    } finally {
      await ring.close();
    }
  }
});

test('an unmodified Python client of the original protocol puts and gets through any node', async () => {
  const ring = await ringOf(3);
  try {
    const [a, b, c] = ring.nodes.map((n) => n.address.port) as [number, number, number];
    assert.ok(await waitFor(() => ring.nodes.every((n) => n.predecessor !== undefined), 3000));
    assert.is(await python(a, 'put', 'A', '[0, 1, 2]'), true);
    assert.is(await python(b, 'put', '2', '"xpto"'), true);
    assert.equal(await python(c, 'get', 'A'), [0, 1, 2]);
    assert.equal(await python(a, 'get', '2'), 'xpto');
    assert.is(await python(b, 'get', 'never-stored'), null);
    const info = (await python(a, 'info')) as Record<string, unknown>;
    assert.is(info.id, Number(ring.nodes[0]!.self.id));
    assert.equal(info.address, ['127.0.0.1', a]);
    assert.is((info.fingers as unknown[]).length, 10);
  } finally {
    await ring.close();
  }
});

test('bad datagrams are dropped with a log line and the node keeps serving', async () => {
  const lines: string[] = [];
  const logger = createLogger('dht-test', 'warn', (_level, _scope, message) => lines.push(message));
  const ring = await ringOf(1, { maxDatagramBytes: 2048, logger });
  const node = ring.nodes[0]!;
  const codec: Codec = await ring.pluginHost.serialization.codec('pickle');
  const raw = createSocket('udp4');
  const client = new DhtClient({ codec, timeoutMs: 2000 });
  const dropped: string[] = [];
  node.on('dropped', (_from, reason) => dropped.push(reason));
  try {
    await new Promise<void>((r) => raw.bind(0, '127.0.0.1', () => r()));
    const send = (bytes: Uint8Array) => raw.send(bytes, node.address.port, '127.0.0.1');
    send(Buffer.from('definitely not a pickle'));
    send(Buffer.from("cos\nsystem\n(S'echo pwned'\ntR.", 'latin1')); // GLOBAL + REDUCE: forbidden
    send(codec.encode([1, 2, 3])); // not a dict
    send(codec.encode({ method: 'PUT', args: { key: 5, value: 1 } })); // key must be a string
    send(codec.encode({ method: 'NO_SUCH_METHOD' }));
    send(codec.encode({ method: 'PUT', args: { key: 'big', value: 'x'.repeat(4000) } })); // over 2048 bytes
    assert.ok(await waitFor(() => dropped.length >= 6, 2000), `dropped: ${dropped.join(' | ')}`);
    assert.ok(await client.put(node.address, 'still', 'serving'));
    assert.equal(await client.get(node.address, 'still'), 'serving');
    assert.is(node.localValue('big'), undefined);
    assert.is(dropped.length, 6, dropped.join(' | '));
    assert.is(node.stats().dropped, 6);
    assert.is(lines.filter((l) => l.startsWith('dropped')).length, 6, lines.join('\n'));
    assert.ok(lines.some((l) => /forbidden opcode GLOBAL/.test(l)));
    assert.ok(lines.some((l) => /over the 2048-byte limit/.test(l)));
  } finally {
    raw.close();
    await client.close();
    await ring.close();
  }
});

test('GET of a missing key is answered NACK and PUT is answered ACK on the client socket', async () => {
  const ring = await ringOf(2);
  const codec = await ring.pluginHost.serialization.codec('pickle');
  const client = new DhtClient({ codec });
  try {
    const target = ring.nodes[1]!.address;
    assert.equal(await client.request(target, { method: 'GET', args: { key: 'nothing' } }), { method: 'NACK', args: undefined });
    assert.equal(await client.request(target, { method: 'PUT', args: { key: 'k', value: { nested: [1, 'two', null] } } }), { method: 'ACK', args: undefined });
    assert.equal(await client.get(ring.nodes[0]!.address, 'k'), { nested: [1, 'two', null] });
  } finally {
    await client.close();
    await ring.close();
  }
});

test('a UDP ring heals around a node that vanishes without a goodbye, and its keys survive on replicas', async () => {
  const ring = await ringOf(5, { bits: 32, hash: 'sha1', replicas: 2, logger: createLogger('dht-test', 'silent') });
  const codec = await ring.pluginHost.serialization.codec('pickle');
  const client = new DhtClient({ codec, timeoutMs: 2000 });
  try {
    assert.ok(await waitFor(() => checkRing(ring.nodes).correct === 5, 5000), JSON.stringify(checkRing(ring.nodes)));
    const keys = Array.from({ length: 30 }, (_, i) => `key-${i}`);
    for (const k of keys) assert.ok(await client.put(ring.nodes[0]!.address, k, k.length));
    await new Promise((r) => setTimeout(r, 200));
    const owned = (n: (typeof ring.nodes)[number]) => keys.filter((k) => n.owns(n.hashOf(k))).length;
    const victim = [...ring.nodes.slice(1)].sort((a, b) => owned(b) - owned(a))[0]!;
    assert.ok(owned(victim) > 0, 'the victim owned keys');
    await victim.close({ graceful: false }); // the socket just closes: no TRANSFER, no LEAVE
    const live = ring.nodes.filter((n) => n !== victim);
    assert.ok(await waitFor(() => checkRing(live).correct === 4, 8000), JSON.stringify(checkRing(live)));
    for (const k of keys) assert.is(await client.get(live[k.length % 4]!.address, k), k.length, `key ${k}`);
  } finally {
    await client.close();
    await ring.close();
  }
});

test('keys move on join and on graceful leave in datagram-sized batches, even when they add up to far more than one datagram', async () => {
  const ring = await ringOf(1, { bits: 32, hash: 'sha1', replicas: 0 });
  const codec = await ring.pluginHost.serialization.codec('pickle');
  const client = new DhtClient({ codec });
  try {
    const a = ring.nodes[0]!;
    const keys = Array.from({ length: 24 }, (_, i) => `big-${i}`);
    const value = (k: string) => k + ':' + 'z'.repeat(10_000);
    for (const k of keys) assert.ok(await client.put(a.address, k, value(k)));
    const b = await ring.add(0);
    assert.ok(await waitFor(() => checkRing(ring.nodes).correct === 2, 3000));
    const bKeys = keys.filter((k) => b.owns(b.hashOf(k)));
    assert.ok(await waitFor(() => bKeys.every((k) => b.localValue(k) === value(k)), 3000), `${bKeys.filter((k) => b.localValue(k) === undefined).length} of ${bKeys.length} keys missing at the joining node`);
    await a.close(); // graceful: a's keys go to b
    for (const k of keys) assert.is(b.localValue(k), value(k), k);
    assert.is(await client.get(b.address, keys[0]!), value(keys[0]!));
  } finally {
    await client.close();
    await ring.close();
  }
});


test('addresses reach Python as (host, port) tuples that socket.sendto accepts, as the reference sends them', async () => {
  const ring = await ringOf(2);
  try {
    const port = ring.nodes[0]!.address.port;
    const { execFile } = await import('node:child_process');
    const script = [
      'import pickle, socket, sys',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)',
      `s.sendto(pickle.dumps({"method": "INFO"}), ("127.0.0.1", ${port}))`,
      'info = pickle.loads(s.recv(65536))["args"]',
      'assert type(info["address"]) is tuple, type(info["address"])',
      'assert all(type(f[1]) is tuple for f in info["fingers"] if f)',
      's.sendto(pickle.dumps({"method": "GET", "args": {"key": "nothing"}}), info["address"])',
      'print(pickle.loads(s.recv(65536))["method"])',
    ].join('\n');
    const out = await new Promise<string>((resolve, reject) =>
      execFile('python3', ['-c', script], { timeout: 15_000 }, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout))),
    );
    assert.is(out.trim(), 'NACK');
  } finally {
    await ring.close();
  }
});
test.run();
