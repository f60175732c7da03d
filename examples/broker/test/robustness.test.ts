/** Garbage from many clients and a buggy codec plugin never take the broker down. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect as netConnect } from 'node:net';
import { createHost, createLogger, type PluginError, type Value } from '@trellis/sdk';
import { helloFrame, publishFrame, Role, createBroker, connect } from '@trellis/sdk/broker';
import { startBroker, take } from './helpers.js';

test('hundreds of connections sending random and mutated frames are each closed; the broker keeps serving', async () => {
  const r = await startBroker({ lingerMs: 200 });
  try {
    const consumer = await r.client('json', 'consumer');
    const sub = await consumer.subscribe('/health');
    let seed = 12345;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    const valid = Buffer.concat([helloFrame(0, Role.BOTH), publishFrame('/fuzz/a', Buffer.from('{"k":[1,2,3]}'), 5)]);
    const inputs: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      if (i % 3 === 0) inputs.push(Buffer.from(Array.from({ length: 1 + rand(64) }, () => rand(256))));
      else {
        const m = Buffer.from(valid);
        for (let k = 0, n = 1 + rand(4); k < n; k++) m[rand(m.length)] = rand(256);
        inputs.push(i % 3 === 1 ? m : Buffer.concat([m, Buffer.from(Array.from({ length: rand(32) }, () => rand(256)))]));
      }
    }
    await Promise.all(
      inputs.map(
        (bytes) =>
          new Promise<void>((resolve) => {
            const s = netConnect({ port: r.port, host: '127.0.0.1' }, () => s.end(bytes));
            s.on('data', () => undefined);
            s.on('error', () => undefined);
            s.on('close', () => resolve());
            s.setTimeout(5000, () => s.destroy());
          }),
      ),
    );
    const producer = await r.client('json', 'producer');
    await producer.publish('/health', 'still up', { ack: true });
    assert.equal((await take(sub, 1))[0]!.value, 'still up');
    assert.ok(r.broker.stats().protocolErrors > 100, `protocol errors: ${r.broker.stats().protocolErrors}`);
    await r.broker.close({ timeoutMs: 1000 });
    assert.is(r.broker.stats().connections, 0);
  } finally {
    await r.stop();
  }
});

test('a codec plugin that throws while encoding is reported with its id; its consumer is dropped with the reason, others still get the message', async () => {
  const errors: PluginError[] = [];
  const host = createHost({
    logger: createLogger('test', 'silent'),
    plugins: [
      {
        manifest: { name: 'broken-codec', version: '1.0.0', engines: { trellis: '*' }, contributes: { serializers: [{ id: 'broken', title: 'Broken', wireId: 42 }] } },
        activate(ctx) {
          ctx.serialization.registerCodec({
            wireId: 42,
            name: 'broken',
            encode: () => {
              throw new Error('encoder bug');
            },
            decode: () => null,
          });
        },
      },
    ],
  });
  host.on('plugin-error', (e) => errors.push(e));
  const broker = createBroker({ host });
  const { port } = await broker.listen(0);
  const clients = await Promise.all([
    connect({ port, codec: 'json', plugins: host }),
    connect({ port, codec: 42, plugins: host, role: 'consumer' }),
    connect({ port, codec: 'json', plugins: host, role: 'consumer' }),
  ]);
  try {
    const [producer, broken, healthy] = clients as [typeof clients[0], typeof clients[0], typeof clients[0]];
    await broken.subscribe('/t');
    const brokenError = new Promise<Error>((resolve) => broken.once('error', resolve));
    const sub = await healthy.subscribe('/t');
    await producer.publish('/t', { v: 1 } as Value, { ack: true });
    assert.equal((await take(sub, 1))[0]!.value, { v: 1 });
    assert.is(errors.length, 1);
    assert.is(errors[0]!.plugin, 'broken-codec');
    assert.is(errors[0]!.hook, 'serializer:broken.encode');
    assert.match(errors[0]!.message, /encoder bug/);
    assert.match((await brokenError).message, /INTERNAL: the broken codec plugin failed to encode a message on \/t/);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await broker.close();
    await host.dispose();
  }
});

test('the store of last values is bounded: a publish past it is refused, the store keeps serving', async () => {
  const r = await startBroker({ maxRetainedBytes: 1000 });
  try {
    const producer = await r.client('json', 'producer');
    await producer.publish('/a', 'x'.repeat(500), { ack: true });
    await producer.publish('/a', 'y'.repeat(600), { ack: true }); // replaces /a: 602 bytes kept
    assert.is(r.broker.stats().retainedBytes, 602);
    const error = new Promise<Error>((resolve) => producer.once('error', resolve));
    producer.publish('/b', 'z'.repeat(500));
    assert.match((await error).message, /LIMIT: the broker keeps at most 1000 bytes of last values/);
    assert.equal(r.broker.topics(), ['/a']);
    const other = await r.client('json');
    await other.publish('/c', 'small', { ack: true });
    assert.equal(await other.listTopics(), ['/a', '/c']);
  } finally {
    await r.stop();
  }
});

test.run();
