/**
 * The attacks of issue 15, each as a regression test: forged membership (a successor hint naming
 * another node's address, a NOTIFY with id = victim − 1, a forged TRANSFER), reflection through
 * `from`, floods, decode bombs, a local send error taken for a dead peer, and the ring key.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createSocket, type Socket } from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { createLogger, type Codec, type Value } from '@trellis/sdk';
import { addressRepr, checkRing, DhtClient, WIRE_VERSION, type ChordNode } from '@trellis/sdk/dht';
import { startRing, type Ring } from '../src/ring.js';
import { FAST, waitFor } from './helpers.js';

const quiet = createLogger('dht-test', 'silent');

async function ringOf(n: number, extra: object = {}): Promise<Ring> {
  return startRing({ ports: Array.from({ length: n }, () => 0), ...FAST, bits: 32, hash: 'sha1', logger: quiet, ...extra });
}

interface Raw {
  socket: Socket;
  port: number;
  got: { method: string; args: Value | undefined; port: number }[];
  send(port: number, message: Value | Uint8Array): void;
  close(): void;
}

/** A bare UDP socket on 127.0.0.1 that records every decoded datagram it receives. */
async function raw(codec: Codec): Promise<Raw> {
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  const got: Raw['got'] = [];
  socket.on('message', (buf, rinfo) => {
    try {
      const m = codec.decode(buf) as { method: string; args?: Value };
      got.push({ method: m.method, args: m.args, port: rinfo.port });
    } catch {
      got.push({ method: '<undecodable>', args: undefined, port: rinfo.port });
    }
  });
  return {
    socket,
    port: socket.address().port,
    got,
    // the attacker speaks the current wire: its forgeries carry the version mark, so they meet the real checks
    send: (port, message) => socket.send(message instanceof Uint8Array ? message : codec.encode({ ...(message as object), v: WIRE_VERSION } as Value), port, '127.0.0.1'),
    close: () => socket.close(),
  };
}

const tuple = (host: string, port: number) => Object.defineProperty([host, port], Symbol.for('trellis.pickle.tuple'), { value: true }) as Value;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const genuine = (n: { id: bigint; host: string; port: number }, node: ChordNode) => n.id === node.hashOf(addressRepr(n.host, n.port));

/** Both id schemes are checked: the reference FNV-1a at m = 10 and SHA-1 at m = 32. */
const modes = { fnv1a: { hash: 'fnv1a', bits: 10 }, sha1: { hash: 'sha1', bits: 32 } } as const;

