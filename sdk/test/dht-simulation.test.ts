import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Simulation, idealSuccessor, ChordNode, MemoryNetwork } from '../src/dht/index.js';
import { createFingerTable } from '../../plugins/chord-fingers/src/finger-table.js';

const timers = { stabilizeMs: 100, fixFingersMs: 200, checkPredecessorMs: 200, rpcTimeoutMs: 50, hopTimeoutMs: 30, lookupTimeoutMs: 2000 };

/** Runs `p` on the simulation's virtual clock until it settles. */
async function drive<T>(sim: Simulation | MemoryNetwork, p: Promise<T>, limitMs = 20_000): Promise<T> {
  let done = false;
  const q = p.finally(() => (done = true));
  await sim.clock.runWhile(() => !done, limitMs, 5);
  return q;
}

test('nodes joining one at a time converge to the ring their ids imply, fingers included', async () => {
  const sim = new Simulation({ nodes: 40, bits: 16, routing: createFingerTable, node: timers });
  try {
    await sim.joinAll({ settleMsPerJoin: 20 });
    assert.ok(await sim.settle(30_000), JSON.stringify(sim.check()));
    const check = sim.check();
    assert.equal(check, { correct: 40, live: 40, wrongSuccessor: 0, wrongPredecessor: 0, wrongFingers: 0 });
  } finally {
    await sim.close();
  }
});

test('successor-only routing and the finger plugin give the same owners; the plugin needs far fewer hops', async () => {
  const results: Record<string, { owners: bigint[]; hops: number }> = {};
  for (const [name, routing] of [['fingers', createFingerTable], ['successor', undefined]] as const) {
    const sim = new Simulation({ nodes: 128, bits: 32, routing, seed: 7 });
    await sim.warmStart();
    const ideal = idealSuccessor(sim.nodes.map((n) => n.self).sort((a, b) => (a.id < b.id ? -1 : 1)));
    const owners: bigint[] = [];
    let hops = 0;
    for (let i = 0; i < 60; i++) {
      const from = sim.nodes[Math.floor(sim.random() * sim.nodes.length)]!;
      const id = sim.randomId(new Set());
      const r = await drive(sim, from.lookup(id));
      assert.is(r.node.id, ideal(id).id);
      assert.is(r.path.length, r.hops + 1, 'the traced path lists the origin and every hop');
      owners.push(r.node.id);
      hops += r.hops;
    }
    results[name] = { owners, hops: hops / 60 };
    await sim.close();
  }
  assert.equal(results.fingers!.owners, results.successor!.owners);
  assert.ok(results.fingers!.hops * 4 < results.successor!.hops, `fingers ${results.fingers!.hops} vs successor ${results.successor!.hops}`);
});

test('put and get route to the owner, which replicates to k successors', async () => {
  const sim = new Simulation({ nodes: 16, bits: 16, routing: createFingerTable, replicas: 2, node: timers });
  try {
    await sim.warmStart({ maintenance: true });
    const origin = sim.nodes[3]!;
    await drive(sim, origin.put('alpha', [1, 2, 3]));
    await sim.clock.advance(50);
    const owner = (await drive(sim, origin.lookup('alpha'))).node;
    const holders = sim.nodes.filter((n) => n.localValue('alpha') !== undefined).map((n) => n.self.id);
    const ownerNode = sim.nodes.find((n) => n.self.id === owner.id)!;
    assert.equal(holders.sort(), [owner.id, ...ownerNode.successors.slice(0, 2).map((s) => s.id)].sort());
    assert.equal(await drive(sim, sim.nodes[9]!.get('alpha')), [1, 2, 3]);
    assert.is(await drive(sim, sim.nodes[9]!.get('missing')), undefined);
  } finally {
    await sim.close();
  }
});

