/**
 * `npm run bench:dht`: the Chord measurements.
 *  1. Lookup path length in the in-process simulation, N = 2^3 … 2^14, with the chord-fingers
 *     plugin and with successor-only routing, against the paper's ½·log2 N.
 *  2. 50% of the nodes crashing at once (r = 2·log2 N, k = 3): keys with a surviving replica lost.
 *  3. A 64-node ring on loopback UDP: time to full correctness after the last join, put/get
 *     latency and operations/s.
 * Flags: --max-exp K (default 14), --fail-nodes N (default 1024), --udp-nodes N (default 64),
 * --skip-udp, --skip-failure.
 */
import { parseArgs } from 'node:util';
import { createHost, createLogger, type DhtRoutingFactory } from '@trellis/sdk';
import {
  checkRing,
  DhtClient,
  idealSuccessor,
  Simulation,
  type ChordNode,
} from '@trellis/sdk/dht';
import { startRing } from '../src/ring.js';

const { values } = parseArgs({
  options: {
    'max-exp': { type: 'string', default: '14' },
    'fail-nodes': { type: 'string', default: '1024' },
    'udp-nodes': { type: 'string', default: '64' },
    'skip-udp': { type: 'boolean', default: false },
    'skip-failure': { type: 'boolean', default: false },
  },
});

const host = createHost({ logger: createLogger('bench', 'error') });
const fingers = await host.dhtRouting.factory('chord-fingers');
const out = (line = '') => process.stdout.write(line + '\n');

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

// ------------------------------------------------------------------ 1. path length
interface HopStats {
  mean: number;
  meanToOwner: number;
  p99: number;
  lookups: number;
  rings: number;
  wrong: number;
  ms: number;
}

async function measureHops(n: number, routing: DhtRoutingFactory | undefined, totalLookups: number): Promise<HopStats> {
  // small rings vary a lot with where the random ids fall: average over many rings, as the paper does
  const rings = Math.max(1, Math.min(64, Math.floor(4096 / n)));
  const perRing = Math.ceil(totalLookups / rings);
  const paths: number[] = [];
  let toOwner = 0;
  let wrong = 0;
  const t0 = performance.now();
  for (let r = 0; r < rings; r++) {
    const sim = new Simulation({ nodes: n, bits: 64, routing, seed: 1000 * n + r + 1, node: { maxHops: 4 * n + 16, lookupTimeoutMs: 1e9 } });
    await sim.warmStart();
    const ideal = idealSuccessor(sim.nodes.map((x) => x.self).sort((a, b) => (a.id < b.id ? -1 : 1)));
    const pending: Promise<void>[] = [];
    for (let i = 0; i < perRing; i++) {
      const from = sim.nodes[Math.floor(sim.random() * n)]!;
      const id = sim.randomId(new Set());
      pending.push(
        from.lookup(id, { trace: false, ownerShortcut: false }).then((res) => {
          paths.push(res.routeHops);
          toOwner += res.hops;
          if (res.node.id !== ideal(id).id) wrong++;
        }),
      );
    }
    let done = false;
    const all = Promise.all(pending).finally(() => (done = true));
    await sim.clock.runWhile(() => !done, 1e9, 1000);
    await all;
    await sim.close();
  }
  paths.sort((a, b) => a - b);
  const mean = paths.reduce((a, b) => a + b, 0) / paths.length;
  return { mean, meanToOwner: toOwner / paths.length, p99: percentile(paths, 0.99), lookups: paths.length, rings, wrong, ms: performance.now() - t0 };
}

const maxExp = Number(values['max-exp']);
out('## Lookup path length (in-process simulation, 64-bit ids, paper-exact find_successor)');
out();
out('| N | rings | lookups | mean path (fingers) | ½·log2 N | ratio | within ±10% | p99 | log2 N | p99 ≤ log2 N | mean hops to owner | mean path (successor only) | wrong owners | ms |');
out('|---:|---:|---:|---:|---:|---:|:-:|---:|---:|:-:|---:|---:|---:|---:|');
let allOk = true;
for (let k = 3; k <= maxExp; k++) {
  const n = 2 ** k;
  const f = await measureHops(n, fingers, 4000);
  // successor-only costs ~N/2 forwards per lookup: fewer lookups for big rings
  const s = await measureHops(n, undefined, Math.max(64, Math.min(2000, Math.floor(2 ** 21 / n))));
  const half = k / 2;
  const ratio = f.mean / half;
  const within = Math.abs(ratio - 1) <= 0.1;
  const p99ok = f.p99 <= k;
  allOk &&= within && p99ok && f.wrong === 0 && s.wrong === 0;
  out(
    `| ${n} | ${f.rings} | ${f.lookups} | ${f.mean.toFixed(3)} | ${half.toFixed(1)} | ${ratio.toFixed(3)} | ${within ? 'yes' : 'NO'} | ${f.p99} | ${k} | ${p99ok ? 'yes' : 'NO'} | ${f.meanToOwner.toFixed(3)} | ${s.mean.toFixed(1)} | ${f.wrong + s.wrong} | ${(f.ms + s.ms).toFixed(0)} |`,
  );
}
out();
out(`path-length criteria: ${allOk ? 'all met' : 'NOT all met'}`);
out();

