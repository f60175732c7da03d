/** Wire-protocol robustness: bad frames get an ERROR and a close while other clients are served. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameType, BrokerErrorCode, helloFrame, publishFrame, topicRequestFrame, readError, Role, idFrame } from '@trellis/sdk/broker';
import { startBroker, rawSocket, take, until, type Running } from './helpers.js';

const test = suite<{ r: Running }>('broker wire protocol');
test.before.each(async (ctx) => {
  ctx.r = await startBroker({ maxFrameBytes: 64 * 1024, helloTimeoutMs: 300 });
});
test.after.each(async (ctx) => {
  await ctx.r.stop();
});

const frameOf = (bytes: number[]) => {
  const b = Buffer.alloc(4 + bytes.length);
  b.writeUInt32BE(bytes.length, 0);
  Buffer.from(bytes).copy(b, 4);
  return b;
};

/** Sends `bytes` on a fresh raw connection and returns the ERROR it gets, after the socket closes. */
async function refused(r: Running, ...chunks: Buffer[]): Promise<{ code: number; message: string }> {
  const raw = await rawSocket(r.port);
  for (const c of chunks) raw.socket.write(c);
  const err = await raw.next(FrameType.ERROR);
  await raw.closed;
  return readError(err);
}

/** A healthy client on the same broker still gets its messages. */
async function stillServing(r: Running): Promise<void> {
  const producer = await r.client('json', 'producer');
  const consumer = await r.client('json', 'consumer');
  const sub = await consumer.subscribe('/health');
  await producer.publish('/health', 'ok', { ack: true });
  assert.equal((await take(sub, 1))[0]!.value, 'ok');
}

test('a frame before HELLO is out of order: ERROR then close, others keep being served', async ({ r }) => {
  const bystander = await r.client('json', 'consumer');
  const sub = await bystander.subscribe('/health');
  const err = await refused(r, topicRequestFrame(FrameType.SUBSCRIBE, 1, '/x'));
  assert.is(err.code, BrokerErrorCode.OUT_OF_ORDER);
  assert.match(err.message, /first frame must be HELLO/);
  const producer = await r.client('json', 'producer');
  await producer.publish('/health', 'ok', { ack: true });
  assert.equal((await take(sub, 1))[0]!.value, 'ok');
});

test('an oversized length prefix is refused before any of the body is sent', async ({ r }) => {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(64 * 1024 + 1);
  const err = await refused(r, helloFrame(0, Role.BOTH), header);
  assert.is(err.code, BrokerErrorCode.FRAME_TOO_LARGE);
  assert.match(err.message, /65537 bytes exceeds the maximum of 65536/);
  await stillServing(r);
});

test('a 4 GiB length prefix is refused at once, not buffered', async ({ r }) => {
  const err = await refused(r, Buffer.from([0xff, 0xff, 0xff, 0xff]));
  assert.is(err.code, BrokerErrorCode.FRAME_TOO_LARGE);
});

