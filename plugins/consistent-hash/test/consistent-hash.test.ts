import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { createHost, createRoutingContext, type Backend, type Strategy } from '@trellis/sdk';
import { ConsistentHash, createConsistentHash, stickyToken } from '../src/strategy.js';
import { hash32 } from '../src/hash.js';

const make = (n: number, weight: (i: number) => number = () => 1): Backend[] =>
  Array.from({ length: n }, (_, i) => ({ id: `10.0.${i >> 8}.${i & 255}:80`, host: `10.0.${i >> 8}.${i & 255}`, port: 80, weight: weight(i) }));
const ipCtx = (i: number) => createRoutingContext({ mode: 'tcp', clientAddress: `192.168.${(i >> 8) & 255}.${i & 255}` });
const KEYS = 20_000;

function owners(s: Strategy, keys = KEYS, ctx: (i: number) => ReturnType<typeof createRoutingContext> = ipCtx): string[] {
  return Array.from({ length: keys }, (_, i) => s.select(ctx(i))!.id);
}

test('the same key always lands on the same back-end, whatever the list order', () => {
  const list = make(8);
  const a = createConsistentHash({ backends: list, options: {} });
  const b = createConsistentHash({ backends: [...list].reverse(), options: {} });
  const first = owners(a, 2000);
  assert.equal(owners(a, 2000), first, 'stable across calls');
  assert.equal(owners(b, 2000), first, 'independent of list order');
  assert.is(new Set(first).size, 8, 'every back-end gets keys');
});

for (const n of [4, 16, 64]) {
  test(`removing one of ${n} back-ends moves only the keys it held (about 1/${n})`, () => {
    const list = make(n);
    const s = createConsistentHash({ backends: list, options: {} });
    const before = owners(s);
    const gone = list[n >> 1]!;
    s.setBackends(list.filter((b) => b !== gone));
    const after = owners(s);
    let moved = 0;
    for (let i = 0; i < KEYS; i++) {
      if (before[i] !== after[i]) {
        moved++;
        assert.is(before[i], gone.id, `key ${i} moved although its back-end stayed`);
      }
    }
    const share = moved / KEYS;
    assert.ok(share > 0.4 / n && share < 2 / n, `moved ${share.toFixed(4)} vs ideal ${(1 / n).toFixed(4)}`);
    // it comes back (healthy again): every key returns to where it was
    s.setBackends(list);
    assert.equal(owners(s), before);
  });
}

test('adding a back-end takes keys only for itself', () => {
  const list = make(10);
  const s = createConsistentHash({ backends: list.slice(0, 9), options: {} });
  const before = owners(s);
  s.setBackends(list);
  const after = owners(s);
  for (let i = 0; i < KEYS; i++) if (before[i] !== after[i]) assert.is(after[i], list[9]!.id);
});

test('weights change shares proportionally', () => {
  const s = createConsistentHash({ backends: make(4, (i) => [1, 2, 3, 4][i]!), options: {} });
  const counts = new Map<string, number>();
  for (const id of owners(s, 40_000)) counts.set(id, (counts.get(id) ?? 0) + 1);
  const shares = make(4).map((b) => (counts.get(b.id) ?? 0) / 40_000);
  [0.1, 0.2, 0.3, 0.4].forEach((want, i) => assert.ok(Math.abs(shares[i]! - want) < 0.04, `back-end ${i}: ${shares[i]!.toFixed(3)} vs ${want}`));
});

test('hashOn header, cookie and path; a missing key falls back to the client address; ctx.hashKey wins', () => {
  const list = make(16);
  const byHeader = createConsistentHash({ backends: list, options: { hashOn: 'header:X-User' } });
  const byCookie = createConsistentHash({ backends: list, options: { hashOn: 'cookie:uid' } });
  const byPath = createConsistentHash({ backends: list, options: { hashOn: 'path' } });
  const byIp = createConsistentHash({ backends: list, options: {} });
  const ring = (key: string) => byIp.select(createRoutingContext({ mode: 'tcp', clientAddress: key }))!.id;
  for (let i = 0; i < 200; i++) {
    const user = `user-${i}`;
    const h = byHeader.select(createRoutingContext({ clientAddress: '1.1.1.1', headers: { 'x-user': user } }))!.id;
    const c = byCookie.select(createRoutingContext({ clientAddress: '1.1.1.1', headers: { cookie: `a=b; uid=${user}` } }))!.id;
    const p = byPath.select(createRoutingContext({ clientAddress: '1.1.1.1', target: `/${user}?q=${i}` }))!.id;
    assert.is(h, ring(user));
    assert.is(c, ring(user));
    assert.is(p, ring(`/${user}`));
    assert.is(byHeader.select(createRoutingContext({ clientAddress: user, headers: { other: 'x' } }))!.id, ring(user), 'no header: client address');
    assert.is(byHeader.select(createRoutingContext({ clientAddress: '1.1.1.1', hashKey: user, headers: { 'x-user': 'z' } }))!.id, ring(user), 'hashKey wins');
  }
});

