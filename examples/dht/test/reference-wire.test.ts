/**
 * `wire: 'reference'`: Trellis nodes and nodes of an independent implementation of the original
 * protocol (`python/reference_node.py`, written from REFERENCE.md §3) form one ring, whichever
 * starts it. Successors and predecessors must settle to the ring the ids imply, and put/get
 * through any node must reach the owner. Also: the Trellis wire's version mark.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { createHost, createLogger, JoinError, type Codec, type PluginHost, type Value } from '@trellis/sdk';
import { runCommand } from '@trellis/sdk/cli';
import { dht } from '../src/cli.js';
import { createUdpNode, DhtClient, fnv1aHash, addressRepr, type ChordNode } from '@trellis/sdk/dht';
import { createSocket } from 'node:dgram';
import { python, waitFor } from './helpers.js';

const REFERENCE_NODE = fileURLToPath(new URL('../python/reference_node.py', import.meta.url));
const BITS = 10; // the reference's m: a stabilize of the original sends one SUCCESSOR per bit
/**
 * The original stabilizes only when its socket has been idle for its read timeout, so a Trellis
 * node must not ask it something every 40 ms: Trellis keeps its default-like periods here.
 */
const TIMERS = { stabilizeMs: 150, fixFingersMs: 300, checkPredecessorMs: 300, rpcTimeoutMs: 600, hopTimeoutMs: 600, lookupTimeoutMs: 2000 } as const;
const PY_TIMEOUT = '0.03';
const quiet = createLogger('dht-test', 'silent');

interface PyNode {
  kind: 'python';
  port: number;
  id: number;
  child: ChildProcess;
}
interface TsNode {
  kind: 'trellis';
  port: number;
  id: number;
  node: ChordNode;
}
type AnyNode = PyNode | TsNode;

/** Starts the original node on a free port, joining through `joinPort`; resolves once it has joined. */
const idOf = (port: number) => Number(fnv1aHash(addressRepr('localhost', port), BITS));

/** A free UDP port whose id no node of the ring holds (ids collide easily at m = 10). */
async function freshPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const s = createSocket('udp4');
    const port = await new Promise<number>((r) => s.bind(0, '127.0.0.1', () => r(s.address().port)));
    await new Promise<void>((r) => s.close(() => r()));
    if (!taken.has(idOf(port))) return port;
  }
}

