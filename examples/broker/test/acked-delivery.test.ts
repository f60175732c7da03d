/**
 * Acknowledged (at-least-once) delivery and persistent sessions: numbered messages per
 * subscription, redelivery marked duplicate of what was not acked, a session that keeps
 * collecting while its client is away (bounded, overflow reported), a client id that resumes,
 * and the same across a broker restart on the LMDB store.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BrokerError, BrokerErrorCode, connectReliable, createBroker, openLmdbStore, helloFrame, Role, ReliableFrame, subscribeAckedFrame, readDelivery, ackFrame, readError, type AckedMessage, type ReliableClient, type BrokerOptions } from '@trellis/sdk/broker';
import { startBroker, take, testHost, rawSocket, until, type Running } from './helpers.js';

const test = suite<{ r: Running; extra: ReliableClient[] }>('acked delivery');
test.before.each(async (ctx) => {
  ctx.r = await startBroker({ sessions: { maxSessionMessages: 50 } });
  ctx.extra = [];
});
test.after.each(async (ctx) => {
  await Promise.all(ctx.extra.map((c) => c.close()));
  await ctx.r.stop();
});

function reliable(ctx: { r: Running; extra: ReliableClient[] }, options: Partial<Parameters<typeof connectReliable>[0]> = {}): Promise<ReliableClient> {
  return connectReliable({ port: ctx.r.port, codec: 'json', plugins: ctx.r.host, reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, ...options }).then((c) => {
    ctx.extra.push(c);
    return c;
  });
}

const summary = (ms: AckedMessage[]) => ms.map((m) => `${m.number}:${m.topic}=${JSON.stringify(m.value)}${m.duplicate ? ' dup' : ''}${m.retained ? ' retained' : ''}`);

test('an acknowledged subscription numbers its messages, last values first', async (ctx) => {
  const producer = await ctx.r.client('json', 'producer');
  await producer.publish('/orders/1', 'first', { ack: true });
  const c = await reliable(ctx);
  const sub = await c.subscribe('/orders');
  assert.is(sub.retained, 1);
  for (let i = 2; i <= 4; i++) producer.publish(`/orders/${i}`, i);
  const got = await take(sub, 4);
  assert.equal(summary(got), ['1:/orders/1="first" retained', '2:/orders/2=2', '3:/orders/3=3', '4:/orders/4=4']);
});

test('a message whose ack never arrived is sent again after a reconnect, marked duplicate, in order', async (ctx) => {
  const c = await reliable(ctx, { clientId: 'redeliver' });
  const sub = await c.subscribe('/jobs', { ack: 'manual' });
  const producer = await ctx.r.client('json', 'producer');
  for (let i = 1; i <= 3; i++) await producer.publish('/jobs', i, { ack: true });
  const first = await take(sub, 3);
  first[0]!.ack(); // 2 and 3 are never acked: the ack is "dropped"
  await until(() => ctx.r.broker.stats().delivery.acked === 1, 3000, 'the ack of message 1');
  c.interrupt();
  await new Promise<void>((r) => c.once('connect', () => r()));
  await producer.publish('/jobs', 4, { ack: true });
  const again = await take(sub, 3);
  assert.equal(summary(again), ['2:/jobs=2 dup', '3:/jobs=3 dup', '4:/jobs=4']);
  assert.ok(ctx.r.broker.stats().delivery.redeliveries >= 2);
});

test('auto ack: a message is acked once the loop asks for the next one', async (ctx) => {
  const c = await reliable(ctx, { clientId: 'auto' });
  const sub = await c.subscribe('/a');
  const producer = await ctx.r.client('json', 'producer');
  for (let i = 1; i <= 3; i++) producer.publish('/a', i);
  await take(sub, 3); // 1 and 2 acked by asking for 2 and 3; 3 is still in hand
  await until(() => ctx.r.broker.stats().delivery.acked === 2, 3000, 'two acks');
  assert.is(ctx.r.broker.stats().delivery.queued, 1);
});

test('a persistent session keeps collecting while its client is away and resumes with its id', async (ctx) => {
  const first = await reliable(ctx, { clientId: 'dash' });
  const sub = await first.subscribe('/w');
  const producer = await ctx.r.client('json', 'producer');
  await producer.publish('/w/1', 1, { ack: true });
  assert.equal(summary(await take(sub, 1)), ['1:/w/1=1']);
  await first.close();
  for (let i = 2; i <= 5; i++) await producer.publish(`/w/${i}`, i, { ack: true });
  assert.is(ctx.r.broker.stats().delivery.queued, 5); // 1 was in hand when the client left (never acked)
  // a new process with the same id: the broker hands the kept subscription back
  const second = await reliable(ctx, { clientId: 'dash' });
  assert.equal(second.restored.map((s) => s.topic), ['/w']);
  const kept = await second.subscribe('/w');
  const got = await take(kept, 5);
  assert.equal(summary(got), ['1:/w/1=1 dup', '2:/w/2=2', '3:/w/3=3', '4:/w/4=4', '5:/w/5=5']);
});

test('a backlog larger than the output limit is resumed as the connection drains, not dropped as a slow consumer', async () => {
  const r = await startBroker({ maxBufferBytes: 64 * 1024, sessions: { maxSessionBytes: 4 * 1024 * 1024, maxSessionMessages: 10_000 } });
  const clients: ReliableClient[] = [];
  try {
    const first = await connectReliable({ port: r.port, codec: 'json', plugins: r.host, clientId: 'big', reconnect: false });
    clients.push(first);
    await first.subscribe('/big');
    await first.close();
    const producer = await r.client('json', 'producer');
    const blob = 'x'.repeat(2000);
    for (let i = 1; i <= 600; i++) producer.publish('/big', { i, blob }); // ~1.2 MB, 18x the output limit
    await producer.publish('/big/end', 0, { ack: true });
    const again = await connectReliable({ port: r.port, codec: 'json', plugins: r.host, clientId: 'big', reconnect: false });
    clients.push(again);
    const sub = await again.subscribe('/big');
    const got = await take(sub, 601, 20_000);
    assert.equal(got.slice(0, 600).map((m) => (m.value as { i: number }).i), Array.from({ length: 600 }, (_, k) => k + 1));
    assert.is(got[600]!.topic, '/big/end');
    assert.is(r.broker.stats().slowConsumers, 0);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await r.stop();
  }
});

test("acknowledged subscriptions count against the client's topic-segment budget, across its sessions", async () => {
  const r = await startBroker({ maxTopicNodesPerClient: 8 });
  const clients: ReliableClient[] = [];
  try {
    const a = await connectReliable({ port: r.port, codec: 'json', plugins: r.host, clientId: 'budget-a', reconnect: false });
    clients.push(a);
    await a.subscribe('/a/b/c'); // 3 segments + the leading empty one
    await a.close();
    const b = await connectReliable({ port: r.port, codec: 'json', plugins: r.host, clientId: 'budget-b', reconnect: false });
    clients.push(b);
    await b.subscribe('/x/y'); // 3 more: 7 of 8
    const err = await b.subscribe('/p/q').then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof BrokerError && err.wireCode === BrokerErrorCode.LIMIT, String(err));
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await r.stop();
  }
});

test('a session without an id ends with its connection', async (ctx) => {
  const c = await reliable(ctx);
  await c.subscribe('/x');
  assert.is(ctx.r.broker.stats().delivery.ackedSubscriptions, 1);
  await c.close();
  await until(() => ctx.r.broker.stats().delivery.ackedSubscriptions === 0, 3000, 'the subscription to end');
  assert.is(ctx.r.broker.stats().delivery.sessions, 0);
});

test('a full session queue drops new messages, counts them and tells the client', async (ctx) => {
  const first = await reliable(ctx, { clientId: 'small' });
  await first.subscribe('/q', { ack: 'manual' });
  await first.close();
  const producer = await ctx.r.client('json', 'producer');
  for (let i = 1; i <= 60; i++) await producer.publish('/q', i, { ack: true });
  assert.is(ctx.r.broker.stats().delivery.queued, 50);
  assert.is(ctx.r.broker.stats().delivery.overflows, 10);
  const second = await reliable(ctx, { clientId: 'small' });
  const sub = await second.subscribe('/q', { ack: 'auto' });
  const got = await take(sub, 50);
  assert.equal(got.map((m) => m.value), Array.from({ length: 50 }, (_, i) => i + 1)); // the oldest kept, in order
  await until(() => sub.dropped === 10, 3000, 'the OVERFLOW notice');
});

test('a second connection with the same id takes the session over; the first is told why', async (ctx) => {
  const first = await reliable(ctx, { clientId: 'twice', reconnect: false });
  await first.subscribe('/t');
  const closed = new Promise<Error | undefined>((r) => first.once('disconnect', r));
  const second = await reliable(ctx, { clientId: 'twice', reconnect: false });
  const err = await closed;
  assert.ok(err instanceof BrokerError && err.wireCode === 20, String(err));
  assert.equal(second.restored.map((s) => s.topic), ['/t']);
});

test('resuming a session in another codec is refused with the reason', async (ctx) => {
  const first = await reliable(ctx, { clientId: 'codec' });
  await first.close();
  try {
    await connectReliable({ port: ctx.r.port, codec: 'xml', plugins: ctx.r.host, clientId: 'codec', reconnect: false });
    assert.unreachable('resumed in another codec');
  } catch (err) {
    assert.ok(err instanceof BrokerError && err.wireCode === BrokerErrorCode.NOT_ALLOWED, String(err));
    assert.match((err as Error).message, /json/);
  }
});

test('raw protocol: DELIVERY frames carry the subscription id and number; ACK is cumulative', async (ctx) => {
  const raw = await rawSocket(ctx.r.port);
  raw.socket.write(helloFrame(0, Role.CONSUMER));
  raw.socket.write(subscribeAckedFrame(1, 77, '/r'));
  await raw.next(0x21);
  const producer = await ctx.r.client('json', 'producer');
  for (let i = 1; i <= 3; i++) await producer.publish('/r', i, { ack: true });
  const ds = [await raw.next(ReliableFrame.DELIVERY), await raw.next(ReliableFrame.DELIVERY), await raw.next(ReliableFrame.DELIVERY)].map(readDelivery);
  assert.equal(ds.map((d) => [d.subId, d.seq, d.topic, d.payload.toString()]), [[77, 1, '/r', '1'], [77, 2, '/r', '2'], [77, 3, '/r', '3']]);
  raw.socket.write(ackFrame(77, 2));
  await until(() => ctx.r.broker.stats().delivery.acked === 2, 3000, 'two acks');
  assert.is(ctx.r.broker.stats().delivery.queued, 1);
  raw.socket.destroy();
});

test('a producer may not open a session', async (ctx) => {
  const raw = await rawSocket(ctx.r.port);
  raw.socket.write(helloFrame(0, Role.PRODUCER));
  raw.socket.write(subscribeAckedFrame(1, 1, '/r'));
  const err = readError(await raw.next(0x7f));
  assert.is(err.code, BrokerErrorCode.NOT_ALLOWED);
  raw.socket.destroy();
});

test.run();

// ------------------------------------------------------------------ across a restart (LMDB)

const durable = suite('durable state');

async function durableBroker(dir: string, extra: Partial<BrokerOptions> = {}) {
  const host = testHost();
  const broker = createBroker({ host, lingerMs: 200, store: await openLmdbStore(dir), ...extra });
  const { port } = await broker.listen(0);
  return {
    broker,
    port,
    host,
    async stop() {
      await broker.close({ timeoutMs: 1000 });
      await host.dispose();
    },
  };
}

durable('last values and a persistent session with its queue survive a broker restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-broker.state-')); // a dot in the name: still a directory
  let b = await durableBroker(dir);
  const clients: ReliableClient[] = [];
  try {
    const c = await connectReliable({ port: b.port, codec: 'json', plugins: b.host, clientId: 'keeper', reconnect: false });
    clients.push(c);
    await c.subscribe('/s');
    await c.close();
    const { connect } = await import('@trellis/sdk/broker');
    const producer = await connect({ port: b.port, codec: 'pickle', plugins: b.host, role: 'producer' });
    await producer.publish('/s/last', { v: 1 }, { ack: true });
    await producer.publish('/s/x', 'queued-1', { ack: true });
    await producer.publish('/s/x', 'queued-2', { ack: true });
    await producer.close();
    await b.stop();

    b = await durableBroker(dir);
    assert.equal(b.broker.topics(), ['/s/last', '/s/x']);
    assert.equal(b.broker.lastValue('/s/last'), { v: 1 });
    assert.is(b.broker.stats().delivery.sessions, 1);
    const again = await connectReliable({ port: b.port, codec: 'json', plugins: b.host, clientId: 'keeper', reconnect: false });
    clients.push(again);
    const sub = await again.subscribe('/s');
    const got = await take(sub, 3);
    assert.equal(got.map((m) => [m.topic, m.value]), [['/s/last', { v: 1 }], ['/s/x', 'queued-1'], ['/s/x', 'queued-2']]);
    await again.close();
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await b.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

durable.run();
