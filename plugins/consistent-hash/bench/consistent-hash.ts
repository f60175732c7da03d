/**
 * Consistent-hash benchmark.
 * 1. Key movement: 100 000 client-address keys over N = 4, 16, 64 back-ends; remove each back-end
 *    in turn and count the keys that changed owner, next to the ideal 1/N. Also the spread of
 *    shares before removal (max and min share ÷ ideal).
 * 2. Pick cost per request: consistent-hash (client address; header) vs round-robin, both
 *    resolved through the plugin host, same contexts, alternating rounds, medians.
 *
 * Run: npm run bench -w @trellis/plugin-consistent-hash   (after npm run build)
 */
import { createHost, createLogger, createRoutingContext, type Backend, type Strategy, type RoutingContext } from '@trellis/sdk';
import { createConsistentHash } from '../src/strategy.js';

const KEYS = 100_000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const backends = (n: number): Backend[] => Array.from({ length: n }, (_, i) => ({ id: `10.1.${i >> 8}.${i & 255}:8080`, host: `10.1.${i >> 8}.${i & 255}`, port: 8080, weight: 1 }));
const keyCtx = Array.from({ length: KEYS }, (_, i) => createRoutingContext({ mode: 'tcp', clientAddress: `172.${16 + ((i >> 16) & 15)}.${(i >> 8) & 255}.${i & 255}` }));

console.log(`\nKey movement when one of N back-ends is removed (${KEYS.toLocaleString()} client-address keys, every back-end removed in turn)`);
console.log('| N | ideal 1/N | moved: mean | moved: max | keys that moved off a surviving back-end | share spread before (max / min ÷ ideal) |\n|---:|---:|---:|---:|---:|---|');
for (const n of [4, 16, 64]) {
  const list = backends(n);
  const s = createConsistentHash({ backends: list, options: {} });
  const before = keyCtx.map((c) => s.select(c)!.id);
  const counts = new Map<string, number>();
  for (const id of before) counts.set(id, (counts.get(id) ?? 0) + 1);
  const shares = list.map((b) => (counts.get(b.id) ?? 0) / KEYS);
  const moved: number[] = [];
  let wrong = 0;
  for (const gone of list) {
    s.setBackends(list.filter((b) => b !== gone));
    let m = 0;
    for (let i = 0; i < KEYS; i++) {
      const id = s.select(keyCtx[i])!.id;
      if (id !== before[i]) {
        m++;
        if (before[i] !== gone.id) wrong++;
      }
    }
    moved.push(m / KEYS);
  }
  s.setBackends(list);
  const mean = moved.reduce((a, b) => a + b, 0) / moved.length;
  console.log(`| ${n} | ${(1 / n).toFixed(4)} | ${mean.toFixed(4)} | ${Math.max(...moved).toFixed(4)} | ${wrong} | ${(Math.max(...shares) * n).toFixed(2)} / ${(Math.min(...shares) * n).toFixed(2)} |`);
}

// ---------------------------------------------------------------- pick cost
const CALLS = 2_000_000;
const ROUNDS = 7;
const host = createHost({ logger: createLogger('bench', 'silent') });
const list = backends(16);
const rr = await host.routing.createStrategy('round-robin', { backends: list, options: {} });
const chIp = await host.routing.createStrategy('consistent-hash', { backends: list, options: {} });
const chHeader = await host.routing.createStrategy('consistent-hash', { backends: list, options: { hashOn: 'header:x-user' } });
const httpCtx: RoutingContext[] = Array.from({ length: 1024 }, (_, i) => createRoutingContext({ clientAddress: `172.16.${i >> 8}.${i & 255}`, headers: { 'x-user': `user-${i * 7919}` } }));

const loop = (s: Strategy) => {
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) {
    const b = s.select(httpCtx[i & 1023])!;
    s.update(b, { durationMs: 1, ok: true });
    sink += b.port;
  }
  const ns = Number(process.hrtime.bigint() - t0) / CALLS;
  if (sink === 42) console.log('');
  return ns;
};
const cases: [string, Strategy][] = [
  ['round-robin', rr],
  ['consistent-hash, hash-on client-ip', chIp],
  ['consistent-hash, hash-on header:x-user', chHeader],
];
const results = new Map<string, number[]>(cases.map(([n]) => [n, []]));
for (const [, s] of cases) loop(s); // warm-up
for (let r = 0; r < ROUNDS; r++) for (const [name, s] of cases) results.get(name)!.push(loop(s));
const base = median(results.get('round-robin')!);
console.log(`\nPick cost: select(ctx) + update() per request, 16 back-ends (2 560 ring points), 1 024 distinct keys, ${CALLS.toLocaleString()} calls x ${ROUNDS} alternating rounds (median)`);
console.log('| strategy | ns/request | ratio to round-robin |\n|---|---:|---:|');
for (const [name] of cases) {
  const m = median(results.get(name)!);
  console.log(`| ${name} | ${m.toFixed(1)} | ${(m / base).toFixed(2)}x |`);
}
await host.dispose();
