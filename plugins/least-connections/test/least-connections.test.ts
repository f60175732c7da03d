import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { createHost, type Backend } from '@trellis/sdk';
import { replay, weighted } from '../../../sdk/test/strategy-replay.js';
import { LeastConnections } from '../src/strategy.js';

const four: Backend[] = [5000, 5001, 5002, 5003].map((port) => ({ id: `b${port - 5000}`, host: '127.0.0.1', port }));
const [b0, b1, b2, b3] = four as [Backend, Backend, Backend, Backend];
const ok = { durationMs: 1, ok: true };

test('least-connections breaks ties by list order', () => {
  const s = new LeastConnections({ backends: four, options: {} });
  // all idle: list order, each select counts one connection
  assert.is(s.select()?.id, 'b0');
  assert.is(s.select()?.id, 'b1');
  assert.is(s.select()?.id, 'b2');
  assert.is(s.select()?.id, 'b3');
  // all at 1: tie again, list order
  assert.is(s.select()?.id, 'b0');
  assert.equal(s.snapshot(), { b0: 2, b1: 1, b2: 1, b3: 1 });
});

test('least-connections picks the back-end whose connections ended', () => {
  const s = new LeastConnections({ backends: four, options: {} });
  for (let i = 0; i < 8; i++) s.select(); // 2 each
  s.update(b2, ok);
  assert.is(s.select()?.id, 'b2'); // b2: 1 → 2
  s.update(b3, ok);
  s.update(b3, ok);
  assert.is(s.select()?.id, 'b3'); // b3: 0 → 1
  assert.is(s.select()?.id, 'b3'); // b3: 1 → 2, ties with all, but b0..b2 are at 2 and b3 was at 1
  assert.is(s.select()?.id, 'b0'); // all at 2: list order
  s.update(b1, ok);
  s.update(b0, ok);
  s.update(b0, ok);
  assert.equal(s.snapshot(), { b0: 1, b1: 1, b2: 2, b3: 2 });
  assert.is(s.select()?.id, 'b0'); // b0 and b1 tie at 1: list order
  assert.is(s.select()?.id, 'b1');
});

test('least-connections never counts below zero on a stray update', () => {
  const s = new LeastConnections({ backends: four, options: {} });
  s.update(b1, ok);
  s.update(b1, ok);
  assert.is(s.select()?.id, 'b0');
  assert.is(s.select()?.id, 'b1');
  assert.equal(s.snapshot(), { b0: 1, b1: 1, b2: 0, b3: 0 });
});

test('least-connections keeps counts of a back-end that goes down and comes back', () => {
  const s = new LeastConnections({ backends: four, options: {} });
  for (let i = 0; i < 4; i++) s.select(); // 1 each
  s.select(); // b0: 2
  s.setBackends([b0, b2, b3]); // b1 down with one request in flight
  assert.is(s.select()?.id, 'b2');
  assert.is(s.select()?.id, 'b3');
  s.setBackends(four);
  assert.is(s.select()?.id, 'b1'); // b1 still has 1, the others 2
  s.update(b1, ok);
  s.update(b1, ok);
  assert.is(s.snapshot().b1, 0);
  assert.is(s.select()?.id, 'b1');
});

test('least-connections adds new back-ends with no connections and answers undefined when empty', () => {
  const s = new LeastConnections({ backends: [b0, b1], options: {} });
  s.select();
  s.select();
  s.setBackends([b0, b1, b2]);
  assert.is(s.select()?.id, 'b2');
  s.setBackends([]);
  assert.is(s.select(), undefined);
});

test('the least-connections plugin loads lazily through the plugin host', async () => {
  const host = createHost({ dirs: [fileURLToPath(new URL('..', import.meta.url))], builtins: false });
  const s = await host.routing.createStrategy('least-connections', { backends: four, options: {} });
  assert.equal([s.select(), s.select(), s.select()].map((b) => b?.id), ['b0', 'b1', 'b2']);
  s.update(b0, ok);
  assert.is(s.select()?.id, 'b0');
  await host.dispose();
});

test('least-connections with all weights equal replays the unweighted picks exactly', () => {
  for (const seed of [1, 2, 3, 42]) {
    const make = (list: Backend[]) => new LeastConnections({ backends: list, options: {} });
    assert.equal(replay(make, weighted(four, 9), seed), replay(make, four, seed), `seed ${seed}`);
  }
});

test('least-connections with weights picks the lowest active ÷ weight, ties → list order', () => {
  const [a, b] = weighted(four.slice(0, 2), (i) => [2, 1][i]!);
  const s = new LeastConnections({ backends: [a!, b!], options: {} });
  // 0/2=0/1 → a; 1/2>0/1 → b; 1/2<1/1 → a; 2/2=1/1 → a; 3/2>1/1 → b; 3/2<2/1 → a; 4/2=2/1 → a; …
  assert.equal(Array.from({ length: 8 }, () => s.select()?.id), ['b0', 'b1', 'b0', 'b0', 'b1', 'b0', 'b0', 'b1']);
  // with requests ending, the shares stay 2:1 in active connections
  s.update(a!, ok);
  s.update(a!, ok);
  assert.is(s.select()?.id, 'b0');
  assert.equal(s instanceof LeastConnections && s.snapshot(), { b0: 4, b1: 3 });
});

test.run();