for (const hash of ['fnv1a', 'sha1'] as const) {
test(`a forged SUCCESSOR_HINT naming an id next to the victim and another live node is not adopted (${hash})`, async () => {
  const ring = await ringOf(3, modes[hash]);
  const codec = await ring.pluginHost.serialization.codec('pickle');
  const attacker = await raw(codec);
  try {
    assert.ok(await waitFor(() => checkRing(ring.nodes).correct === 3, 5000), JSON.stringify(checkRing(ring.nodes)));
    const victim = ring.nodes[0]!;
    const other = ring.nodes.find((n) => n !== victim && !victim.successors.some((s) => s.port === n.address.port))
      ?? ring.nodes.find((n) => n !== victim && n.address.port !== victim.successors[0]!.port)!;
    const forgedId = (victim.self.id + 1n) % (1n << BigInt(victim.bits));
    for (let i = 0; i < 3; i++) {
      attacker.send(victim.address.port, { method: 'SUCCESSOR_HINT', args: { successor_id: Number(forgedId), successor_addr: tuple('127.0.0.1', other.address.port) } });
      await sleep(100);
    }
    await sleep(400);
    assert.ok(victim.successors.every((s) => genuine(s, victim)), `victim adopted ${JSON.stringify(victim.successors.map((s) => [String(s.id), s.port]))}`);
    assert.ok(!victim.successors.some((s) => s.id === forgedId));
    assert.ok(await waitFor(() => checkRing(ring.nodes).correct === 3, 3000));
    assert.ok(Number(victim.stats().membershipRefused) >= 1);
  } finally {
    attacker.close();
    await ring.close();
  }
});

test(`a NOTIFY with id = victim − 1 from a stranger gets no keys, and a forged TRANSFER overwrites nothing (${hash})`, async () => {
  const ring = await ringOf(2, { replicas: 0, ...modes[hash] });
  const codec = await ring.pluginHost.serialization.codec('pickle');
  const client = new DhtClient({ codec, timeoutMs: 2000 });
  const attacker = await raw(codec);
  try {
    assert.ok(await waitFor(() => checkRing(ring.nodes).correct === 2, 5000));
    const keys = Array.from({ length: 40 }, (_, i) => `secret-${i}`);
    for (const k of keys) assert.ok(await client.put(ring.nodes[0]!.address, k, `v-${k}`));
    // the victim is the node that owns more of the keys (ids depend on the ports)
    const owned = (n: ChordNode) => keys.filter((k) => n.owns(n.hashOf(k))).length;
    const victim = owned(ring.nodes[0]!) >= owned(ring.nodes[1]!) ? ring.nodes[0]! : ring.nodes[1]!;
    const mine = keys.filter((k) => victim.owns(victim.hashOf(k)));
    assert.ok(mine.length > 0, 'the victim owns some keys');
    const before = victim.predecessor;
    attacker.send(victim.address.port, { method: 'NOTIFY', args: { predecessor_id: Number((victim.self.id + (1n << BigInt(victim.bits)) - 1n) % (1n << BigInt(victim.bits))), predecessor_addr: tuple('127.0.0.1', attacker.port) } });
    // also answer any PING as if the attacker were a node at victim − 1
    attacker.socket.on('message', (buf) => {
      const m = codec.decode(buf) as { method: string; args: Record<string, Value> };
      if (m.method === 'PING') attacker.send(victim.address.port, { method: 'PONG', args: { rid: m.args.rid!, node: [Number((victim.self.id + (1n << BigInt(victim.bits)) - 1n) % (1n << BigInt(victim.bits))), tuple('127.0.0.1', attacker.port)] } });
    });
    attacker.send(victim.address.port, { method: 'TRANSFER', args: { rid: 1, entries: [[mine[0]!, 'overwritten', 1_000_000]] } });
    await sleep(1500);
    const transfers = attacker.got.filter((m) => m.method === 'TRANSFER' || m.method === 'REPLICATE');
    assert.is(transfers.length, 0, `the attacker received ${transfers.length} key batches`);
    assert.equal(victim.predecessor, before);
    assert.is(victim.localValue(mine[0]!), `v-${mine[0]}`);
    for (const k of mine) assert.is(await client.get(victim.address, k), `v-${k}`);
    assert.ok(Number(victim.stats().membershipRefused) >= 2);
  } finally {
    attacker.close();
    await client.close();
    await ring.close();
  }
});
}

test('GET, INFO and LOOKUP with "from" set to a third address answer the real source, never the third address', async () => {
  const ring = await ringOf(2);
  const codec = await ring.pluginHost.serialization.codec('pickle');
  const client = new DhtClient({ codec, timeoutMs: 2000 });
  const attacker = await raw(codec);
  const victim = await raw(codec);
  try {
    assert.ok(await waitFor(() => checkRing(ring.nodes).correct === 2, 5000));
    const node = ring.nodes[0]!;
    assert.ok(await client.put(node.address, 'big', 'x'.repeat(20_000)));
    const third = tuple('127.0.0.1', victim.port);
    attacker.send(node.address.port, { method: 'GET', args: { key: 'big', from: third } });
    attacker.send(node.address.port, { method: 'INFO', args: { from: third } });
    attacker.send(node.address.port, { method: 'LOOKUP', args: { key: 'big', from: third } });
    // a forward from a stranger: the stranger cannot answer the verification round trip
    attacker.send(node.address.port, { method: 'GET', args: { key: 'big', from: third, fwd: 7, hops: 1, route_hops: 1, direct: false } });
    assert.ok(await waitFor(() => attacker.got.filter((m) => m.method === 'ACK').length >= 3, 3000), JSON.stringify(attacker.got.map((m) => m.method)));
    await sleep(1200);
    assert.is(victim.got.length, 0, `the third address received ${victim.got.map((m) => m.method).join(', ')}`);
    const info = await client.info(node.address);
    const counters = info.counters as Record<string, number>;
    assert.ok(counters.reflectionRefused! >= 3, JSON.stringify(counters));
    assert.ok(counters.membershipRefused! >= 1, JSON.stringify(counters));
  } finally {
    attacker.close();
    victim.close();
    await client.close();
    await ring.close();
  }
});

test('a flood from one source is cut by the per-source rate limit and counted', async () => {
  const ring = await ringOf(1, { rateLimit: 50 });
  const codec = await ring.pluginHost.serialization.codec('pickle');
  const attacker = await raw(codec);
  const client = new DhtClient({ codec, timeoutMs: 2000 });
  try {
    const node = ring.nodes[0]!;
    for (let i = 0; i < 400; i++) attacker.send(node.address.port, { method: 'GET', args: { key: `k${i}` } });
    await sleep(800);
    const answered = attacker.got.length;
    assert.ok(answered < 200, `${answered} of 400 answered`);
    assert.ok(Number(node.stats().rateLimited) >= 200, JSON.stringify(node.stats()));
    // another source is still served
    assert.ok(await client.put(node.address, 'still', 'served'));
  } finally {
    attacker.close();
    await client.close();
    await ring.close();
  }
});

