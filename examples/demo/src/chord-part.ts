/**
 * The Chord ring inside the demo: real nodes on loopback UDP speaking the reference's pickled
 * datagrams, routed by the `chord-fingers` plugin, joining one at a time, with keys being put and
 * read back continuously. Lookups from the page are traced hop by hop.
 */
import { InvalidArgumentError, type DhtNode, type Value } from '@trellis/sdk';
import { ChordNode, udpTransport } from '@trellis/sdk/dht';
import type { ChordPart, PartContext } from './demo.js';
import type { ChordNodeView, LookupView } from './view-model.js';
import { jsonSafe } from './json-safe.js';

const num = (id: bigint) => Number(id);

/** True when every node's successor and predecessor are its neighbours in id order. */
function consistent(nodes: readonly ChordNode[]): boolean {
  const ring = [...nodes].sort((a, b) => (a.self.id < b.self.id ? -1 : a.self.id > b.self.id ? 1 : 0));
  return ring.every((n, i) => {
    const next = ring[(i + 1) % ring.length]!;
    const prev = ring[(i + ring.length - 1) % ring.length]!;
    return n.successors[0]?.id === next.self.id && n.predecessor?.id === prev.self.id;
  });
}

/** Waits for stabilization to close the ring, so the first keys land on their final owners. */
async function settle(nodes: readonly ChordNode[], timeoutMs: number, ctx: PartContext): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!consistent(nodes)) {
    if (Date.now() > deadline) {
      ctx.log.warn(`the Chord ring did not settle within ${timeoutMs} ms; starting traffic anyway`);
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Puts are idempotent: on a busy machine a first attempt may time out while the ring settles. */
async function retry<T>(fn: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts) throw err;
      await new Promise((r) => setTimeout(r, 200 * i));
    }
  }
}

export async function startChordPart(ctx: PartContext): Promise<ChordPart> {
  const codec = await ctx.host.serialization.codec('pickle');
  const routing = await ctx.host.dhtRouting.factory('chord-fingers');
  const nodes: ChordNode[] = [];
  const timers: NodeJS.Timeout[] = [];
  const counters = { puts: 0, gets: 0, hits: 0, failures: 0 };
  const close = async () => {
    for (const t of timers) clearInterval(t);
    await Promise.allSettled(nodes.map((n) => n.close({ timeoutMs: 1_000, graceful: false })));
  };
  try {
    for (const port of ctx.ports.chord) {
      const node = new ChordNode({ transport: udpTransport({ codec, logger: ctx.log }), routing, hooks: ctx.host.dhtRouting.hooks, bits: ctx.options.bits, logger: ctx.log });
      nodes.push(node);
      await node.listen(port, '127.0.0.1');
      // Nodes join one at a time through the first, as in the reference's DHT.py.
      if (nodes.length > 1) await node.join(nodes[0]!.address);
    }
    await settle(nodes, 10_000, ctx);
    // The reference client's keys: "A" is local to one node, "2" remote.
    await retry(() => nodes[0]!.put('A', [0, 1, 2]));
    await retry(() => nodes[0]!.put('2', 'xpto'));
  } catch (err) {
    await close();
    throw err;
  }

  // Keep keys flowing: put a reading under a fresh key from a random node, read an older one back.
  const written: string[] = ['A', '2'];
  let seq = 0;
  const any = () => nodes[Math.floor(Math.random() * nodes.length)]!;
  timers.push(
    setInterval(() => {
      const key = `reading-${++seq}`;
      const value: Value = { seq, at: new Date().toISOString() };
      any()
        .put(key, value)
        .then(() => {
          counters.puts++;
          written.push(key);
          if (written.length > 200) written.splice(2, 1);
        })
        .catch(() => counters.failures++);
    }, 700),
    setInterval(() => {
      const key = written[Math.floor(Math.random() * written.length)]!;
      any()
        .get(key)
        .then((v) => {
          counters.gets++;
          if (v !== undefined) counters.hits++;
        })
        .catch(() => counters.failures++);
    }, 500),
  );

  const first = nodes[0]!.address;
  const byId = (id: number) => nodes.find((n) => num(n.self.id) === id);
  const idOf = (n: DhtNode | undefined) => (n ? num(n.id) : null);

  return {
    name: 'chord',
    hints: [
      `chord ring:   ${nodes.length} nodes on udp://127.0.0.1:${nodes.map((n) => n.address.port).join(',')} (m = ${ctx.options.bits})`,
      `  try: npx trellis dht get --node ${first.host}:${first.port} A`,
      `       npx trellis dht put --node ${first.host}:${first.port} mykey '"hello"'`,
      `       npx trellis dht info --node ${first.host}:${first.port}`,
    ],
    snapshot() {
      const views: ChordNodeView[] = nodes.map((n) => {
        const i = n.info();
        return {
          id: num(i.id),
          address: `${i.address.host}:${i.address.port}`,
          predecessor: idOf(i.predecessor),
          successor: idOf(i.successors[0]),
          fingers: i.fingers.map(idOf),
          keys: i.keys,
        };
      });
      return { available: true, bits: ctx.options.bits, nodes: views.sort((a, b) => a.id - b.id), traffic: { ...counters } };
    },
    async lookup(key, from) {
      const origin = from === undefined ? nodes[0]! : byId(from);
      if (!origin) throw new InvalidArgumentError(`no node ${from} in the ring`);
      const result = await origin.lookup(key, { trace: true });
      const value = await origin.get(key);
      const view: LookupView = {
        key,
        id: num(result.id),
        path: result.path.map((n) => num(n.id)),
        owner: num(result.node.id),
        found: value !== undefined,
        ...(value !== undefined ? { value: jsonSafe(value) } : {}),
      };
      return view;
    },
    close,
  };
}
