import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { createHost, type Backend } from '@trellis/sdk';
import { replay, weighted } from '../../../sdk/test/strategy-replay.js';
import { LeastResponseTime } from '../src/strategy.js';

const four: Backend[] = [5000, 5001, 5002, 5003].map((port) => ({ id: `b${port - 5000}`, host: '127.0.0.1', port }));
const [b0, b1, b2, b3] = four as [Backend, Backend, Backend, Backend];
const done = { durationMs: 0, ok: true };

/** A strategy on a fake clock the test moves by hand. */
function make(backends: Backend[] = four) {
  const clock = { t: 0 };
  const s = new LeastResponseTime({ backends, options: { now: () => clock.t } });
  return { s, clock };
}

test('least-response-time with nothing completed breaks ties by active, then list order', () => {
  const { s } = make();
  // every mean is 0: fewest active first, then list order
  assert.equal([s.select(), s.select(), s.select(), s.select(), s.select()].map((b) => b?.id), ['b0', 'b1', 'b2', 'b3', 'b0']);
});

test('least-response-time prefers the lowest mean of completed requests', () => {
  const { s, clock } = make();
  for (let i = 0; i < 4; i++) s.select(); // one start each at t=0
  clock.t = 10;
  s.update(b0, done); // b0 mean 10
  clock.t = 40;
  s.update(b1, done); // b1 mean 40
  clock.t = 20;
  s.update(b2, done); // b2 mean 20
  // b3 has completed nothing: mean 0, wins
  assert.is(s.select()?.id, 'b3');
  clock.t = 45;
  s.update(b3, done); // first b3 start was t=0 (FIFO): mean 45
  s.update(b3, done); // second start t=20: 25 → mean 35
  assert.equal(s.snapshot().b3, { active: 0, completed: 2, meanMs: 35 });
  assert.is(s.select()?.id, 'b0'); // 10 < 20 < 35 < 40
  assert.is(s.select()?.id, 'b0'); // still lowest mean though busier
});

test('least-response-time pairs completions with the oldest unfinished start (FIFO)', () => {
  const { s, clock } = make([b0]);
  clock.t = 0;
  s.select(); // start 0
  clock.t = 100;
  s.select(); // start 100
  clock.t = 110;
  s.update(b0, done); // pairs with start 0 → 110, not 10
  assert.equal(s.snapshot().b0, { active: 1, completed: 1, meanMs: 110 });
  clock.t = 130;
  s.update(b0, done); // pairs with start 100 → 30; mean (110+30)/2
  assert.equal(s.snapshot().b0, { active: 0, completed: 2, meanMs: 70 });
  s.update(b0, done); // no unfinished start: ignored
  assert.equal(s.snapshot().b0, { active: 0, completed: 2, meanMs: 70 });
});

test('least-response-time breaks equal means by fewest active, then list order', () => {
  const { s, clock } = make();
  for (let i = 0; i < 4; i++) s.select();
  clock.t = 5;
  for (const b of four) s.update(b, done); // every mean 5, none active
  assert.is(s.select()?.id, 'b0'); // all tie: list order
  assert.is(s.select()?.id, 'b1'); // b0 now has 1 active
  assert.is(s.select()?.id, 'b2');
  s.update(b1, done); // start 5, end 5: b1 mean (5+0)/2 = 2.5
  assert.is(s.select()?.id, 'b1');
  assert.is(s.select()?.id, 'b1'); // mean still lowest with 1 active
});

test('least-response-time keeps history of a back-end that goes down and comes back', () => {
  const { s, clock } = make();
  for (let i = 0; i < 4; i++) s.select();
  clock.t = 50;
  s.update(b0, done);
  s.update(b1, done);
  s.update(b2, done);
  s.setBackends([b0, b1, b2]); // b3 down, one request in flight
  clock.t = 60;
  assert.is(s.select()?.id, 'b0');
  s.setBackends(four); // b3 back: still mean 0, but its in-flight start is kept
  assert.is(s.select()?.id, 'b3');
  clock.t = 80;
  s.update(b3, done); // pairs with start 0 → 80
  assert.equal(s.snapshot().b3, { active: 1, completed: 1, meanMs: 80 });
  s.setBackends([]);
  assert.is(s.select(), undefined);
});

test('the least-response-time plugin loads lazily through the plugin host', async () => {
  const host = createHost({ dirs: [fileURLToPath(new URL('..', import.meta.url))], builtins: false });
  const s = await host.routing.createStrategy('least-response-time', { backends: four, options: {} });
  assert.equal([s.select(), s.select()].map((b) => b?.id), ['b0', 'b1']);
  await host.dispose();
});

test('least-response-time with all weights equal replays the unweighted picks exactly', () => {
  for (const seed of [1, 2, 3, 42]) {
    const make = (list: Backend[], now: () => number) => new LeastResponseTime({ backends: list, options: { now } });
    assert.equal(replay(make, weighted(four, 3), seed), replay(make, four, seed), `seed ${seed}`);
  }
});

test('least-response-time with weights picks the lowest mean ÷ weight, ties → active ÷ weight, then list order', () => {
  const clock = { t: 0 };
  const [a, b] = weighted([b0, b1], (i) => [3, 1][i]!);
  const s = new LeastResponseTime({ backends: [a!, b!], options: { now: () => clock.t } });
  // both means 0: active ÷ weight decides: a (0/3) = b (0/1) → a; a 1/3 < b 0/1? no → b; a 1/3 < b 1/1 → a; a 2/3 < 1 → a; a 3/3 = 1 → a (list order)
  assert.equal(Array.from({ length: 5 }, () => s.select()?.id), ['b0', 'b1', 'b0', 'b0', 'b0']);
  clock.t = 30;
  for (let i = 0; i < 4; i++) s.update(a!, done); // a: mean 30, ÷3 = 10
  s.update(b!, done); // b: mean 30, ÷1 = 30
  assert.is(s.select()?.id, 'b0', 'a mean three times slower than b still wins at weight 3');
  clock.t = 31;
  s.update(a!, done); // a: 4 × 30 + 1 over 5 = 24.2 ÷ 3 ≈ 8.07, still lowest
  assert.is(s.select()?.id, 'b0');
  // at equal weights the lower mean wins again
  s.setBackends([{ ...a!, weight: 1 }, { ...b!, weight: 1 }]);
  assert.is(s.select()?.id, 'b0');
});

test.run();
