/**
 * The broker inside the demo: the real engine, one producer per codec publishing the sample
 * topics of the reference (`/temp`, `/msg`, `/weather/…`, `/weather2/…`), and consumers in
 * different codecs subscribed to them, so every message is translated on its way.
 */
import type { Value } from '@trellis/sdk';
import { createBroker, connect, attachWebSocket, type BrokerClient, type TopicSnapshot, type WebSocketTransport } from '@trellis/sdk/broker';
import type { BrokerPart, PartContext } from './demo.js';
import type { TopicView } from './view-model.js';
import { jsonSafe } from './json-safe.js';
import { RateMeter } from './rate-meter.js';

/** What each producer publishes: simulated sensors and a chat line, one topic per tick in turn. */
const FEEDS: Record<string, readonly string[]> = {
  json: ['/temp', '/weather/temperature'],
  xml: ['/msg', '/weather/humidity'],
  pickle: ['/weather2/temperature/celsius', '/weather/wind'],
};
/** Consumers: topic → codec they speak (a different one from most producers on purpose). */
const CONSUMERS: readonly (readonly [string, string])[] = [
  ['/temp', 'xml'],
  ['/msg', 'pickle'],
  ['/weather', 'json'],
  ['/weather2', 'xml'],
];

const WORDS = ['hello', 'from', 'trellis', 'pub', 'sub', 'broker', 'codec', 'json', 'xml', 'pickle', 'chord', 'ring'];

/** A sensor that drifts a little each reading, so the page shows values moving. */
function drift(start: number, step: number, min: number, max: number): () => number {
  let v = start;
  return () => {
    v = Math.min(max, Math.max(min, v + (Math.random() - 0.5) * 2 * step));
    return Math.round(v * 10) / 10;
  };
}

export async function startBrokerPart(ctx: PartContext): Promise<BrokerPart> {
  const broker = createBroker({ host: ctx.host, logger: ctx.log });
  const address = await broker.listen(ctx.ports.broker, '127.0.0.1');
  let ws: WebSocketTransport;
  try {
    ws = await attachWebSocket(broker, { port: ctx.ports.brokerWs, host: '127.0.0.1' });
  } catch (err) {
    await broker.close();
    throw err;
  }
  const meter = new RateMeter(5);
  broker.on('publish', (e) => meter.count(e.topic));

  const clients: BrokerClient[] = [];
  const producing: string[] = [];
  const consuming: string[] = [];
    const timers: NodeJS.Timeout[] = [];
  const received = new Map<string, number>();
  const skipped: string[] = [];
  const temp = drift(21, 0.3, -10, 45);
  const humidity = drift(55, 1, 0, 100);
  const celsius = drift(18, 0.4, -20, 45);
  let seq = 0;
  const reading = (topic: string): Value => {
    switch (topic) {
      case '/temp':
      case '/weather/temperature':
        return temp();
      case '/weather/humidity':
        return humidity();
      case '/weather2/temperature/celsius':
        return celsius();
      case '/weather/wind':
        return { speed: Math.round(Math.random() * 300) / 10, direction: ['N', 'NE', 'E', 'SE', 'S', 'SW', 'W', 'NW'][Math.floor(Math.random() * 8)]!, gust: Math.random() < 0.2 };
      default:
        return `${++seq}: ${Array.from({ length: 3 }, () => WORDS[Math.floor(Math.random() * WORDS.length)]).join(' ')}`;
    }
  };

  try {
    for (const [codec, topics] of Object.entries(FEEDS)) {
      let client: BrokerClient;
      try {
        client = await connect({ port: address.port, codec, plugins: ctx.host, role: 'producer' });
      } catch (err) {
        skipped.push(`${codec} producer (${(err as Error).message})`);
        continue;
      }
      clients.push(client);
      producing.push(`${codec} → ${topics.join(', ')}`);
      let turn = 0;
      const publish = () => {
        const topic = topics[turn++ % topics.length]!;
        if (!client.closed) void Promise.resolve(client.publish(topic, reading(topic))).catch((err) => ctx.log.warn(`publish on ${topic}: ${(err as Error).message}`));
      };
      publish();
      timers.push(setInterval(publish, 300 + Math.floor(Math.random() * 200)));
    }
    for (const [topic, codec] of CONSUMERS) {
      let client: BrokerClient;
      try {
        client = await connect({ port: address.port, codec, plugins: ctx.host, role: 'consumer' });
      } catch (err) {
        skipped.push(`${codec} consumer of ${topic} (${(err as Error).message})`);
        continue;
      }
      clients.push(client);
      const sub = await client.subscribe(topic);
      consuming.push(`${topic} (${codec})`);
      void (async () => {
        for await (const _ of sub) received.set(topic, (received.get(topic) ?? 0) + 1);
      })().catch(() => undefined);
    }
  } catch (err) {
    for (const t of timers) clearInterval(t);
    meter.close();
    await Promise.allSettled(clients.map((c) => c.close()));
    await ws.close();
    await broker.close();
    throw err;
  }

  const url = `tcp://127.0.0.1:${address.port}`;
  const wsUrl = `ws://127.0.0.1:${ws.address!.port}/`;
  const flatten = (node: TopicSnapshot, out: TopicView[]): TopicView[] => {
    if (node.path !== '/' && (node.hasValue || node.subscribers > 0)) {
      out.push({ topic: node.path, hasValue: node.hasValue, value: node.hasValue ? jsonSafe(node.value) : null, subscribers: node.subscribers, messages: meter.total(node.path), rate: meter.rate(node.path) });
    }
    for (const child of node.children) flatten(child, out);
    return out;
  };

  return {
    name: 'broker',
    hints: [
      `broker:       ${url}  (WebSocket: ${wsUrl})`,
      `  producers:  ${producing.join('; ') || 'none'}`,
      `  consumers:  ${consuming.join(', ') || 'none'}`,
      ...(skipped.length ? [`  not running: ${skipped.join('; ')}`] : []),
      `  try: npx trellis sub --port ${address.port} --topic /weather --codec xml --count 5`,
      `       npx trellis pub --port ${address.port} --topic /msg --codec json '"hi from the shell"'`,
      `       npx trellis topics --port ${address.port}`,
    ],
    snapshot() {
      const s = broker.stats();
      return {
        available: true,
        url,
        wsUrl,
        totals: { clients: s.connections, subscriptions: s.subscriptions, messagesIn: s.messagesIn, messagesOut: s.messagesOut },
        encodes: s.encodes,
        topics: flatten(broker.topicTree(), []),
      };
    },
    async close() {
      for (const t of timers) clearInterval(t);
      meter.close();
      await Promise.allSettled(clients.map((c) => c.close()));
      await ws.close();
      await broker.close({ timeoutMs: 2_000 });
    },
  };
}
