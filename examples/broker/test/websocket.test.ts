/** The broker over WebSocket: the same frames as TCP, both ways, with the same checks. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WebSocket } from 'ws';
import { FrameReader } from '@trellis/sdk/framing';
import { attachWebSocket, helloFrame, topicRequestFrame, publishFrame, readError, FrameType, Role, BrokerErrorCode, readDelivery, subscribeAckedFrame, ReliableFrame } from '@trellis/sdk/broker';
import { startBroker, until } from './helpers.js';

async function wsClient(url: string): Promise<{ ws: WebSocket; frames: Buffer[]; closed: Promise<void> }> {
  const ws = new WebSocket(url);
  const frames: Buffer[] = [];
  const reader = new FrameReader({ maxFrameBytes: 1 << 24 }, (body) => frames.push(Buffer.from(body)));
  ws.on('message', (data: Buffer) => reader.push(data));
  const closed = new Promise<void>((r) => ws.once('close', () => r()));
  await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
  return { ws, frames, closed };
}

test('a WebSocket consumer receives last values and live messages from a TCP producer', async () => {
  const r = await startBroker();
  const transport = await attachWebSocket(r.broker, { port: 0 });
  try {
    const producer = await r.client('pickle', 'producer');
    await producer.publish('/weather/temperature', 21.5, { ack: true });
    const c = await wsClient(`ws://127.0.0.1:${transport.address!.port}/`);
    // a frame split across two WebSocket messages, then two frames in one message
    const hello = helloFrame(0, Role.BOTH);
    c.ws.send(hello.subarray(0, 3));
    c.ws.send(Buffer.concat([hello.subarray(3), topicRequestFrame(FrameType.SUBSCRIBE, 1, '/weather')]));
    await until(() => c.frames.some((f) => f[0] === FrameType.SUBACK), 5000, 'SUBACK');
    await producer.publish('/weather/humidity', 55, { ack: true });
    c.ws.send(publishFrame('/weather/wind', Buffer.from('{"speed":3}'), 9));
    await until(() => c.frames.filter((f) => f[0] === FrameType.MESSAGE).length === 3 && c.frames.some((f) => f[0] === FrameType.PUBACK), 5000, 'three messages and the PUBACK');
    const texts = c.frames.filter((f) => f[0] === FrameType.MESSAGE).map((f) => {
      const tlen = f.readUInt16BE(2);
      return `${f.toString('utf8', 4, 4 + tlen)} ${f.toString('utf8', 4 + tlen)} ${f[1] === 1 ? 'retained' : 'live'}`;
    });
    assert.equal(texts, ['/weather/temperature 21.5 retained', '/weather/humidity 55 live', '/weather/wind {"speed":3} live']);
    assert.equal(r.broker.lastValue('/weather/wind'), { speed: 3 });
    c.ws.close();
  } finally {
    await transport.close();
    await r.stop();
  }
});

test('acknowledged delivery works over WebSocket too', async () => {
  const r = await startBroker();
  const transport = await attachWebSocket(r.broker, { port: 0 });
  try {
    const c = await wsClient(`ws://127.0.0.1:${transport.address!.port}/`);
    c.ws.send(Buffer.concat([helloFrame(0, Role.CONSUMER), subscribeAckedFrame(1, 5, '/a')]));
    await until(() => c.frames.some((f) => f[0] === FrameType.SUBACK), 5000, 'SUBACK');
    const producer = await r.client('json', 'producer');
    await producer.publish('/a/b', 'x', { ack: true });
    await until(() => c.frames.some((f) => f[0] === ReliableFrame.DELIVERY), 5000, 'DELIVERY');
    const d = readDelivery(c.frames.find((f) => f[0] === ReliableFrame.DELIVERY)!);
    assert.equal([d.subId, d.seq, d.topic, d.payload.toString()], [5, 1, '/a/b', '"x"']);
    c.ws.close();
  } finally {
    await transport.close();
    await r.stop();
  }
});

test('a bad frame over WebSocket gets ERROR and a close, like TCP; origins can be restricted', async () => {
  const r = await startBroker();
  const transport = await attachWebSocket(r.broker, { port: 0 });
  const strict = await attachWebSocket(r.broker, { port: 0, origins: ['http://127.0.0.1:1234'] });
  try {
    const c = await wsClient(`ws://127.0.0.1:${transport.address!.port}/`);
    c.ws.send(topicRequestFrame(FrameType.SUBSCRIBE, 1, '/x')); // before HELLO
    await c.closed;
    const err = readError(c.frames.find((f) => f[0] === FrameType.ERROR)!);
    assert.is(err.code, BrokerErrorCode.OUT_OF_ORDER);
    const refused = new WebSocket(`ws://127.0.0.1:${strict.address!.port}/`, { origin: 'http://evil.example' });
    const outcome = await new Promise<string>((resolve) => {
      refused.once('open', () => resolve('open'));
      refused.once('error', (e) => resolve(e.message));
    });
    assert.match(outcome, /401|403/);
    const ok = new WebSocket(`ws://127.0.0.1:${strict.address!.port}/`, { origin: 'http://127.0.0.1:1234' });
    await new Promise<void>((resolve, reject) => ok.once('open', resolve).once('error', reject));
    ok.close();
  } finally {
    await strict.close();
    await transport.close();
    await r.stop();
  }
});

test.run();
