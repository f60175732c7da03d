/**
 * Failover with sessions in Redis: two broker processes in one cluster, a persistent acknowledged
 * subscriber on node A and a producer on each node; node A is killed with SIGKILL under load. The
 * subscriber resumes its session on node B and receives every message whose PUBACK a producer
 * got (duplicates allowed, marked), in publish order per topic for what is not a duplicate.
 * Skipped with a note when `redis-server` is absent.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { connect, connectReliable, type BrokerClient } from '@trellis/sdk/broker';
import { HAVE_REDIS, startRedis, testHost } from './helpers.js';

const FIXTURE = new URL('./fixtures/cluster-broker.ts', import.meta.url).pathname;

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

async function startNode(url: string, children: ChildProcess[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--conditions=trellis-source', '--import', 'tsx', FIXTURE, url], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the broker process did not start within 30 s')), 30_000);
    createInterface({ input: child.stdout! }).once('line', (l) => {
      clearTimeout(timer);
      resolve(l);
    });
    child.once('exit', (code) => reject(new Error(`the broker process exited (${code})`)));
  });
  return { child, port: Number(line) };
}

/** Publishes `/orders/<name>` 1, 2, 3, … with acks (at most 20 in flight) until stopped or the connection dies. */
function produce(producer: BrokerClient, name: string, acked: number[], stop: () => boolean): Promise<void> {
  return (async () => {
    const inflight = new Set<Promise<void>>();
    for (let i = 1; !stop(); i++) {
      let p: Promise<void>;
      try {
        p = producer.publish(`/orders/${name}`, i, { ack: true }).then(
          () => void acked.push(i),
          () => undefined,
        );
      } catch {
        break; // the connection is gone
      }
      const tracked = p.then(() => void inflight.delete(tracked));
      inflight.add(tracked);
      if (inflight.size >= 20) await Promise.race(inflight);
      if (producer.closed) break;
    }
    await Promise.all(inflight);
  })();
}

if (!HAVE_REDIS) {
  console.log('SKIP cluster failover test: redis-server is absent (apt-get install -y redis-server)');
} else {
  test('kill -9 of the node a persistent subscriber uses: it resumes on another node and no acknowledged message is lost', async () => {
    const children: ChildProcess[] = [];
    const host = testHost();
    const clients: { close(): Promise<void> }[] = [];
    let redis: Awaited<ReturnType<typeof startRedis>> | undefined;
    try {
      redis = await startRedis();
      const url = redis.url;
      const a = await startNode(url, children);
      const b = await startNode(url, children);
      const subscriber = await connectReliable({ servers: [{ port: a.port }, { port: b.port }], codec: 'json', plugins: host, clientId: 'failover-1', reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
      clients.push(subscriber);
      subscriber.on('error', () => undefined);
      const connects: { resumed: boolean; port: number }[] = [];
      subscriber.on('connect', (info) => connects.push({ resumed: info.resumed, port: info.server.port }));
      const sub = await subscriber.subscribe('/orders', { ack: 'auto' });
      const received: { topic: string; value: number; duplicate: boolean }[] = [];
      const reading = (async () => {
        for await (const m of sub) received.push({ topic: m.topic, value: m.value as number, duplicate: m.duplicate });
      })();
      const producerA = await connect({ port: a.port, codec: 'json', plugins: host, role: 'producer' });
      const producerB = await connect({ port: b.port, codec: 'json', plugins: host, role: 'producer' });
      clients.push(producerA, producerB);
      producerA.on('error', () => undefined);
      producerB.on('error', () => undefined);
      // node B hears of the subscription through Redis: wait until a message published there arrives
      const deadline = Date.now() + 20_000;
      while (!received.some((m) => m.topic === '/orders/warm')) {
        assert.ok(Date.now() < deadline, 'node B never routed a publish to the session');
        await producerB.publish('/orders/warm', 0, { ack: true });
        await new Promise((r) => setTimeout(r, 50));
      }
      const ackedA: number[] = [];
      const ackedB: number[] = [];
      let stopB = false;
      const runA = produce(producerA, 'a', ackedA, () => false);
      const runB = produce(producerB, 'b', ackedB, () => stopB);
      // enough traffic through both nodes before the kill (on a loaded machine node B may take
      // most of the first 300: wait for node A's share too, rather than fail on it afterwards)
      while (received.filter((m) => m.topic !== '/orders/warm').length < 300 || ackedA.length < 100) {
        assert.ok(Date.now() < deadline + 20_000, `only ${received.length} messages (${ackedA.length} acknowledged by node A) before the kill`);
        await new Promise((r) => setTimeout(r, 10));
      }
      a.child.kill('SIGKILL');
      await exited(a.child);
      await runA;
      const ackedOnA = ackedA.length;
      // node B keeps accepting while the subscriber moves over
      await new Promise((r) => setTimeout(r, 1000));
      stopB = true;
      await runB;
      assert.ok(ackedOnA >= 100, `acknowledged by node A before it died: ${ackedOnA}`);
      const want = (topic: string, acked: number[]) => acked.filter((n) => !received.some((m) => m.topic === topic && m.value === n));
      const until = Date.now() + 30_000;
      while ((want('/orders/a', ackedA).length > 0 || want('/orders/b', ackedB).length > 0) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      const lostA = want('/orders/a', ackedA);
      const lostB = want('/orders/b', ackedB);
      assert.equal(lostA, [], `${lostA.length} of ${ackedA.length} messages acknowledged by node A lost`);
      assert.equal(lostB, [], `${lostB.length} of ${ackedB.length} messages acknowledged by node B lost`);
      const moved = connects.find((c) => c.port === b.port);
      assert.ok(moved, `the subscriber reconnected to node B: ${JSON.stringify(connects)}`);
      assert.ok(moved.resumed, 'node B resumed the session (from Redis)');
      // per topic, what is not marked duplicate arrives in publish order
      for (const topic of ['/orders/a', '/orders/b']) {
        const fresh = received.filter((m) => m.topic === topic && !m.duplicate).map((m) => m.value);
        for (let i = 1; i < fresh.length; i++) assert.ok(fresh[i]! > fresh[i - 1]!, `${topic}: ${fresh[i - 1]} then ${fresh[i]}`);
      }
      await subscriber.close();
      await reading;
    } finally {
      await Promise.allSettled(clients.map((c) => c.close()));
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await Promise.all(children.map(exited));
      await redis?.stop();
      await host.dispose();
    }
  });
}

test.run();
