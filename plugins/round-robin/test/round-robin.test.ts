import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { createHost, type Backend } from '@trellis/sdk';
import { replay, weighted } from '../../../sdk/test/strategy-replay.js';
import { createRoundRobin } from '../src/strategy.js';

const four: Backend[] = [5000, 5001, 5002, 5003].map((port) => ({ id: `b${port - 5000}`, host: '127.0.0.1', port }));
const picks = (s: { select(): Backend | undefined }, n: number) => Array.from({ length: n }, () => s.select()?.id);

test('round-robin cycles in list order and ignores outcomes', () => {
  const s = createRoundRobin({ backends: four, options: {} });
  assert.equal(picks(s, 5), ['b0', 'b1', 'b2', 'b3', 'b0']);
  s.update(four[1]!, { durationMs: 5000, ok: false });
  s.update(four[0]!, { durationMs: 1, ok: true });
  assert.equal(picks(s, 5), ['b1', 'b2', 'b3', 'b0', 'b1']);
});

test('round-robin moves on to the next survivor when the back-end due next is removed', () => {
  const s = createRoundRobin({ backends: four, options: {} });
  assert.equal(picks(s, 2), ['b0', 'b1']);
  s.setBackends([four[0]!, four[1]!, four[3]!]); // b2 down
  assert.equal(picks(s, 4), ['b3', 'b0', 'b1', 'b3']);
});

test('round-robin keeps its place when a back-end it already served is removed', () => {
  const s = createRoundRobin({ backends: four, options: {} });
  assert.equal(picks(s, 2), ['b0', 'b1']);
  s.setBackends([four[0]!, four[2]!, four[3]!]); // b1, already served, goes down
  assert.equal(picks(s, 3), ['b2', 'b3', 'b0']);
});

test('round-robin includes a back-end that comes back at its list position', () => {
  const s = createRoundRobin({ backends: [four[0]!, four[3]!], options: {} });
  assert.equal(picks(s, 1), ['b0']);
  s.setBackends(four);
  assert.equal(picks(s, 5), ['b3', 'b0', 'b1', 'b2', 'b3']);
});

test('round-robin answers undefined with no usable back-end, then recovers', () => {
  const s = createRoundRobin({ backends: four, options: {} });
  s.setBackends([]);
  assert.is(s.select(), undefined);
  s.setBackends([four[2]!, four[1]!]);
  assert.equal(picks(s, 3), ['b2', 'b1', 'b2']);
});

test('the round-robin plugin loads lazily through the plugin host', async () => {
  const host = createHost({ dirs: [fileURLToPath(new URL('..', import.meta.url))], builtins: false });
  const s = await host.routing.createStrategy('round-robin', { backends: four, options: {} });
  assert.equal(picks(s, 5), ['b0', 'b1', 'b2', 'b3', 'b0']);
  await host.dispose();
});

test('round-robin with all weights equal replays the unweighted picks exactly', () => {
  for (const seed of [1, 2, 3, 42]) {
    const make = (list: Backend[]) => createRoundRobin({ backends: list, options: {} });
    assert.equal(replay(make, weighted(four, 7), seed), replay(make, four, seed), `seed ${seed}`);
  }
});

test('round-robin with weights is nginx smooth weighted round robin (5,1,1 → a a b a c a a)', () => {
  const [a, b, c] = weighted(four.slice(0, 3), (i) => [5, 1, 1][i]!);
  const s = createRoundRobin({ backends: [a!, b!, c!], options: {} });
  assert.equal(picks(s, 14), ['b0', 'b0', 'b1', 'b0', 'b2', 'b0', 'b0', 'b0', 'b0', 'b1', 'b0', 'b2', 'b0', 'b0']);
});

test('round-robin gives each back-end its weight in every window of total-weight picks', () => {
  const list = weighted(four, (i) => [3, 1, 2, 4][i]!);
  const s = createRoundRobin({ backends: list, options: {} });
  for (let w = 0; w < 5; w++) {
    const counts: Record<string, number> = {};
    for (const id of picks(s, 10)) counts[id!] = (counts[id!] ?? 0) + 1;
    assert.equal(counts, { b0: 3, b1: 1, b2: 2, b3: 4 });
  }
  // a weight change takes effect at once, and back to equal weights restores the plain cycle
  s.setBackends(weighted(four, (i) => (i === 1 ? 3 : 1)));
  const counts: Record<string, number> = {};
  for (const id of picks(s, 6)) counts[id!] = (counts[id!] ?? 0) + 1;
  assert.equal(counts, { b0: 1, b1: 3, b2: 1, b3: 1 });
  s.setBackends(weighted(four, 2));
  assert.equal(picks(s, 4), ['b0', 'b1', 'b2', 'b3']);
});

test.run();