function startPython(port: number, joinPort?: number): Promise<PyNode> {
  const args = [REFERENCE_NODE, String(port), ...(joinPort ? [String(joinPort)] : []), '--bits', String(BITS), '--timeout', PY_TIMEOUT];
  const child = spawn('python3', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the Python node did not join within 20 s: ${stderr}`));
    }, 20_000);
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      const { id, port } = JSON.parse(line) as { id: number; port: number };
      resolve({ kind: 'python', port, id, child });
    });
    child.once('exit', (code) => reject(new Error(`the Python node exited (${code}): ${stderr}`)));
  });
}

async function startTrellis(host: PluginHost, taken: Set<number>, joinPort?: number): Promise<TsNode> {
  let node: ChordNode;
  for (;;) {
    node = await createUdpNode(host, { ...TIMERS, bits: BITS, wire: 'reference', identityHost: 'localhost', logger: quiet });
    await node.listen(0, '127.0.0.1');
    if (!taken.has(Number(node.self.id))) break;
    await node.close({ graceful: false });
  }
  try {
    if (joinPort) await node.join({ host: '127.0.0.1', port: joinPort });
  } catch (err) {
    await node.close({ graceful: false });
    throw err;
  }
  return { kind: 'trellis', port: node.address.port, id: Number(node.self.id), node };
}

/** What a node believes: its successor's and predecessor's ids. */
async function view(n: AnyNode, client: DhtClient): Promise<{ successor?: number; predecessor?: number; successorPort?: number }> {
  if (n.kind === 'trellis') {
    const s = n.node.successors[0]!;
    return { successor: Number(s.id), successorPort: s.port, predecessor: n.node.predecessor === undefined ? undefined : Number(n.node.predecessor.id) };
  }
  const state = (await client.request({ host: '127.0.0.1', port: n.port }, { method: 'DEBUG_STATE' })).args as Record<string, unknown>;
  const addr = state.successor_addr as [string, number];
  return { successor: state.successor_id as number, successorPort: addr[1], predecessor: (state.predecessor_id as number | null) ?? undefined };
}

/** Nodes whose successor or predecessor is not the one the ids imply. */
async function wrong(nodes: AnyNode[], client: DhtClient): Promise<string[]> {
  const ring = [...nodes].sort((a, b) => a.id - b.id);
  const out: string[] = [];
  for (let i = 0; i < ring.length; i++) {
    const n = ring[i]!;
    const succ = ring[(i + 1) % ring.length]!;
    const pred = ring[(i - 1 + ring.length) % ring.length]!;
    let v: Awaited<ReturnType<typeof view>>;
    try {
      v = await view(n, client);
    } catch (err) {
      out.push(`${n.kind} ${n.id}: ${(err as Error).message}`);
      continue;
    }
    if (v.successor !== succ.id || v.successorPort !== succ.port || v.predecessor !== pred.id) {
      out.push(`${n.kind} ${n.id}: successor ${v.successor}@${v.successorPort} (want ${succ.id}@${succ.port}), predecessor ${v.predecessor} (want ${pred.id})`);
    }
  }
  return out;
}

async function mixedRing(order: ('python' | 'trellis')[]) {
  const host = createHost();
  const codec = await host.serialization.codec('pickle');
  const client = new DhtClient({ codec, timeoutMs: 1500 });
  const nodes: AnyNode[] = [];
  try {
    for (const kind of order) {
      // each node joins through a node of the other kind when there is one, else through the first
      const through = [...nodes].reverse().find((n) => n.kind !== kind) ?? nodes[0];
      const taken = new Set(nodes.map((o) => o.id));
      const n = kind === 'python' ? await startPython(await freshPort(taken), through?.port) : await startTrellis(host, taken, through?.port);
      nodes.push(n);
      for (const m of nodes) if (m.kind === 'trellis') assert.is(m.id, idOf(m.port));
    }
    let last: string[] = [];
    const settled = await waitFor(async () => (last = await wrong(nodes, client)).length === 0, 30_000);
    assert.ok(settled, `the mixed ring did not settle:\n${last.join('\n')}`);

    // put through every node in turn, read back through every other one
    const keys = Array.from({ length: 24 }, (_, i) => `key-${i}`);
    for (let i = 0; i < keys.length; i++) {
      const via = nodes[i % nodes.length]!;
      assert.ok(await client.put({ host: '127.0.0.1', port: via.port }, keys[i]!, [i, `v${i}`]), `put ${keys[i]} through ${via.kind} ${via.id}`);
    }
    for (let i = 0; i < keys.length; i++) {
      const via = nodes[(i + 1 + (i % 3)) % nodes.length]!;
      assert.equal(await client.get({ host: '127.0.0.1', port: via.port }, keys[i]!), [i, `v${i}`], `get ${keys[i]} through ${via.kind} ${via.id}`);
    }
    assert.is(await client.get({ host: '127.0.0.1', port: nodes[1]!.port }, 'never-stored'), undefined);
    // the key sits on the node the ids make its owner, whatever kind that node is
    const ring = [...nodes].sort((a, b) => a.id - b.id);
    for (const key of keys) {
      const h = Number(fnv1aHash(key, BITS));
      const owner = ring.find((n) => n.id >= h) ?? ring[0]!;
      if (owner.kind === 'trellis') assert.ok(owner.node.localValue(key) !== undefined, `${key} on trellis ${owner.id}`);
      else {
        const state = (await client.request({ host: '127.0.0.1', port: owner.port }, { method: 'DEBUG_STATE' })).args as { keys: string[] };
        assert.ok(state.keys.includes(key), `${key} on python ${owner.id}`);
      }
    }
    // the unmodified Python client through a Python and a Trellis node
    const py = nodes.find((n) => n.kind === 'python')!;
    const ts = nodes.find((n) => n.kind === 'trellis')!;
    assert.is(await python(py.port, 'put', 'A', '[0, 1, 2]'), true);
    assert.equal(await python(ts.port, 'get', 'A'), [0, 1, 2]);
  } finally {
    await client.close();
    for (const n of nodes) {
      if (n.kind === 'python') n.child.kill('SIGKILL');
      else await n.node.close({ graceful: false });
    }
    await host.dispose();
  }
}

test('a mixed ring started by an original node: successors, predecessors and put/get through every node', async () => {
  await mixedRing(['python', 'trellis', 'python', 'trellis', 'python', 'trellis']);
});

test('a mixed ring started by a Trellis node: successors, predecessors and put/get through every node', async () => {
  await mixedRing(['trellis', 'python', 'trellis', 'python', 'trellis', 'python']);
});

/** A bare UDP socket on 127.0.0.1 that records what it receives. */
async function rawSocket(codec: Codec) {
  const socket = createSocket('udp4');
  const port = await new Promise<number>((r) => socket.bind(0, '127.0.0.1', () => r(socket.address().port)));
  const got: { method: string; args: Value | undefined }[] = [];
  socket.on('message', (buf) => got.push(codec.decode(buf) as { method: string; args: Value | undefined }));
  return { port, got, send: (to: number, m: Value) => socket.send(codec.encode(m), to, '127.0.0.1'), close: () => socket.close() };
}
const tuple = (host: string, port: number) => Object.defineProperty([host, port], Symbol.for('trellis.pickle.tuple'), { value: true }) as Value;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the Trellis wire is versioned: unmarked or other-version node messages are dropped and counted, a joiner of another version is told why', async () => {
  const host = createHost();
  const codec = await host.serialization.codec('pickle');
  const node = await createUdpNode(host, { ...TIMERS, bits: BITS, identityHost: 'localhost', logger: quiet });
  await node.listen(0, '127.0.0.1');
  const attacker = await rawSocket(codec);
  const refJoiner = await createUdpNode(host, { ...TIMERS, lookupTimeoutMs: 300, bits: BITS, wire: 'reference', identityHost: 'localhost', logger: quiet });
  try {
    const port = node.address.port;
    // a NOTIFY of the original protocol (no mark) from the node it names: a Trellis-wire node ignores it
    attacker.send(port, { method: 'NOTIFY', args: { predecessor_id: idOf(attacker.port), predecessor_addr: tuple('localhost', attacker.port) } });
    // a joiner of a later wire version gets an answer that says why
    attacker.send(port, { method: 'JOIN_REQ', v: 3, args: { addr: tuple('localhost', attacker.port), id: idOf(attacker.port), rid: 77 } });
    assert.ok(await waitFor(() => attacker.got.length > 0, 3000));
    const rep = attacker.got[0]!;
    assert.is(rep.method, 'JOIN_REP');
    assert.is((rep.args as { rid: number }).rid, 77);
    assert.match(String((rep.args as { error: string }).error), /wire version 3; this node speaks Trellis wire 2/);
    assert.is(node.predecessor, undefined);
    assert.is(node.stats().wireVersion, 2);
    // clients need no mark: the original client's requests still work
    assert.is(await python(port, 'put', 'A', '1'), true);
    assert.is(await python(port, 'get', 'A'), 1);
    // a node of the original protocol cannot join a Trellis-wire ring: it fails, the ring is untouched
    await refJoiner.listen(0, '127.0.0.1');
    const err = await refJoiner.join({ host: '127.0.0.1', port }).then(() => undefined, (e: Error) => e);
    assert.instance(err, JoinError);
    assert.ok(node.stats().wireVersion as number >= 3);
    assert.is(node.successors[0]!.id, node.self.id);
  } finally {
    attacker.close();
    await refJoiner.close({ graceful: false });
    await node.close({ graceful: false });
    await host.dispose();
  }
});

test('reference mode keeps the checks the original protocol allows: forged NOTIFY, reflection through from, unasked STABILIZE', async () => {
  const host = createHost();
  const codec = await host.serialization.codec('pickle');
  const nodes: AnyNode[] = [];
  const attacker = await rawSocket(codec);
  const third = await rawSocket(codec);
  try {
    const ts = await startTrellis(host, new Set());
    nodes.push(ts);
    const py = await startPython(await freshPort(new Set([ts.id])), ts.port);
    nodes.push(py);
    const client = new DhtClient({ codec, timeoutMs: 1500 });
    try {
      assert.ok(await waitFor(async () => (await wrong(nodes, client)).length === 0, 20_000), 'the two-node ring settles');
    } finally {
      await client.close();
    }
    const victim = ts.node;
    const before = victim.predecessor;
    // NOTIFY naming the Python node's address, sent from the attacker's socket
    attacker.send(ts.port, { method: 'NOTIFY', args: { predecessor_id: py.id, predecessor_addr: tuple('localhost', py.port) } });
    // NOTIFY whose id is not the hash of its address
    attacker.send(ts.port, { method: 'NOTIFY', args: { predecessor_id: (idOf(attacker.port) + 1) % 2 ** BITS, predecessor_addr: tuple('localhost', attacker.port) } });
    // a STABILIZE nobody asked for
    attacker.send(ts.port, { method: 'STABILIZE', args: idOf(attacker.port) });
    // GET with `from` naming a third address: answered to the real source
    attacker.send(ts.port, { method: 'PUT', args: { key: 'k', value: 'v'.repeat(500), from: tuple('127.0.0.1', third.port) } });
    await waitFor(() => attacker.got.length > 0, 3000);
    await sleep(800);
    assert.is(third.got.length, 0, 'nothing reached the third address');
    assert.ok(attacker.got.some((m) => m.method === 'ACK'), 'the PUT was answered to its real source');
    assert.ok((victim.stats().reflectionRefused as number) >= 1);
    assert.ok((victim.stats().membershipRefused as number) >= 2);
    assert.equal(victim.predecessor, before);
    assert.is(victim.successors[0]!.port, py.port);
  } finally {
    attacker.close();
    third.close();
    for (const n of nodes) {
      if (n.kind === 'python') n.child.kill('SIGKILL');
      else await n.node.close({ graceful: false });
    }
    await host.dispose();
  }
});

async function run(...argv: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const abort = new AbortController();
  const done = runCommand('trellis dht', dht, argv, { stdout, stderr, signal: abort.signal });
  return { done, abort, out: () => out, err: () => err };
}

test('trellis dht node --wire reference: an original node joins it and put/get work through both', async () => {
  const bad = await run('node', '--port', '0', '--wire', 'v9');
  assert.is(await bad.done, 2);
  assert.match(bad.err(), /--wire must be trellis or reference/);
  const keyed = await run('node', '--port', '0', '--wire', 'reference', '--ring-key', REFERENCE_NODE);
  assert.is(await keyed.done, 2);
  assert.match(keyed.err(), /--ring-key cannot be used with --wire reference/);

  const cli = await run('node', '--port', '0', '--wire', 'reference', '--stabilize-ms', '150');
  let py: PyNode | undefined;
  const host = createHost();
  const codec = await host.serialization.codec('pickle');
  const client = new DhtClient({ codec, timeoutMs: 1500 });
  try {
    assert.ok(await waitFor(() => cli.out().includes('\n'), 10_000), 'the node starts');
    const started = JSON.parse(cli.out().split('\n')[0]!) as { id: number; address: [string, number] };
    const port = started.address[1];
    assert.is(started.id, idOf(port));
    py = await startPython(await freshPort(new Set([started.id])), port);
    const settled = await waitFor(async () => {
      const state = (await client.request({ host: '127.0.0.1', port: py!.port }, { method: 'DEBUG_STATE' })).args as { successor_id: number; predecessor_id: number | null };
      const info = await client.info({ host: '127.0.0.1', port });
      return state.successor_id === started.id && state.predecessor_id === started.id && (info.predecessor as [number] | null)?.[0] === py!.id;
    }, 20_000);
    assert.ok(settled, 'the original node and the CLI node are each other\'s successor and predecessor');
    for (let i = 0; i < 8; i++) assert.ok(await client.put({ host: '127.0.0.1', port: i % 2 ? port : py.port }, `k${i}`, i));
    for (let i = 0; i < 8; i++) assert.is(await client.get({ host: '127.0.0.1', port: i % 2 ? py.port : port }, `k${i}`), i);
  } finally {
    cli.abort.abort(); // a graceful leave: its keys go to the original node as PUTs
    await cli.done;
    py?.child.kill('SIGKILL');
    await client.close();
    await host.dispose();
  }
});

test.run();