test('half the nodes crashing at once loses no key that kept a replica', async () => {
  const N = 64;
  const sim = new Simulation({ nodes: N, bits: 32, routing: createFingerTable, successors: 12, replicas: 3, node: timers, seed: 3 });
  try {
    await sim.warmStart({ maintenance: true });
    const keys = Array.from({ length: 150 }, (_, i) => `key-${i}`);
    for (const k of keys) await drive(sim, sim.nodes[Math.floor(sim.random() * N)]!.put(k, k.toUpperCase()));
    await sim.clock.advance(500);
    const order = [...sim.nodes].sort(() => sim.random() - 0.5);
    const dead = new Set(order.slice(0, N / 2));
    const survivors = keys.filter((k) => sim.nodes.some((n) => !dead.has(n) && n.localValue(k) !== undefined));
    for (const n of dead) sim.crash(n);
    assert.ok(await sim.settle(60_000), JSON.stringify(sim.check()));
    await sim.clock.advance(1000); // a replication round after the ring healed
    const live = sim.live();
    const lost = [];
    for (const k of survivors) {
      const v = await drive(sim, live[Math.floor(sim.random() * live.length)]!.get(k));
      if (v !== k.toUpperCase()) lost.push(k);
    }
    assert.equal(lost, []);
    assert.ok(survivors.length > keys.length * 0.8, `${survivors.length} of ${keys.length} keys kept a replica`);
  } finally {
    await sim.close();
  }
});

test('a node leaving gracefully hands its keys to its successor and the ring links past it', async () => {
  const sim = new Simulation({ nodes: 8, bits: 16, routing: createFingerTable, replicas: 0, node: timers });
  try {
    await sim.warmStart({ maintenance: true });
    for (let i = 0; i < 40; i++) await drive(sim, sim.nodes[0]!.put(`k${i}`, i));
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    const owned = (n: ChordNode) => keys.filter((k) => n.owns(n.hashOf(k)));
    const leaving = [...sim.nodes].sort((x, y) => owned(y).length - owned(x).length)[0]!;
    const ownedBefore = owned(leaving);
    assert.ok(ownedBefore.length > 0, 'the leaving node owned some keys');
    const succ = leaving.successors[0]!;
    await drive(sim, leaving.close());
    sim.nodes.splice(sim.nodes.indexOf(leaving), 1);
    const succNode = sim.nodes.find((n) => n.self.id === succ.id)!;
    for (const k of ownedBefore) assert.is(succNode.localValue(k), Number(k.slice(1)));
    assert.ok(await sim.settle(10_000), JSON.stringify(sim.check()));
    for (let i = 0; i < 40; i++) assert.is(await drive(sim, sim.nodes[0]!.get(`k${i}`)), i);
  } finally {
    await sim.close();
  }
});

test('a node joining takes over the keys in (predecessor, self] from its successor', async () => {
  const network = new MemoryNetwork();
  const mk = (id: bigint) => new ChordNode({ transport: network, bits: 8, id, clock: network.clock, routing: createFingerTable, replicas: 0, ...timers });
  const a = mk(10n);
  const b = mk(200n);
  try {
    await a.listen(0, 'sim');
    for (let i = 0; i < 30; i++) await drive(network, a.put(`k${i}`, i));
    await b.listen(0, 'sim');
    await drive(network, b.join(a.address));
    await network.clock.advance(1000);
    const bKeys = Array.from({ length: 30 }, (_, i) => `k${i}`).filter((k) => b.owns(b.hashOf(k)));
    assert.ok(bKeys.length > 0);
    for (const k of bKeys) assert.is(b.localValue(k), Number(k.slice(1)));
    assert.equal(a.successors[0]?.id, 200n);
    assert.equal(a.predecessor?.id, 200n);
    for (let i = 0; i < 30; i++) assert.is(await drive(network, b.get(`k${i}`)), i);
  } finally {
    await a.close({ graceful: false });
    await b.close({ graceful: false });
  }
});

test('a second node with an id already in the ring is refused', async () => {
  const network = new MemoryNetwork();
  const a = new ChordNode({ transport: network, bits: 8, id: 5n, clock: network.clock, ...timers });
  const b = new ChordNode({ transport: network, bits: 8, id: 5n, clock: network.clock, ...timers });
  try {
    await a.listen(0, 'sim');
    await b.listen(0, 'sim');
    let error: unknown;
    await drive(network, b.join(a.address).catch((e) => (error = e)));
    assert.match(String(error), /taken/);
  } finally {
    await a.close({ graceful: false });
    await b.close({ graceful: false });
  }
});

test.run();