test('the client refuses a message over the broker frame limit and its connection stays usable', async ({ r }) => {
  const client = await r.client('json');
  assert.is(client.maxFrameBytes, 64 * 1024);
  assert.throws(() => client.publish('/big', 'x'.repeat(70 * 1024)), /exceeds the broker's 65536-byte frame limit/);
  await client.publish('/small', 'fits', { ack: true });
  assert.equal(await client.listTopics(), ['/small']);
});

test('an empty frame, an unknown frame type and a truncated PUBLISH are malformed', async ({ r }) => {
  assert.is((await refused(r, helloFrame(0, Role.BOTH), frameOf([]))).code, BrokerErrorCode.FRAME_TOO_LARGE);
  assert.is((await refused(r, helloFrame(0, Role.BOTH), frameOf([0x55]))).code, BrokerErrorCode.MALFORMED);
  const truncated = await refused(r, helloFrame(0, Role.BOTH), frameOf([FrameType.PUBLISH, 0, 0, 0, 0, 0, 0, 50, 0x2f]));
  assert.is(truncated.code, BrokerErrorCode.MALFORMED);
  assert.match(truncated.message, /topic runs past the end/);
  await stillServing(r);
});

test('a payload that does not decode in the announced codec is refused', async ({ r }) => {
  const err = await refused(r, helloFrame(0, Role.BOTH), publishFrame('/temp', Buffer.from('{"unterminated": ')));
  assert.is(err.code, BrokerErrorCode.BAD_PAYLOAD);
  assert.match(err.message, /does not decode as json/);
  assert.equal(r.broker.topics(), [], 'nothing was stored');
  await stillServing(r);
});

test('a second HELLO, a broker-only frame and a bad topic close the connection', async ({ r }) => {
  assert.is((await refused(r, helloFrame(0, Role.BOTH), helloFrame(0, Role.BOTH))).code, BrokerErrorCode.OUT_OF_ORDER);
  assert.is((await refused(r, helloFrame(0, Role.BOTH), idFrame(FrameType.PUBACK, 1))).code, BrokerErrorCode.OUT_OF_ORDER);
  assert.is((await refused(r, helloFrame(0, Role.BOTH), topicRequestFrame(FrameType.SUBSCRIBE, 1, 'trailing/'))).code, BrokerErrorCode.BAD_TOPIC);
  assert.is((await refused(r, helloFrame(0, Role.BOTH), publishFrame('/a//b', Buffer.from('1')))).code, BrokerErrorCode.BAD_TOPIC);
  assert.is((await refused(r, helloFrame(0, Role.BOTH), publishFrame('/', Buffer.from('1')))).code, BrokerErrorCode.BAD_TOPIC);
  await stillServing(r);
});

test('an unknown codec id and an unsupported version are refused with the reason', async ({ r }) => {
  const codec = await refused(r, helloFrame(77, Role.BOTH));
  assert.is(codec.code, BrokerErrorCode.UNKNOWN_CODEC);
  assert.match(codec.message, /codec 77/);
  assert.match(codec.message, /json \(0\)/);
  assert.is((await refused(r, helloFrame(0, Role.BOTH, 9))).code, BrokerErrorCode.UNSUPPORTED_VERSION);
  assert.is((await refused(r, helloFrame(0, 7 as 1))).code, BrokerErrorCode.MALFORMED);
});

test('connect() rejects with the broker\'s reason when the codec is unknown there', async ({ r }) => {
  const { connect } = await import('@trellis/sdk/broker');
  const codec = { wireId: 77, name: 'private', encode: () => new Uint8Array(), decode: () => null };
  try {
    await connect({ port: r.port, codec });
    assert.unreachable('connect should fail');
  } catch (err) {
    assert.match((err as Error).message, /UNKNOWN_CODEC: no serializer plugin provides codec 77/);
  }
  await stillServing(r);
});

test('a PUBLISH topic that is not UTF-8 is refused even right after a valid topic of the same length', async ({ r }) => {
  // the broker reuses the text of a producer's repeated topic: only the very same bytes may skip the check
  const bad = publishFrame('/a/b2', Buffer.from('2'));
  bad[12 + 3] = 0xff; // the topic starts after length, type, flags, request id and topic length
  const err = await refused(r, helloFrame(0, Role.PRODUCER), publishFrame('/a/b1', Buffer.from('1')), bad);
  assert.is(err.code, BrokerErrorCode.MALFORMED);
  assert.match(err.message, /not valid UTF-8/);
  await stillServing(r);
});

test('a connection that never says HELLO is closed after the hello timeout', async ({ r }) => {
  const err = await refused(r);
  assert.is(err.code, BrokerErrorCode.OUT_OF_ORDER);
  assert.match(err.message, /no HELLO within 300 ms/);
});

test('frames split at every byte boundary, and pipelined before WELCOME, are read correctly', async ({ r }) => {
  const raw = await rawSocket(r.port);
  const bytes = Buffer.concat([helloFrame(0, Role.BOTH), topicRequestFrame(FrameType.SUBSCRIBE, 7, '/t'), publishFrame('/t', Buffer.from('{"a":[1,2]}'), 9)]);
  for (const b of bytes) {
    raw.socket.write(Buffer.from([b]));
    await new Promise((res) => setImmediate(res));
  }
  assert.is((await raw.next())[0], FrameType.WELCOME);
  assert.is((await raw.next())[0], FrameType.SUBACK);
  const msg = await raw.next();
  assert.is(msg[0], FrameType.MESSAGE);
  assert.is(msg.subarray(4).toString(), '/t{"a":[1,2]}');
  assert.is((await raw.next())[0], FrameType.PUBACK);
  raw.socket.destroy();
});

test('a slow consumer is disconnected with a reason and does not hold back the others', async () => {
  const limit = 1024 * 1024;
  const r = await startBroker({ maxBufferBytes: limit, lingerMs: 5000 });
  try {
    const slow = await rawSocket(r.port);
    slow.socket.write(Buffer.concat([helloFrame(0, Role.CONSUMER), topicRequestFrame(FrameType.SUBSCRIBE, 1, '/firehose')]));
    await slow.next(FrameType.SUBACK);
    slow.socket.pause(); // stops reading: the kernel buffers fill, then the broker's queue
    const fast = await r.client('json', 'consumer');
    const sub = await fast.subscribe('/firehose');
    const events: number[] = [];
    r.broker.on('slow-consumer', (_c, pending) => events.push(pending));
    const producer = await r.client('json', 'producer');
    const big = 'x'.repeat(16 * 1024);
    let sent = 0;
    let fastCount = 0;
    while (events.length === 0 && sent < 4000) {
      for (let i = 0; i < 9; i++) producer.publish('/firehose', big);
      await producer.publish('/firehose', big, { ack: true });
      sent += 10;
      // the fast consumer keeps up: it reads everything sent so far
      fastCount += (await take(sub, 10)).length;
    }
    assert.is(events.length, 1, 'the slow consumer was detected');
    assert.ok(events[0]! > limit);
    assert.is(fastCount, sent, 'the fast consumer got every message');
    assert.is(r.broker.stats().slowConsumers, 1);
    assert.is(r.broker.stats().connections, 3);
    slow.socket.resume();
    const err = readError(await slow.next(FrameType.ERROR));
    assert.is(err.code, BrokerErrorCode.SLOW_CONSUMER);
    assert.match(err.message, /exceed the broker's limit of 1048576/);
    await slow.closed;
    await until(() => r.broker.stats().connections === 2, 2000, 'the slow consumer to be gone');
  } finally {
    await r.stop();
  }
});

test('a client that never reads its replies is bounded like a slow consumer', async () => {
  const r = await startBroker({ maxBufferBytes: 256 * 1024 });
  try {
    const producer = await r.client('json', 'producer');
    for (let i = 0; i < 200; i++) producer.publish(`/${String(i).padStart(3, '0')}/${'t'.repeat(900)}`, i);
    await producer.publish('/last', 1, { ack: true });
    const raw = await rawSocket(r.port);
    raw.socket.pause(); // never reads: every TOPICS reply (about 180 KB) piles up
    let slow = 0;
    r.broker.on('slow-consumer', () => slow++);
    raw.socket.write(Buffer.concat([helloFrame(0, Role.BOTH), ...Array.from({ length: 200 }, (_, i) => idFrame(FrameType.LIST_TOPICS, i + 1))]));
    await until(() => slow === 1, 3000, 'the slow-consumer event');
    assert.ok(r.broker.clients().every((c) => c.pendingBytes < 1024 * 1024));
    await stillServing(r);
  } finally {
    await r.stop();
  }
});

test('close() tells connected clients the broker is shutting down', async () => {
  const r = await startBroker();
  const client = await r.client('json');
  const sub = await client.subscribe('/x');
  const errors: Error[] = [];
  client.on('error', (e) => errors.push(e));
  await r.broker.close({ timeoutMs: 1000 });
  await until(() => client.closed, 2000, 'the client to see the close');
  assert.match(errors[0]!.message, /SHUTDOWN/);
  try {
    await sub.next();
    assert.unreachable('the subscription should end with the shutdown error');
  } catch (err) {
    assert.match((err as Error).message, /SHUTDOWN/);
  }
  await r.stop();
});

test.run();
