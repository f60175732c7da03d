/** REFERENCE.md §2 rules, over real sockets, with producers and consumers in different codecs. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Duplex } from 'node:stream';
import { helloFrame, publishFrame, Role } from '@trellis/sdk/broker';
import { startBroker, take, arrivedWithin, until, type Running } from './helpers.js';

const test = suite<{ r: Running }>('broker semantics');
test.before.each(async (ctx) => {
  ctx.r = await startBroker();
});
test.after.each(async (ctx) => {
  await ctx.r.stop();
});

test('a consumer gets every message in its own codec whatever the producer used', async ({ r }) => {
  const producer = await r.client('v8', 'producer');
  const jsonConsumer = await r.client('json', 'consumer');
  const v8Consumer = await r.client('v8', 'consumer');
  const a = await jsonConsumer.subscribe('/temp');
  const b = await v8Consumer.subscribe('/temp');
  const value = { city: 'Aveiro', celsius: 17.5, tags: ['coast', 'rain'], ok: true, none: null };
  await producer.publish('/temp', value, { ack: true });
  const [ma] = await take(a, 1);
  const [mb] = await take(b, 1);
  assert.equal(ma, { topic: '/temp', value, retained: false });
  assert.equal(mb, { topic: '/temp', value, retained: false });
});

test('a message is encoded once per target codec, not once per subscriber', async ({ r }) => {
  const producer = await r.client('json', 'producer');
  const subs = [];
  for (let i = 0; i < 5; i++) subs.push(await (await r.client('v8', 'consumer')).subscribe('/msg'));
  for (let i = 0; i < 3; i++) subs.push(await (await r.client('json', 'consumer')).subscribe('/msg'));
  for (let i = 0; i < 4; i++) producer.publish('/msg', { n: i });
  await producer.publish('/msg', { n: 4 }, { ack: true });
  for (const s of subs) assert.equal((await take(s, 5)).map((m) => m.value), [0, 1, 2, 3, 4].map((n) => ({ n })));
  const stats = r.broker.stats();
  assert.is(stats.encodes.v8, 5, 'one v8 encoding per message for five v8 subscribers');
  assert.is(stats.encodes.json, undefined, 'JSON subscribers reuse the producer bytes');
  assert.is(stats.messagesIn, 5);
  assert.is(stats.messagesOut, 40);
});

test('a producer alternating topics of one length reaches the right subscribers, and the last values outlive the input', async ({ r }) => {
  // the broker keeps the text of a producer's last topic and a same-codec MESSAGE frame's copy of the payload
  const producer = await r.client('json', 'producer');
  const a = await (await r.client('json', 'consumer')).subscribe('/t/a1');
  const b = await (await r.client('json', 'consumer')).subscribe('/t/a2');
  for (let i = 0; i < 50; i++) producer.publish(i % 2 ? '/t/a2' : '/t/a1', { i });
  producer.publish('/t/nobody', { last: 'copied' }); // no subscriber: the payload is copied, not framed
  await producer.publish('/t/a1', { i: 50 }, { ack: true });
  assert.equal((await take(a, 26)).map((m) => [m.topic, m.value]), [...Array.from({ length: 25 }, (_, k) => ['/t/a1', { i: 2 * k }]), ['/t/a1', { i: 50 }]]);
  assert.equal((await take(b, 25)).map((m) => [m.topic, m.value]), Array.from({ length: 25 }, (_, k) => ['/t/a2', { i: 2 * k + 1 }]));
  const expected = [
    ['/t/a1', { i: 50 }],
    ['/t/a2', { i: 49 }],
    ['/t/nobody', { last: 'copied' }],
  ];
  for (const codec of ['json', 'v8'] as const) {
    const late = await (await r.client(codec, 'consumer')).subscribe('/t');
    const got = (await take(late, 3)).map((m) => [m.topic, m.value, m.retained] as const).sort((x, y) => (x[0] < y[0] ? -1 : 1));
    assert.equal(got, expected.map(([t, v]) => [t, v, true]), `last values for a ${codec} subscriber`);
  }
  assert.equal(r.broker.lastValue('/t/a2'), { i: 49 });
});

test('a last value never shares memory with the input, even from a transport that reuses its buffer', async ({ r }) => {
  // a PUBLISH is read in place from the chunk: what the broker keeps must be bytes of its own
  const stream = Object.assign(new Duplex({ read() {}, write: (_c, _e, cb) => cb() }), { remoteAddress: '127.0.0.1', remotePort: 1 });
  r.broker.acceptStream(stream);
  const scratch = Buffer.alloc(1024);
  const send = async (f: Buffer) => {
    f.copy(scratch);
    stream.push(scratch.subarray(0, f.length));
    await new Promise((resolve) => setImmediate(resolve)); // read before the next frame overwrites it
  };
  await send(helloFrame(0, Role.PRODUCER));
  await until(() => r.broker.clients().some((c) => c.codec === 'json' && c.role === 'producer'));
  const sub = await (await r.client('json', 'consumer')).subscribe('/alias/framed');
  await send(publishFrame('/alias/framed', Buffer.from('{"v":"kept from the frame"}'))); // a json subscriber: its frame's copy is kept
  await send(publishFrame('/alias/copied', Buffer.from('{"v":"kept as a copy"}'))); // nobody subscribed: copied
  await send(publishFrame('/elsewhere', Buffer.from(`{"v":"${'x'.repeat(200)}"}`))); // overwrites the scratch buffer
  assert.equal((await take(sub, 1))[0]!.value, { v: 'kept from the frame' });
  const late = await (await r.client('json', 'consumer')).subscribe('/alias');
  const got = (await take(late, 2)).map((m) => [m.topic, m.value] as const).sort((x, y) => (x[0] < y[0] ? -1 : 1));
  assert.equal(got, [
    ['/alias/copied', { v: 'kept as a copy' }],
    ['/alias/framed', { v: 'kept from the frame' }],
  ]);
  stream.destroy();
});

test('a new subscriber gets the last value of the topic at once', async ({ r }) => {
  const producer = await r.client('json');
  producer.publish('/temp', 1);
  producer.publish('/temp', 2);
  await producer.publish('/temp', 3, { ack: true });
  const consumer = await r.client('v8', 'consumer');
  const sub = await consumer.subscribe('/temp');
  assert.is(sub.retained, 1);
  assert.equal(await take(sub, 1), [{ topic: '/temp', value: 3, retained: true }]);
  await producer.publish('/temp', 4, { ack: true });
  assert.equal(await take(sub, 1), [{ topic: '/temp', value: 4, retained: false }]);
});

test('a hierarchical subscription gets the last value of every topic under it', async ({ r }) => {
  const producer = await r.client('json');
  producer.publish('/weather/temperature', 21);
  producer.publish('/weather/humidity', 0.8);
  producer.publish('/weather/temperature/celsius', 21.0);
  producer.publish('/weather2/temperature/celsius', 99);
  await producer.publish('/weather', 'sunny', { ack: true });
  const consumer = await r.client('json', 'consumer');
  const sub = await consumer.subscribe('/weather');
  assert.is(sub.retained, 4);
  const got = (await take(sub, 4)).map((m) => [m.topic, m.value, m.retained]);
  assert.equal(
    got.sort(),
    [
      ['/weather', 'sunny', true],
      ['/weather/humidity', 0.8, true],
      ['/weather/temperature', 21, true],
      ['/weather/temperature/celsius', 21, true],
    ].sort(),
  );
  assert.is(await arrivedWithin(sub, 50), 0, '/weather2 is not under /weather');
});

test('subscribing to /weather delivers /weather/... but not /weather2/...', async ({ r }) => {
  const producer = await r.client('json', 'producer');
  const consumer = await r.client('v8', 'consumer');
  const sub = await consumer.subscribe('/weather');
  producer.publish('/weather2/temperature/celsius', 30);
  producer.publish('/weather2', 'other');
  producer.publish('/weathervane', 'also other');
  producer.publish('/weather/temperature', 20);
  await producer.publish('/weather/humidity', 0.5, { ack: true });
  assert.equal((await take(sub, 2)).map((m) => m.topic), ['/weather/temperature', '/weather/humidity']);
  assert.is(await arrivedWithin(sub, 50), 0);
});

test('a message published on a parent does not flow down to subscribers of its children', async ({ r }) => {
  const producer = await r.client('json', 'producer');
  const consumer = await r.client('json', 'consumer');
  const child = await consumer.subscribe('/weather/temperature');
  await producer.publish('/weather', 'parent news', { ack: true });
  assert.is(await arrivedWithin(child, 80), 0);
  await producer.publish('/weather/temperature/celsius', 18, { ack: true });
  assert.equal((await take(child, 1))[0]!.topic, '/weather/temperature/celsius');
});

test('overlapping subscriptions on one connection deliver each message once to the connection', async ({ r }) => {
  const producer = await r.client('json', 'producer');
  const consumer = await r.client('json', 'consumer');
  let received = 0;
  consumer.on('message', () => received++);
  const parent = await consumer.subscribe('/a');
  const child = await consumer.subscribe('/a/b');
  await producer.publish('/a/b', 'x', { ack: true });
  assert.equal((await take(parent, 1))[0]!.value, 'x');
  assert.equal((await take(child, 1))[0]!.value, 'x');
  assert.is(received, 1);
  assert.is(r.broker.stats().messagesOut, 1);
});

test('list topics returns only topics holding a value', async ({ r }) => {
  const producer = await r.client('json');
  const consumer = await r.client('json', 'consumer');
  await consumer.subscribe('/only/subscribed');
  assert.equal(await producer.listTopics(), []);
  producer.publish('/weather/temperature', 1);
  producer.publish('/msg', 'hi');
  await producer.publish('/weather2/temperature/celsius', 2, { ack: true });
  assert.equal(await consumer.listTopics(), ['/msg', '/weather/temperature', '/weather2/temperature/celsius']);
  assert.equal(r.broker.topics(), ['/msg', '/weather/temperature', '/weather2/temperature/celsius']);
});

test('after cancelling, a consumer receives nothing more from that topic', async ({ r }) => {
  const producer = await r.client('json', 'producer');
  const consumer = await r.client('v8', 'consumer');
  const sub = await consumer.subscribe('/msg');
  const other = await consumer.subscribe('/other');
  await producer.publish('/msg', 1, { ack: true });
  assert.equal((await take(sub, 1))[0]!.value, 1);
  await sub.unsubscribe();
  assert.is(r.broker.stats().subscriptions, 1);
  await producer.publish('/msg', 2, { ack: true });
  await producer.publish('/other', 'still here', { ack: true });
  assert.equal((await take(other, 1))[0]!.value, 'still here');
  assert.equal(await sub.next(), { value: undefined, done: true });
});

test('leaving a for-await loop cancels the subscription', async ({ r }) => {
  const producer = await r.client('json', 'producer');
  const consumer = await r.client('json', 'consumer');
  const sub = await consumer.subscribe('/loop');
  producer.publish('/loop', 1);
  for await (const m of sub) {
    assert.is(m.value, 1);
    break;
  }
  await until(() => r.broker.stats().subscriptions === 0, 2000, 'the broker to drop the subscription');
});

test('a client disconnect cleans up its subscriptions and the broker keeps serving', async ({ r }) => {
  const producer = await r.client('json', 'producer');
  const leaving = await r.client('json', 'consumer');
  const staying = await r.client('json', 'consumer');
  await leaving.subscribe('/temp');
  const sub = await staying.subscribe('/temp');
  const reasons: string[] = [];
  r.broker.on('disconnect', (_info, reason) => reasons.push(reason));
  assert.is(r.broker.stats().subscriptions, 2);
  await leaving.close();
  await until(() => r.broker.stats().connections === 3 - 1, 2000, 'the disconnect');
  assert.is(r.broker.stats().subscriptions, 1);
  assert.equal(reasons, ['client closed the connection']);
  await producer.publish('/temp', 5, { ack: true });
  assert.equal((await take(sub, 1))[0]!.value, 5);
});

test('each subscriber receives a producer\'s messages in publish order', async ({ r }) => {
  const producer = await r.client('json', 'producer');
  const subs = [await (await r.client('json', 'consumer')).subscribe('/seq'), await (await r.client('v8', 'consumer')).subscribe('/')];
  const n = 2000;
  for (let i = 0; i < n; i++) producer.publish(`/seq/${i % 7}`, i);
  for (const s of subs) assert.equal((await take(s, n, 5000)).map((m) => m.value), Array.from({ length: n }, (_, i) => i));
});

test('a client stops reading while a subscription buffer is full and resumes as it drains', async ({ r }) => {
  const { connect } = await import('@trellis/sdk/broker');
  const consumer = await connect({ port: r.port, codec: 'json', plugins: r.host, role: 'consumer', highWaterMark: 10 });
  r.clients.push(consumer);
  const sub = await consumer.subscribe('/bp');
  const producer = await r.client('json', 'producer');
  for (let i = 0; i < 500; i++) producer.publish('/bp', { i, pad: 'x'.repeat(1000) });
  await producer.publish('/bp/done', true, { ack: true });
  await new Promise((res) => setTimeout(res, 100));
  assert.ok(sub.buffered < 500, `reading paused at ${sub.buffered} buffered messages`);
  const got = await take(sub, 501, 5000);
  assert.equal(got.slice(0, 500).map((m) => (m.value as { i: number }).i), Array.from({ length: 500 }, (_, i) => i));
  assert.is(got[500]!.topic, '/bp/done');
});

test('roles are enforced: a consumer may not publish, and the broker says why', async ({ r }) => {
  const consumer = await r.client('json', 'consumer');
  consumer.publish('/x', 1);
  const err = await new Promise<Error>((resolve) => consumer.once('error', resolve));
  assert.match(err.message, /NOT_ALLOWED/);
  const other = await r.client('json');
  assert.equal(await other.listTopics(), []);
});

test('stats and the topic tree describe topics, subscribers and traffic', async ({ r }) => {
  const producer = await r.client('json', 'producer');
  const consumer = await r.client('json', 'consumer');
  await consumer.subscribe('/weather');
  await producer.publish('/weather/temperature', 20, { ack: true });
  const tree = r.broker.topicTree();
  const weather = tree.children.find((c) => c.name === 'weather')!;
  assert.is(weather.subscribers, 1);
  assert.is(weather.hasValue, false);
  assert.equal(weather.children.map((c) => [c.path, c.value]), [['/weather/temperature', 20]]);
  const remote = await consumer.stats();
  assert.is(remote.topics, 1);
  assert.is(remote.consumers, 1);
  assert.is(remote.producers, 1);
  assert.is(remote.messagesIn, 1);
});

test('events report connections, subscriptions, publishes with their delivery count, and disconnects', async ({ r }) => {
  const seen: string[] = [];
  r.broker.on('connection', (c) => seen.push(`connection ${c.id}`));
  r.broker.on('subscribe', (c, topic) => seen.push(`subscribe ${c.id} ${topic} ${c.codec}`));
  r.broker.on('publish', (e) => seen.push(`publish ${e.topic} ${JSON.stringify(e.value)} ${e.codec} ${e.deliveries}`));
  r.broker.on('unsubscribe', (c, topic) => seen.push(`unsubscribe ${c.id} ${topic}`));
  r.broker.on('disconnect', (c) => seen.push(`disconnect ${c.id}`));
  const consumer = await r.client('xml', 'consumer');
  const sub = await consumer.subscribe('/ev');
  const producer = await r.client('pickle', 'producer');
  await producer.publish('/ev/x', [1, 'a'], { ack: true });
  await take(sub, 1);
  await sub.unsubscribe();
  await consumer.close();
  await until(() => seen.length === 6, 2000, 'six events');
  const [c1, c2] = [consumer, producer].map((_, i) => Number(seen.filter((l) => l.startsWith('connection'))[i]!.split(' ')[1]));
  assert.equal(seen, [`connection ${c1}`, `subscribe ${c1} /ev xml`, `connection ${c2}`, 'publish /ev/x [1,"a"] pickle 1', `unsubscribe ${c1} /ev`, `disconnect ${c1}`]);
});

test.run();