test('only healthy back-ends: a down back-end never gets picked; none usable answers undefined', () => {
  const list = make(4);
  const s = createConsistentHash({ backends: list, options: {} });
  s.setBackends(list.slice(1));
  assert.not.ok(owners(s, 5000).includes(list[0]!.id));
  s.setBackends([]);
  assert.is(s.select(ipCtx(1)), undefined);
});

test('sticky cookie: set on the first answer, honoured after back-ends are added or reordered, replaced when its back-end is gone', () => {
  const list = make(8);
  const s = createConsistentHash({ backends: list.slice(0, 4), options: { hashOn: 'header:x-user', stickyCookie: 'lb' } });
  const sessions: { user: string; token: string; id: string }[] = [];
  for (let i = 0; i < 400; i++) {
    const ctx = createRoutingContext({ headers: { 'x-user': `u${i}` } });
    const b = s.select(ctx)!;
    assert.equal(ctx.responseHeaders, [['set-cookie', `lb=${stickyToken(b)}; Path=/; HttpOnly; SameSite=Lax`]]);
    sessions.push({ user: `u${i}`, token: stickyToken(b), id: b.id });
  }
  // four more back-ends, reversed order: plain hashing would move about half of the keys
  s.setBackends([...list].reverse());
  let rehashedElsewhere = 0;
  for (const { user, token, id } of sessions) {
    const ctx = createRoutingContext({ headers: { 'x-user': user, cookie: `lb=${token}` } });
    assert.is(s.select(ctx)!.id, id, `${user} kept its back-end`);
    assert.equal(ctx.responseHeaders, [], 'a valid cookie is not set again');
    if (s.select(createRoutingContext({ headers: { 'x-user': user } }))!.id !== id) rehashedElsewhere++;
  }
  assert.ok(rehashedElsewhere > 100, `without the cookie ${rehashedElsewhere} of 400 sessions would have moved`);
  // the session's back-end goes down: a new one is picked and the cookie replaced
  const { user, token, id } = sessions[0]!;
  s.setBackends(list.filter((b) => b.id !== id));
  const ctx = createRoutingContext({ headers: { 'x-user': user, cookie: `lb=${token}` } });
  const moved = s.select(ctx)!;
  assert.is.not(moved.id, id);
  assert.equal(ctx.responseHeaders, [['set-cookie', `lb=${stickyToken(moved)}; Path=/; HttpOnly; SameSite=Lax`]]);
  // an unknown or forged token is ignored
  const forged = createRoutingContext({ headers: { 'x-user': user, cookie: 'lb=nope' } });
  assert.is(s.select(forged)!.id, moved.id);
});

test('bad options are refused when the strategy is created', () => {
  for (const options of [{ hashOn: 'ip' }, { hashOn: 'header:' }, { hashOn: 'cookie:a b' }, { stickyCookie: 'a;b' }, { replicas: 0 }]) {
    assert.throws(() => new ConsistentHash({ backends: make(2), options }), TypeError, JSON.stringify(options));
  }
});

test('hash32 spreads similar keys (FNV-1a + fmix32)', () => {
  assert.is(hash32(''), hash32(''));
  assert.is.not(hash32('10.0.0.1'), hash32('10.0.0.2'));
  const buckets = new Array(16).fill(0);
  for (let i = 0; i < 16_000; i++) buckets[hash32(`10.0.${i >> 8}.${i & 255}`) >>> 28]++;
  for (const c of buckets) assert.ok(c > 800 && c < 1200, `bucket ${c}`);
});

test('the consistent-hash plugin loads lazily through the plugin host', async () => {
  const host = createHost({ dirs: [fileURLToPath(new URL('..', import.meta.url))], builtins: false });
  const s = await host.routing.createStrategy('consistent-hash', { backends: make(4), options: { hashOn: 'path' } });
  const ctx = createRoutingContext({ target: '/a' });
  assert.is(s.select(ctx)!.id, s.select(createRoutingContext({ target: '/a?x=1' }))!.id);
  await host.dispose();
});

test.run();
