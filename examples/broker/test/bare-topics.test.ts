/**
 * The original API's bare topics (REFERENCE.md §2: the course's tests use names such as
 * "qwerty", without a leading slash): valid top-level topics, listed back exactly as given.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { checkTopic } from '@trellis/sdk/broker';
import { startBroker, take, arrivedWithin, type Running } from './helpers.js';

const test = suite<{ r: Running }>('bare topics');
test.before.each(async (ctx) => {
  ctx.r = await startBroker();
});
test.after.each(async (ctx) => {
  await ctx.r.stop();
});

test('a topic without a leading slash is published, delivered and listed exactly as given', async ({ r }) => {
  const producer = await r.client('json', 'producer');
  const consumer = await r.client('xml', 'consumer');
  const sub = await consumer.subscribe('qwerty');
  await producer.publish('qwerty', { n: 1 }, { ack: true });
  assert.equal(await take(sub, 1), [{ topic: 'qwerty', value: { n: 1 }, retained: false }]);
  assert.equal(await consumer.listTopics(), ['qwerty']);
  assert.equal(r.broker.topics(), ['qwerty']);
  assert.equal(r.broker.lastValue('qwerty'), { n: 1 });
});

test('"qwerty" and "/qwerty" are different topics; bare names nest by segment too', async ({ r }) => {
  const producer = await r.client('json', 'producer');
  const consumer = await r.client('pickle', 'consumer');
  const bare = await consumer.subscribe('sensors');
  const slashed = await consumer.subscribe('/sensors');
  await producer.publish('sensors/kitchen', 20, { ack: true });
  await producer.publish('/sensors/kitchen', 21, { ack: true });
  await producer.publish('sensors2', 22, { ack: true });
  assert.equal(await take(bare, 1), [{ topic: 'sensors/kitchen', value: 20, retained: false }]);
  assert.equal(await take(slashed, 1), [{ topic: '/sensors/kitchen', value: 21, retained: false }]);
  assert.is(await arrivedWithin(bare, 100), 0, '"sensors2" is not under "sensors"');
  assert.is(slashed.buffered, 0);
  assert.equal(await consumer.listTopics(), ['/sensors/kitchen', 'sensors/kitchen', 'sensors2']);
});

test('a subscription on "/" gets bare and slashed topics alike, last values first', async ({ r }) => {
  const producer = await r.client('json', 'producer');
  await producer.publish('qwerty', 'a', { ack: true });
  await producer.publish('/temp', 'b', { ack: true });
  const consumer = await r.client('v8', 'consumer');
  const all = await consumer.subscribe('/');
  assert.is(all.retained, 2);
  const retained = await take(all, 2);
  assert.equal(retained.map((m) => m.topic).sort(), ['/temp', 'qwerty']);
  await producer.publish('asdfgh', 'c', { ack: true });
  assert.equal(await take(all, 1), [{ topic: 'asdfgh', value: 'c', retained: false }]);
});

test('the topic tree shows bare and slashed topics side by side under the root', ({ r }) => {
  return (async () => {
    const producer = await r.client('json', 'producer');
    await producer.publish('qwerty', 1, { ack: true });
    await producer.publish('/weather/temperature', 2, { ack: true });
    const tree = r.broker.topicTree();
    assert.equal(tree.children.map((c) => c.path).sort(), ['/weather', 'qwerty']);
  })();
});

test('topic rules: bare names are valid; empty, "//", trailing "/", wildcards are not', () => {
  for (const ok of ['qwerty', 'a/b', '/a', '/a/b', 'ünïcode']) assert.is(checkTopic(ok), undefined, ok);
  for (const bad of ['', '/', 'a//b', 'a/', '/a/', '//a', 'a+b', 'a/#', '+', 'a\u0001']) assert.type(checkTopic(bad), 'string', JSON.stringify(bad));
  assert.is(checkTopic('/', { root: true }), undefined);
});

test.run();
