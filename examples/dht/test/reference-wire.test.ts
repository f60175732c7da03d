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
import { createHost, createLogger, type PluginHost } from '@trellis/sdk';
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
      reject(new Error(`the Python node did not join within 10 s: ${stderr}`));
    }, 10_000);
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
    let v;
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
    const settled = await waitFor(async () => (last = await wrong(nodes, client)).length === 0, 15_000);
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

test.run();