// ------------------------------------------------------------------ 2. 50% failure
if (!values['skip-failure']) {
  const n = Number(values['fail-nodes']);
  const r = 2 * Math.ceil(Math.log2(n));
  const k = 3;
  const sim = new Simulation({
    nodes: n,
    bits: 64,
    routing: fingers,
    successors: r,
    replicas: k,
    seed: 42,
    node: { stabilizeMs: 250, fixFingersMs: 500, checkPredecessorMs: 500, rpcTimeoutMs: 100, hopTimeoutMs: 50, lookupTimeoutMs: 5000 },
  });
  const t0 = performance.now();
  await sim.warmStart({ maintenance: true });
  const keys = Array.from({ length: 4 * n }, (_, i) => `key-${i}`);
  const drive = async <T>(p: Promise<T>) => {
    let done = false;
    const q = p.finally(() => (done = true));
    await sim.clock.runWhile(() => !done, 60_000, 5);
    return q;
  };
  await drive(Promise.all(keys.map((key, i) => sim.nodes[i % n]!.put(key, i))));
  await sim.clock.advance(1000);
  const shuffled = [...sim.nodes].sort(() => sim.random() - 0.5);
  const dead = new Set<ChordNode>(shuffled.slice(0, n / 2));
  const withReplica = keys.filter((key) => sim.nodes.some((node) => !dead.has(node) && node.localValue(key) !== undefined));
  const crashAt = sim.clock.now();
  for (const node of dead) sim.crash(node);
  const settled = await sim.settle(120_000, 250);
  const settleMs = sim.clock.now() - crashAt;
  await sim.clock.advance(1000);
  const live = sim.live();
  let lost = 0;
  let failed = 0;
  const results = await drive(
    Promise.all(
      withReplica.map((key) =>
        live[Math.floor(sim.random() * live.length)]!.get(key).then(
          (v) => v,
          () => undefined,
        ),
      ),
    ),
  );
  results.forEach((v, i) => {
    if (v === undefined) failed++;
    else if (v !== Number(withReplica[i]!.slice(4))) lost++;
  });
  await sim.close();
  out(`## 50% of ${n} nodes crash at once (r = ${r}, k = ${k} successor replicas, ${keys.length} keys)`);
  out();
  out('| nodes | crashed | keys | keys with a surviving copy | ring fully correct again after (virtual) | lookups failed | keys lost | real ms |');
  out('|---:|---:|---:|---:|---:|---:|---:|---:|');
  out(`| ${n} | ${dead.size} | ${keys.length} | ${withReplica.length} | ${settled ? `${(settleMs / 1000).toFixed(1)} s` : 'NOT within 120 s'} | ${failed} | ${lost + failed} | ${(performance.now() - t0).toFixed(0)} |`);
  out();
}

// ------------------------------------------------------------------ 3. loopback UDP
if (!values['skip-udp']) {
  const n = Number(values['udp-nodes']);
  const ring = await startRing({ ports: [0], bits: 32, hash: 'sha1', pluginHost: host, logger: createLogger('bench', 'error') });
  const t0 = performance.now();
  for (let i = 1; i < n; i++) await ring.add(0);
  const lastJoin = performance.now();
  const correct = () => checkRing(ring.nodes).correct === ring.nodes.length;
  while (!correct() && performance.now() - lastJoin < 30_000) await new Promise((r) => setTimeout(r, 50));
  const settleMs = performance.now() - lastJoin;
  const ok = correct();
  const codec = await host.serialization.codec('pickle');
  const clients = Array.from({ length: 16 }, () => new DhtClient({ codec, timeoutMs: 2000 }));
  const ops = 4000;
  const lat: Record<'put' | 'get', number[]> = { put: [], get: [] };
  const errors: Record<'put' | 'get', number> = { put: 0, get: 0 };
  const timeouts: Record<'put' | 'get', number> = { put: 0, get: 0 };
  const rates: Record<string, number> = {};
  for (const op of ['put', 'get'] as const) {
    let next = 0;
    const start = performance.now();
    await Promise.all(
      clients.map(async (c, ci) => {
        while (next < ops) {
          const i = next++;
          const node = ring.nodes[(i * 7 + ci) % n]!.address;
          const t = performance.now();
          try {
            if (op === 'put') {
              if (!(await c.put(node, `k${i}`, { i, payload: 'x'.repeat(64) }))) errors.put++;
            } else if ((await c.get(node, `k${i}`)) === undefined) errors.get++;
          } catch {
            timeouts[op]++; // no reply within 2 s (the client, like the original, does not retry)
          }
          lat[op].push(performance.now() - t);
        }
      }),
    );
    rates[op] = ops / ((performance.now() - start) / 1000);
  }
  for (const c of clients) await c.close();
  await ring.close();
  for (const op of ['put', 'get'] as const) lat[op].sort((a, b) => a - b);
  out(`## ${n}-node ring on loopback UDP (pickle datagrams, 32-bit SHA-1 ids, default timers: stabilize 250 ms, fix-fingers 500 ms)`);
  out();
  out(`joins: ${((lastJoin - t0) / 1000).toFixed(1)} s for ${n} nodes; fully correct (successors, predecessors, every finger) ${ok ? `${(settleMs / 1000).toFixed(2)} s after the last join` : 'NOT within 30 s'}`);
  out();
  out('| op | ops | clients | ops/s | p50 ms | p99 ms | NACK | no reply in 2 s |');
  out('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const op of ['put', 'get'] as const) {
    out(`| ${op} | ${ops} | ${clients.length} | ${rates[op]!.toFixed(0)} | ${percentile(lat[op], 0.5).toFixed(2)} | ${percentile(lat[op], 0.99).toFixed(2)} | ${errors[op]} | ${timeouts[op]} |`);
  }
  out();
}

await host.dispose();
