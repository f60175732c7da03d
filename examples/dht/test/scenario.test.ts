/**
 * The original DHT.py scenario: nodes on localhost ports 5000–5004, put "A" → [0,1,2] (local to
 * 5000) and "2" → "xpto" (remote), read back; then 4000, 6000 and 3000 join one at a time. After
 * each join the ring settles to the predecessors, successors and complete finger tables the
 * reference hash implies, checked through INFO.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DhtClient } from '@trellis/sdk/dht';
import { startRing } from '../src/ring.js';
import { FAST, python, waitFor } from './helpers.js';

/** Ids the reference hash gives "('localhost', PORT)" with m = 10 (computed with the original Python function). */
const IDS: Record<number, number> = { 5000: 770, 5001: 959, 5002: 260, 5003: 257, 5004: 654, 4000: 581, 6000: 895, 3000: 752 };
const M = 10;

/** The ideal ring over `ports`: per port, predecessor, successor and the m finger entries, as INFO shows them. */
function expected(ports: number[]) {
  const ring = ports.map((p) => ({ id: IDS[p]!, port: p })).sort((a, b) => a.id - b.id);
  const successorOf = (id: number) => ring.find((n) => n.id >= id) ?? ring[0]!;
  const ref = (n: { id: number; port: number }) => [n.id, ['localhost', n.port]];
  return new Map(
    ring.map((n, i) => [
      n.port,
      {
        predecessor: ref(ring[(i - 1 + ring.length) % ring.length]!),
        successor: ref(ring[(i + 1) % ring.length]!),
        fingers: Array.from({ length: M }, (_, k) => ref(successorOf((n.id + 2 ** k) % 2 ** M))),
      },
    ]),
  );
}

test('the original ring: 5000–5004, two keys, then 4000, 6000 and 3000 join and every table settles', async () => {
  const ring = await startRing({ ports: [5000, 5001, 5002, 5003, 5004], identityHost: 'localhost', ...FAST });
  const codec = await ring.pluginHost.serialization.codec('pickle');
  const client = new DhtClient({ codec, timeoutMs: 1000 });
  const ports = [5000, 5001, 5002, 5003, 5004];
  const mismatches = async () => {
    const want = expected(ports);
    const bad: string[] = [];
    for (const port of ports) {
      const info = await client.info({ host: '127.0.0.1', port }).catch(() => undefined);
      const w = want.get(port)!;
      if (!info) bad.push(`${port}: no INFO`);
      else {
        if (info.id !== IDS[port]) bad.push(`${port}: id ${info.id}`);
        if (JSON.stringify(info.predecessor) !== JSON.stringify(w.predecessor)) bad.push(`${port}: predecessor ${JSON.stringify(info.predecessor)}`);
        if (JSON.stringify((info.successors as unknown[])[0]) !== JSON.stringify(w.successor)) bad.push(`${port}: successor`);
        if (JSON.stringify(info.fingers) !== JSON.stringify(w.fingers)) bad.push(`${port}: fingers ${JSON.stringify(info.fingers)}`);
      }
    }
    return bad;
  };
  try {
    assert.ok(await waitFor(async () => (await mismatches()).length === 0, 8000), (await mismatches()).join('\n'));
    assert.is(ring.nodes[0]!.self.id, 770n);

    assert.is(await python(5000, 'put', 'A', '[0, 1, 2]'), true);
    assert.ok(ring.nodes[0]!.owns(716n), '"A" (716) is local to the node at 5000');
    assert.is(await python(5000, 'put', '2', '"xpto"'), true);
    assert.not.ok(ring.nodes[0]!.owns(981n), '"2" (981) is stored remotely');
    assert.equal(await python(5000, 'get', 'A'), [0, 1, 2]);
    assert.equal(await python(5003, 'get', '2'), 'xpto');

    for (const port of [4000, 6000, 3000]) {
      await ring.add(port);
      ports.push(port);
      assert.ok(await waitFor(async () => (await mismatches()).length === 0, 8000), `after ${port} joined:\n${(await mismatches()).join('\n')}`);
    }
    // "A" (716) now belongs to 3000 (752): it moved there on join
    const n3000 = ring.nodes.find((n) => n.address.port === 3000)!;
    assert.ok(n3000.owns(716n));
    assert.equal(n3000.localValue('A'), [0, 1, 2]);
    for (const port of ports) {
      assert.equal(await client.get({ host: '127.0.0.1', port }, 'A'), [0, 1, 2]);
      assert.equal(await client.get({ host: '127.0.0.1', port }, '2'), 'xpto');
    }
  } finally {
    await client.close();
    await ring.close();
  }
});

test.run();
