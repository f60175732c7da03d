import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FingerTable } from '../src/finger-table.js';

const node = (id: number) => ({ id: BigInt(id), host: '127.0.0.1', port: 5000 + id });

test('entry i starts at (n + 2^(i-1)) mod 2^m', () => {
  const t = new FingerTable(node(10), 4);
  assert.equal([1, 2, 3, 4].map((i) => t.start(i)), [11n, 12n, 14n, 2n]);
  assert.equal(t.refresh().map((e) => [e.index, e.start, e.node]), [
    [1, 11n, undefined],
    [2, 12n, undefined],
    [3, 14n, undefined],
    [4, 2n, undefined],
  ]);
});

test('the reference example: n = 10, m = 4 maps id 11 to entry 1, 12 to 2, 14 to 3, 2 to 4', () => {
  const t = new FingerTable(node(10), 4);
  assert.is(t.entryFor(11n), 1);
  assert.is(t.entryFor(12n), 2);
  assert.is(t.entryFor(13n), 2);
  assert.is(t.entryFor(14n), 3);
  assert.is(t.entryFor(0n), 3);
  assert.is(t.entryFor(2n), 4);
  assert.is(t.entryFor(9n), 4);
});

test('closest preceding node scans from the highest entry over the open interval (n, id)', () => {
  const t = new FingerTable(node(10), 4);
  t.update(1, node(12)); // successor(11)
  t.update(2, node(12)); // successor(12)
  t.update(3, node(15)); // successor(14)
  t.update(4, node(3)); // successor(2)
  assert.equal(t.closestPrecedingNode(5n), node(3));
  assert.equal(t.closestPrecedingNode(3n), node(15), 'a node equal to the id is not strictly before it');
  assert.equal(t.closestPrecedingNode(14n), node(12));
  assert.equal(t.closestPrecedingNode(0n), node(15));
});

test('closest preceding node falls back to entry 1 when no entry precedes the id', () => {
  const t = new FingerTable(node(10), 4);
  assert.is(t.closestPrecedingNode(11n), undefined, 'an empty table has no entry 1 either');
  t.update(1, node(12));
  t.update(2, node(12));
  assert.equal(t.closestPrecedingNode(11n), node(12));
  assert.equal(t.closestPrecedingNode(12n), node(12));
});

test('a new successor fills every entry whose start it covers, and a failed node is dropped everywhere', () => {
  const t = new FingerTable(node(10), 4);
  t.successorChanged(node(13));
  assert.equal(t.entries(), [node(13), node(13), undefined, undefined]);
  t.update(3, node(13));
  t.update(4, node(5));
  t.nodeFailed(node(13));
  assert.equal(t.entries(), [undefined, undefined, undefined, node(5)]);
});

test('indices outside 1..m are refused', () => {
  const t = new FingerTable(node(10), 4);
  assert.throws(() => t.update(0, node(1)), /1\.\.4/);
  assert.throws(() => t.start(5), /1\.\.4/);
  assert.throws(() => new FingerTable(node(1), 0), /bits/);
});

test('large rings use bigint arithmetic (160-bit ids)', () => {
  const self = { id: (1n << 159n) + 5n, host: 'h', port: 1 };
  const t = new FingerTable(self, 160);
  assert.is(t.start(160), 5n);
  assert.is(t.start(1), (1n << 159n) + 6n);
});

test.run();