test('a small pickle whose shared references expand to millions of values is refused at decode', async () => {
  const ring = await ringOf(1);
  const node = ring.nodes[0]!;
  const codec = await ring.pluginHost.serialization.codec('pickle');
  const attacker = await raw(codec);
  const dropped: string[] = [];
  node.on('dropped', (_from, reason) => dropped.push(reason));
  try {
    const bomb = execFileSync('python3', ['-c', "import pickle,sys; a=[0]*1000; b=[a]*1000; sys.stdout.buffer.write(pickle.dumps({'method':'PUT','args':{'key':'bomb','value':[b,b,b]}}, protocol=4))"]);
    assert.ok(bomb.byteLength < 8192, `${bomb.byteLength} bytes`);
    attacker.send(node.address.port, new Uint8Array(bomb));
    assert.ok(await waitFor(() => dropped.length >= 1, 3000));
    assert.match(dropped[0]!, /expands to more than/);
    assert.is(node.localValue('bomb'), undefined);
    assert.is(attacker.got.length, 0);
  } finally {
    attacker.close();
    await ring.close();
  }
});

test('a forward too large to send is a local error: NACK with a reason, and the healthy next hop is not evicted', async () => {
  const ring = await ringOf(2, { maxDatagramBytes: 2048, maxStreamBytes: 2048, replicas: 0 });
  const codec = await ring.pluginHost.serialization.codec('pickle');
  const client = new DhtClient({ codec, timeoutMs: 3000 });
  try {
    assert.ok(await waitFor(() => checkRing(ring.nodes).correct === 2, 5000));
    const [a, b] = ring.nodes as [ChordNode, ChordNode];
    let key = 'k0';
    for (let i = 0; !b.owns(b.hashOf(key)); i++) key = `k${i}`;
    let value = 'v'.repeat(1900);
    while (codec.encode({ method: 'PUT', args: { key, value } }).byteLength < 2040) value += 'v';
    const failed: string[] = [];
    for (const n of ring.nodes) n.on('peer-failed', (p) => failed.push(`${p.port}`));
    const rep = await client.request(a.address, { method: 'PUT', args: { key, value } });
    assert.is(rep.method, 'NACK');
    assert.match(String((rep.args as Record<string, Value>).error), /over the 2048-byte (datagram|stream frame) limit/);
    await sleep(1500);
    assert.equal(failed, []);
    assert.ok(sameSucc(a, b), 'b is still a\'s successor');
    assert.ok(Number(a.stats().sendErrors) >= 1);
  } finally {
    await client.close();
    await ring.close();
  }
});

function sameSucc(a: ChordNode, b: ChordNode): boolean {
  return a.successors[0]!.port === b.address.port;
}

test('with a ring key, keyed nodes form a ring, a keyless node cannot join, stray node messages are dropped, clients still work', async () => {
  const key = new Uint8Array(32).fill(7);
  const ring = await ringOf(3, { ringKey: key });
  const codec = await ring.pluginHost.serialization.codec('pickle');
  const client = new DhtClient({ codec, timeoutMs: 2000 });
  const attacker = await raw(codec);
  const outsider = await ringOf(1, { lookupTimeoutMs: 400 });
  try {
    assert.ok(await waitFor(() => checkRing(ring.nodes).correct === 3, 5000), JSON.stringify(checkRing(ring.nodes)));
    assert.ok(await client.put(ring.nodes[0]!.address, 'k', 'v'));
    assert.is(await client.get(ring.nodes[2]!.address, 'k'), 'v');
    const refused = await outsider.nodes[0]!.join(ring.nodes[0]!.address).then(() => 'joined', (err: Error) => err.message);
    assert.match(refused, /no answer/);
    const victim = ring.nodes[1]!;
    attacker.send(victim.address.port, { method: 'NOTIFY', args: { predecessor_id: 1, predecessor_addr: tuple('127.0.0.1', attacker.port) } });
    assert.ok(await waitFor(() => Number(victim.stats().unauthenticated) >= 1, 2000));
    assert.ok(await waitFor(() => checkRing(ring.nodes).correct === 3, 3000));
  } finally {
    attacker.close();
    await client.close();
    await outsider.close();
    await ring.close();
  }
});

test.run();
