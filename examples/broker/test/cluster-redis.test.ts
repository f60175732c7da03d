/**
 * Cluster mode on a real redis-server (Debian package; skipped with a note when absent): several
 * brokers serve one topic space — a publish on any node reaches plain and acknowledged
 * subscribers on every node, last values live in Redis (a node started later serves them, clears
 * propagate), persistent sessions live in Redis (taken over, resumed and restarted clean across
 * nodes, only by their user), and a node killed under load leaves the others serving.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BrokerError, createBroker, connect, connectReliable, joinRedisCluster, type Broker, type BrokerOptions, type BrokerClient, type RedisCluster, type ReliableClient } from '@trellis/sdk/broker';
import { HAVE_REDIS, startRedis, testHost, take, until } from './helpers.js';

interface Node {
  broker: Broker;
  cluster: RedisCluster;
  port: number;
}

const test = suite<{ redis: Awaited<ReturnType<typeof startRedis>>; nodes: Node[]; clients: (BrokerClient | ReliableClient)[]; host: ReturnType<typeof testHost> }>('cluster on redis');

test.before.each(async (ctx) => {
  ctx.redis = await startRedis();
  ctx.nodes = [];
  ctx.clients = [];
  ctx.host = testHost();
});
test.after.each(async (ctx) => {
  await Promise.allSettled(ctx.clients.map((c) => c.close()));
  for (const n of ctx.nodes) {
    await n.cluster.close();
    await n.broker.close({ timeoutMs: 500 });
  }
  await ctx.host.dispose();
  await ctx.redis.stop();
});

async function node(ctx: { redis: { url: string }; nodes: Node[]; host: ReturnType<typeof testHost> }, options: Partial<BrokerOptions> = {}): Promise<Node> {
  const broker = createBroker({ host: ctx.host, lingerMs: 200, ...options });
  const cluster = await joinRedisCluster(broker, { url: ctx.redis.url });
  const { port } = await broker.listen(0);
  const n = { broker, cluster, port };
  ctx.nodes.push(n);
  return n;
}

async function client(ctx: { clients: (BrokerClient | ReliableClient)[]; host: ReturnType<typeof testHost> }, port: number, codec: string, role: 'producer' | 'consumer'): Promise<BrokerClient> {
  const c = await connect({ port, codec, plugins: ctx.host, role });
  ctx.clients.push(c);
  return c;
}

if (!HAVE_REDIS) {
  console.log('SKIP cluster tests: redis-server is absent (apt-get install -y redis-server)');
} else {
  test('a publish on one node reaches plain and acknowledged subscribers on every node, in order', async (ctx) => {
    const [a, b, c] = [await node(ctx), await node(ctx), await node(ctx)];
    const onB = await client(ctx, b.port, 'xml', 'consumer');
    const subB = await onB.subscribe('/orders');
    const ackedC = await connectReliable({ port: c.port, codec: 'pickle', plugins: ctx.host, clientId: 'c-1', reconnect: false });
    ctx.clients.push(ackedC);
    const subC = await ackedC.subscribe('/orders');
    const producer = await client(ctx, a.port, 'json', 'producer');
    for (let i = 1; i <= 50; i++) await producer.publish(`/orders/${i % 3}`, i, { ack: true });
    assert.equal((await take(subB, 50, 10_000)).map((m) => m.value), Array.from({ length: 50 }, (_, i) => i + 1));
    assert.equal((await take(subC, 50, 10_000)).map((m) => m.value), Array.from({ length: 50 }, (_, i) => i + 1));
    assert.is(a.cluster.stats().relayed, 50);
    assert.is(b.cluster.stats().received, 50);
  });

  test('last values live in Redis: a node started later serves them; a clear reaches every node', async (ctx) => {
    const a = await node(ctx);
    const producer = await client(ctx, a.port, 'json', 'producer');
    await producer.publish('/weather/temperature', 21.5, { ack: true });
    await producer.publish('/weather/humidity', { pct: 55 }, { ack: true });
    await until(() => a.cluster.stats().relayed === 2, 5000, 'the relay');
    await new Promise((r) => setTimeout(r, 100)); // the MULTI reaches Redis
    const late = await node(ctx);
    assert.equal(late.broker.topics(), ['/weather/humidity', '/weather/temperature']);
    const reader = await client(ctx, late.port, 'xml', 'consumer');
    const sub = await reader.subscribe('/weather');
    const got = (await take(sub, 2)).map((m) => [m.topic, m.value, m.retained]).sort((x, y) => String(x[0]).localeCompare(String(y[0])));
    assert.equal(got, [['/weather/humidity', { pct: 55 }, true], ['/weather/temperature', 21.5, true]]);
    await producer.clear('/weather/humidity');
    await until(() => late.broker.topics().length === 1, 5000, 'the clear on the other node');
    const third = await node(ctx);
    assert.equal(third.broker.topics(), ['/weather/temperature']);
  });

  test('persistent sessions live in Redis: taken over from a live node, queued while away, resumed on any node', async (ctx) => {
    const [a, b] = [await node(ctx), await node(ctx)];
    const summary = (ms: { number: number; topic: string; value: unknown; duplicate: boolean }[]) => ms.map((m) => `${m.number}:${m.topic}=${String(m.value)}${m.duplicate ? ' dup' : ''}`);
    const first = await connectReliable({ port: a.port, codec: 'json', plugins: ctx.host, clientId: 'roam', reconnect: false });
    ctx.clients.push(first);
    const sub1 = await first.subscribe('/w', { ack: 'manual' });
    // node B routes publishes into the session once it has heard of it through Redis
    await until(() => b.broker.stats().delivery.ackedSubscriptions === 1, 5000, 'node B mirroring the session');
    const producer = await client(ctx, b.port, 'json', 'producer');
    await producer.publish('/w/1', 1, { ack: true });
    assert.equal(summary(await take(sub1, 1, 10_000)), ['1:/w/1=1']);
    // the same id on node B while node A still serves it: A drops its connection with the reason
    const closed = new Promise<Error | undefined>((r) => first.once('disconnect', r));
    const second = await connectReliable({ port: b.port, codec: 'json', plugins: ctx.host, clientId: 'roam', reconnect: false });
    ctx.clients.push(second);
    const err = await closed;
    assert.ok(err instanceof BrokerError && err.wireCode === 20, String(err));
    assert.equal(second.restored.map((s) => s.topic), ['/w']);
    const sub2 = await second.subscribe('/w'); // the restored subscription (auto ack)
    const onA = await client(ctx, a.port, 'json', 'producer');
    await onA.publish('/w/2', 2, { ack: true });
    await onA.publish('/w/3', 3, { ack: true });
    const got = await take(sub2, 3, 10_000);
    assert.equal(summary(got), ['1:/w/1=1 dup', '2:/w/2=2', '3:/w/3=3']);
    for (const m of got) m.ack();
    await until(() => b.broker.stats().delivery.acked === 3, 5000, 'the acks on node B');
    await second.close();
    // away: a publish on node A is kept in Redis for the session; resumed on node A
    await onA.publish('/w/4', 4, { ack: true });
    await new Promise((r) => setTimeout(r, 100)); // the acks' deletions reach Redis
    const third = await connectReliable({ port: a.port, codec: 'json', plugins: ctx.host, clientId: 'roam', reconnect: false });
    ctx.clients.push(third);
    const sub3 = await third.subscribe('/w');
    assert.equal(summary(await take(sub3, 1, 10_000)), ['4:/w/4=4']);
    assert.is(a.broker.stats().delivery.sessions, 1);
    assert.is(b.broker.stats().delivery.sessions, 1);
  });

  test('a session started clean on another node, in another codec, replaces the one in Redis everywhere', async (ctx) => {
    const [a, b] = [await node(ctx), await node(ctx)];
    const first = await connectReliable({ port: a.port, codec: 'json', plugins: ctx.host, clientId: 'cc', reconnect: false });
    ctx.clients.push(first);
    await first.subscribe('/old');
    await until(() => b.broker.stats().delivery.ackedSubscriptions === 1, 5000, 'node B mirroring the session');
    await first.close();
    const again = await connectReliable({ port: b.port, codec: 'xml', plugins: ctx.host, clientId: 'cc', clean: true, reconnect: false });
    ctx.clients.push(again);
    assert.equal(again.restored, []);
    const sub = await again.subscribe('/new');
    // node A now routes /new (not /old) into the session, encoded for its new codec
    await until(() => a.broker.stats().delivery.ackedSubscriptions === 1 && a.broker.stats().delivery.sessions === 1, 5000, 'node A mirroring the new session');
    const producer = await client(ctx, a.port, 'json', 'producer');
    await producer.publish('/old', 1, { ack: true });
    await producer.publish('/new', { n: 2 }, { ack: true });
    const [m] = await take(sub, 1, 10_000);
    assert.equal([m!.topic, m!.value, m!.duplicate], ['/new', { n: 2 }, false]);
  });

  test('under access control a session in Redis is resumed on another node only by the user who made it', async (ctx) => {
    const access = {
      authenticate: (c: { username?: string; password?: string }) => (c.username && c.password === `${c.username}-pw` ? { username: c.username } : undefined),
      authorize: () => true,
    };
    const [a, b] = [await node(ctx, { access }), await node(ctx, { access })];
    const as = async (port: number, username: string) => {
      const c = await connectReliable({ port, codec: 'json', plugins: ctx.host, username, password: `${username}-pw`, clientId: 'alice-phone', reconnect: false });
      ctx.clients.push(c);
      return c;
    };
    const alice = await as(a.port, 'alice');
    await alice.subscribe('/alice');
    await alice.close();
    await until(() => b.broker.stats().delivery.ackedSubscriptions === 1, 5000, 'node B mirroring the session');
    const err = await as(b.port, 'bob').then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof BrokerError && err.wireCode === 9, String(err));
    assert.match((err as Error).message, /another user/);
    const again = await as(b.port, 'alice');
    assert.equal(again.restored.map((x) => x.topic), ['/alice']);
  });

  test('a node killed under load: the other node keeps serving and a client moves over', async (ctx) => {
    const [a, b] = [await node(ctx), await node(ctx)];
    const mover = await connectReliable({ servers: [{ port: a.port }, { port: b.port }], codec: 'json', plugins: ctx.host, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
    ctx.clients.push(mover);
    const sub = await mover.subscribe('/load');
    const producer = await client(ctx, b.port, 'json', 'producer');
    let n = 0;
    const timer = setInterval(() => void producer.publish('/load', ++n), 5);
    try {
      await take(sub, 20, 10_000);
      const moved = new Promise<{ server: { port: number } }>((r) => mover.once('connect', r));
      await a.cluster.close();
      await a.broker.close({ timeoutMs: 200 });
      ctx.nodes.splice(ctx.nodes.indexOf(a), 1);
      assert.is((await moved).server.port, b.port);
      const before = n;
      const after = await take(sub, 30, 10_000);
      assert.ok(after.some((m) => (m.value as number) > before), 'messages published after the failover arrive through the other node');
    } finally {
      clearInterval(timer);
    }
  });
}

test.run();
