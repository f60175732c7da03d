/**
 * Wildcard subscriptions: `+` (exactly one segment) and `#` (the rest, zero segments included),
 * MQTT semantics on `/`-separated segments, besides the reference's prefix subscription. Any
 * other use of the characters is refused, not ignored.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BrokerErrorCode, FrameType, helloFrame, publishFrame, readError, Role, topicMatches, topicRequestFrame, checkFilter } from '@trellis/sdk/broker';
import { startBroker, take, arrivedWithin, rawSocket, until, type Running } from './helpers.js';

const test = suite<{ r: Running }>('wildcards');
test.before.each(async (ctx) => {
  ctx.r = await startBroker();
});
test.after.each(async (ctx) => {
  await ctx.r.stop();
});

const TOPICS = ['/sensors', '/sensors/kitchen/temp', '/sensors/kitchen/humidity', '/sensors/hall/temp', '/sensors/a/b/temp', '/sensors/kitchen/temp/raw', '/other/kitchen/temp', 'sensors/kitchen/temp', 'qwerty'];

async function delivered(r: Running, filter: string): Promise<string[]> {
  const consumer = await r.client('json', 'consumer');
  const sub = await consumer.subscribe(filter);
  const producer = await r.client('pickle', 'producer');
  for (const t of TOPICS) producer.publish(t, t);
  await producer.publish('/done', 1, { ack: true });
  await new Promise((res) => setTimeout(res, 50));
  const got: string[] = [];
  while (sub.buffered > 0) {
    const m = (await sub.next()).value!;
    if (!m.retained) got.push(m.topic); // earlier calls left last values behind
  }
  await consumer.close();
  await producer.close();
  return got;
}

test('"+" matches exactly one segment', async ({ r }) => {
  assert.equal(await delivered(r, '/sensors/+/temp'), ['/sensors/kitchen/temp', '/sensors/hall/temp']);
  assert.equal(await delivered(r, '/+/kitchen/temp'), ['/sensors/kitchen/temp', '/other/kitchen/temp']);
  assert.equal(await delivered(r, '+'), ['qwerty'], 'a bare "+" is one bare segment');
});

test('"#" matches the rest, the parent itself included', async ({ r }) => {
  assert.equal(await delivered(r, '/sensors/#'), ['/sensors', '/sensors/kitchen/temp', '/sensors/kitchen/humidity', '/sensors/hall/temp', '/sensors/a/b/temp', '/sensors/kitchen/temp/raw']);
  assert.equal(await delivered(r, '/sensors/+/temp/#'), ['/sensors/kitchen/temp', '/sensors/hall/temp', '/sensors/kitchen/temp/raw']);
  assert.equal((await delivered(r, '#')).length, TOPICS.length + 1, 'every topic, bare ones included');
});

test('a wildcard subscription gets the last value of every matching topic first', async ({ r }) => {
  const producer = await r.client('json', 'producer');
  for (const t of TOPICS) await producer.publish(t, t, { ack: true });
  const consumer = await r.client('xml', 'consumer');
  const sub = await consumer.subscribe('/sensors/+/temp');
  assert.is(sub.retained, 2);
  const got = await take(sub, 2);
  assert.equal(got.map((m) => [m.topic, m.retained]).sort(), [['/sensors/hall/temp', true], ['/sensors/kitchen/temp', true]]);
});

test('overlapping wildcard and prefix subscriptions deliver once per connection, to each local subscription', async ({ r }) => {
  const consumer = await r.client('json', 'consumer');
  const a = await consumer.subscribe('/sensors');
  const b = await consumer.subscribe('/sensors/#');
  const c = await consumer.subscribe('/sensors/+/temp');
  const producer = await r.client('json', 'producer');
  await producer.publish('/sensors/kitchen/temp', 1, { ack: true });
  for (const s of [a, b, c]) assert.equal((await take(s, 1))[0]!.topic, '/sensors/kitchen/temp');
  assert.is(r.broker.stats().messagesOut, 1, 'one MESSAGE frame for the connection');
});

test('cancelling a wildcard subscription stops it; a disconnect cleans it up', async ({ r }) => {
  const consumer = await r.client('json', 'consumer');
  const sub = await consumer.subscribe('/x/+');
  assert.equal(r.broker.clients().find((c) => c.role === 'consumer')!.subscriptions, ['/x/+']);
  await sub.unsubscribe();
  const other = await r.client('json', 'consumer');
  const watch = await other.subscribe('/x/#');
  const producer = await r.client('json', 'producer');
  await producer.publish('/x/y', 1, { ack: true });
  await take(watch, 1);
  assert.is(r.broker.stats().subscriptions, 1);
  await other.close();
  await until(() => r.broker.stats().subscriptions === 0, 3000, 'cleanup');
});

test('misplaced wildcards are refused with BAD_TOPIC, in subscriptions and in publishes', async ({ r }) => {
  for (const filter of ['/a/#/b', '/a/b#', '/a+/b', '#/a', 'a/+x']) {
    const raw = await rawSocket(r.port);
    raw.socket.write(helloFrame(0, Role.BOTH));
    raw.socket.write(topicRequestFrame(FrameType.SUBSCRIBE, 1, filter));
    const err = readError(await raw.next(FrameType.ERROR));
    assert.is(err.code, BrokerErrorCode.BAD_TOPIC, filter);
    raw.socket.destroy();
  }
  for (const topic of ['/a/+', '/a/#', 'a+b']) {
    const raw = await rawSocket(r.port);
    raw.socket.write(helloFrame(0, Role.BOTH));
    raw.socket.write(publishFrame(topic, Buffer.from('1'), 1));
    const err = readError(await raw.next(FrameType.ERROR));
    assert.is(err.code, BrokerErrorCode.BAD_TOPIC, topic);
    assert.match(err.message, /wildcard/);
    raw.socket.destroy();
  }
});

test('topicMatches and checkFilter agree with the broker', () => {
  assert.ok(topicMatches('/a/+', '/a/b'));
  assert.not.ok(topicMatches('/a/+', '/a/b/c'));
  assert.ok(topicMatches('/a/#', '/a'));
  assert.ok(topicMatches('/a', '/a/b/c'), 'prefix subscription');
  assert.not.ok(topicMatches('/a', '/ab'));
  assert.ok(topicMatches('/', 'qwerty'));
  assert.is(checkFilter('/a/+/c/#'), undefined);
  assert.type(checkFilter('/a/#/c'), 'string');
});

test('a slow subscriber under a wildcard is still bounded (no leak of the filter)', async ({ r }) => {
  const consumer = await r.client('json', 'consumer');
  const sub = await consumer.subscribe('/w/+');
  assert.is(await arrivedWithin(sub, 20), 0);
  await consumer.close();
  await until(() => r.broker.stats().subscriptions === 0, 3000, 'cleanup');
});

test.run();
