/**
 * Last values and their budgets: what is kept is counted (the producer's bytes and every
 * translation cached for subscribers), per client and in total, and released when replaced or
 * cleared — including when the only subscriber is dropped while the first message is delivered.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BrokerError, BrokerErrorCode, connect } from '@trellis/sdk';
import { startBroker, take } from './helpers.js';

test('a last value survives its only subscriber being dropped as slow during the first delivery', async () => {
  const r = await startBroker({ maxBufferBytes: 1024, maxRetainedBytes: 64 * 1024 });
  try {
    const producer = await r.client('json', 'producer');
    for (let i = 0; i < 20; i++) {
      const slow = await r.client('json', 'consumer');
      await slow.subscribe(`/new/${i}`);
      await producer.publish(`/new/${i}`, 'x'.repeat(2000), { ack: true });
      await new Promise<void>((res) => (slow.closed ? res() : slow.once('close', () => res())));
    }
    assert.is(r.broker.topics().length, 20, 'every topic is listed');
    const late = await r.client('json', 'consumer');
    const sub = await late.subscribe('/new/7');
    assert.is(sub.retained, 1, 'a new subscriber gets the last value');
    assert.equal((await take(sub, 1))[0]!.value, 'x'.repeat(2000));
    const before = r.broker.stats().retainedBytes;
    await producer.publish('/new/7', 'y', { ack: true });
    assert.ok(r.broker.stats().retainedBytes < before, 'replacing a value releases its bytes');
    // the budget is not leaked: 20 topics of ~2 KB fit in 64 KB, and so does a further one
    await producer.publish('/another', 'z'.repeat(2000), { ack: true });
    assert.ok(r.broker.topics().includes('/another'));
  } finally {
    await r.stop();
  }
});

test('retained bytes are limited per client: one client cannot take the budget of all', async () => {
  const r = await startBroker({ maxRetainedBytes: 1024 * 1024, maxRetainedBytesPerClient: 8 * 1024 });
  try {
    const greedy = await r.client('json', 'producer');
    let refused: unknown;
    try {
      for (let i = 0; i < 100; i++) await greedy.publish(`/fill/${i}`, 'x'.repeat(1000), { ack: true });
    } catch (err) {
      refused = err;
    }
    assert.ok(refused instanceof BrokerError && refused.wireCode === BrokerErrorCode.LIMIT, String(refused));
    assert.match(String(refused), /per client/);
    assert.ok(r.broker.topics().length <= 8, `kept ${r.broker.topics().length} values`);
    const sameAddress = await r.client('json', 'producer');
    const again = await sameAddress.publish('/again', 'y'.repeat(1000), { ack: true }).then(() => 'stored', (err: Error) => err.message);
    assert.match(again, /per client/, 'a new connection from the same address shares its budget');
    const other = await connect({ port: r.port, codec: 'json', plugins: r.host, localAddress: '127.0.0.2' });
    r.clients.push(other);
    await other.publish('/mine', 'y'.repeat(1000), { ack: true });
    assert.ok(r.broker.topics().includes('/mine'), 'a client from another address still has its own budget');
  } finally {
    await r.stop();
  }
});

test('cached translations of a last value count against the budget', async () => {
  const r = await startBroker();
  try {
    const producer = await r.client('json', 'producer');
    await producer.publish('/t', { list: [1, 2, 3], s: 'text' }, { ack: true });
    const plainBytes = r.broker.stats().retainedBytes;
    const xml = await r.client('xml', 'consumer');
    const sub = await xml.subscribe('/t');
    await take(sub, 1);
    assert.ok(r.broker.stats().retainedBytes > plainBytes, `${r.broker.stats().retainedBytes} > ${plainBytes}: the XML encoding kept for later subscribers is counted`);
  } finally {
    await r.stop();
  }
});

test('publishes refused for their payload leave no empty topic nodes behind (the topic budget is not eaten)', async () => {
  const r = await startBroker({ maxTopics: 50 });
  try {
    const { rawSocket } = await import('./helpers.js');
    const { helloFrame, publishFrame, Role, FrameType } = await import('@trellis/sdk');
    for (let i = 0; i < 100; i++) {
      const raw = await rawSocket(r.port);
      raw.socket.write(helloFrame(0, Role.PRODUCER));
      raw.socket.write(publishFrame(`/junk/${i}/deep/er`, Buffer.from('{not json'), 1));
      await raw.next(FrameType.ERROR);
      raw.socket.destroy();
    }
    assert.is(r.broker.stats().nodes, 1, 'only the root');
    const p = await r.client('json', 'producer');
    await p.publish('/fine/topic', 1, { ack: true });
  } finally {
    await r.stop();
  }
});

test.run();
