/**
 * Per-connection limits and liveness: connections in total and per address, topics per client,
 * an idle timeout with PING so dead or silent peers are noticed, rate-limited log lines, and
 * clearing (or expiring) a topic's last value.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BrokerErrorCode, FrameType, LineLimiter, connect, helloFrame, publishFrame, readError, Role, type BrokerClient } from '@trellis/sdk';
import { startBroker, rawSocket, until } from './helpers.js';

async function refusedAtConnect(port: number): Promise<{ code: number; message: string } | 'accepted'> {
  const raw = await rawSocket(port);
  raw.socket.write(helloFrame(0, Role.BOTH));
  const f = await raw.next();
  raw.socket.destroy();
  return f[0] === FrameType.ERROR ? readError(f) : 'accepted';
}

test('connections are limited in total; a closed one frees its place', async () => {
  const r = await startBroker({ maxConnections: 3 });
  try {
    const held = [await r.client('json'), await r.client('json'), await r.client('json')];
    const refused = await refusedAtConnect(r.port);
    assert.ok(refused !== 'accepted' && refused.code === BrokerErrorCode.LIMIT, JSON.stringify(refused));
    assert.match((refused as { message: string }).message, /maximum of 3 connections/);
    await held[0]!.close();
    await until(() => r.broker.stats().connections === 2, 3000, 'the close');
    assert.is(await refusedAtConnect(r.port), 'accepted');
  } finally {
    await r.stop();
  }
});

test('connections are limited per address; another address still gets in', async () => {
  const r = await startBroker({ maxConnectionsPerAddress: 2 });
  try {
    await r.client('json');
    await r.client('json');
    const refused = await connect({ port: r.port, codec: 'json', plugins: r.host }).then((c) => c, (e: Error) => e);
    assert.ok(refused instanceof Error && /at most 2 connections from one address/.test(refused.message), String(refused));
    const other = await connect({ port: r.port, codec: 'json', plugins: r.host, localAddress: '127.0.0.2' });
    r.clients.push(other);
    assert.is(r.broker.stats().connections, 3);
  } finally {
    await r.stop();
  }
});

test('topics holding a last value are limited per client; replacing and clearing do not count twice', async () => {
  const r = await startBroker({ maxTopicsPerClient: 3 });
  try {
    const p = await r.client('json', 'producer');
    for (const t of ['/a', '/b', '/c']) await p.publish(t, 1, { ack: true });
    await p.publish('/a', 2, { ack: true }); // replacing is not a new topic
    const err = await p.publish('/d', 1, { ack: true }).then(() => 'stored', (e: Error) => e.message);
    assert.match(err, /LIMIT: .*at most 3 topics/);
    const p2 = await r.client('json', 'producer');
    await p2.clear('/a');
    await p2.publish('/d', 1, { ack: true });
    assert.equal(r.broker.topics(), ['/b', '/c', '/d']);
  } finally {
    await r.stop();
  }
});

test('topic-tree nodes are limited per client across its subscriptions and last values, and refunded', async () => {
  const r = await startBroker({ maxTopicNodesPerClient: 20 });
  try {
    const c = await r.client('json', 'both');
    for (let i = 0; i < 3; i++) await c.subscribe(`/deep/${i}/x/y`); // 5 segments each (the empty first one included)
    await c.publish('a/b/c/d/e', 1, { ack: true }); // 5 more: 20
    const err = await c.subscribe('/one/more').then(() => 'subscribed', (e: Error) => e.message);
    assert.match(err, /LIMIT: .*at most 20 topic segments/);
    const other = await connect({ port: r.port, codec: 'json', plugins: r.host, localAddress: '127.0.0.2' });
    r.clients.push(other);
    await other.subscribe('/deep/0/x/y/z'); // another client has its own share
    await until(() => r.broker.stats().connections === 1, 3000, 'the refused client to go');
    const again = await r.client('json', 'both');
    await again.subscribe('/deep/9/x/y'); // the dropped connection's subscriptions were refunded; the last value (5) stays charged
    await again.subscribe('/deep/8/x/y');
    await again.subscribe('/deep/7/x/y');
    const full = await again.subscribe('/deep/6/x/y').then(() => 'subscribed', (e: Error) => e.message);
    assert.match(full, /LIMIT/);
  } finally {
    await r.stop();
  }
});

test('clearing a last value: no longer listed, not sent to new subscribers, its bytes released', async () => {
  const r = await startBroker();
  try {
    const p = await r.client('json', 'producer');
    await p.publish('qwerty', 'x'.repeat(1000), { ack: true });
    assert.ok(r.broker.stats().retainedBytes >= 1000);
    await p.clear('qwerty');
    assert.equal(r.broker.topics(), []);
    assert.is(r.broker.stats().retainedBytes, 0);
    const c = await r.client('xml', 'consumer');
    const sub = await c.subscribe('qwerty');
    assert.is(sub.retained, 0);
    await p.clear('never-published'); // clearing nothing is fine
  } finally {
    await r.stop();
  }
});

test('a last value with an expiry disappears after it', async () => {
  const r = await startBroker();
  try {
    const p = await r.client('json', 'producer');
    await p.publish('/short', 1, { ack: true, expirySeconds: 1 });
    await p.publish('/long', 2, { ack: true });
    assert.equal(r.broker.topics(), ['/long', '/short']);
    await until(() => r.broker.topics().length === 1, 6000, 'the expiry');
    assert.equal(r.broker.topics(), ['/long']);
    await p.publish('/short', 3, { ack: true, expirySeconds: 1 });
    await p.publish('/short', 4, { ack: true }); // a value without expiry replaces it for good
    await new Promise((res) => setTimeout(res, 1600));
    assert.equal(r.broker.topics(), ['/long', '/short']);
  } finally {
    await r.stop();
  }
});

test('a silent peer gets a PING, then IDLE_TIMEOUT; clients that answer stay connected', async () => {
  const r = await startBroker({ idleTimeoutMs: 300, pingTimeoutMs: 300 });
  try {
    const raw = await rawSocket(r.port);
    raw.socket.write(helloFrame(0, Role.CONSUMER));
    await raw.next(FrameType.WELCOME);
    const t0 = Date.now();
    await raw.next(FrameType.PING);
    const err = readError(await raw.next(FrameType.ERROR));
    assert.is(err.code, BrokerErrorCode.IDLE_TIMEOUT);
    assert.ok(Date.now() - t0 >= 250, 'after the ping timeout');
    await raw.closed;
    const client: BrokerClient = await r.client('json', 'consumer');
    await client.subscribe('/t');
    await client.ping();
    await new Promise((res) => setTimeout(res, 1500)); // several idle periods: the client answers every PING
    assert.is(client.closed, false);
    assert.is(r.broker.stats().connections, 1);
  } finally {
    await r.stop();
  }
});

test('a Python consumer blocked in pull() answers PINGs and still receives messages', async () => {
  const r = await startBroker({ idleTimeoutMs: 200, pingTimeoutMs: 200 });
  try {
    const PYTHON_DIR = fileURLToPath(new URL('../python', import.meta.url));
    const child = spawn('python3', ['-c', 'from trellis_broker import JSONQueue, CONSUMER\nq = JSONQueue("idle", _type=CONSUMER)\nprint(q.pull(), flush=True)'], {
      env: { ...process.env, PYTHONPATH: PYTHON_DIR, TRELLIS_BROKER_PORT: String(r.port), TRELLIS_BROKER_HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    const exited = new Promise<number | null>((res) => child.on('close', (code) => res(code)));
    const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
    try {
      await until(() => r.broker.stats().subscriptions === 1, 10_000, 'the Python subscription');
      await new Promise((res) => setTimeout(res, 1200));
      const p = await r.client('json', 'producer');
      await p.publish('idle', 'still here', { ack: true });
      assert.is(await exited, 0);
      assert.is(out.trim(), "('idle', 'still here')");
    } finally {
      clearTimeout(kill);
    }
  } finally {
    await r.stop();
  }
});

test('log lines are rate-limited per kind, with a count of what was suppressed', () => {
  const lines: string[] = [];
  const limiter = new LineLimiter(5, (l) => lines.push(l));
  for (let i = 0; i < 1000; i++) limiter.line('client errors', `error ${i}`);
  limiter.line('slow consumers', 'another kind has its own share');
  limiter.flush();
  assert.ok(lines.length <= 8, `${lines.length} lines`);
  assert.ok(lines.includes('another kind has its own share'));
  assert.match(lines[lines.length - 1]!, /995 more "client errors" lines suppressed/);
});

test('PUBLISH frames with unknown flag bits, or a clear with a payload, are refused', async () => {
  const r = await startBroker();
  try {
    for (const frame of [publishFrame('/t', Buffer.from('1'), 1, { clear: true }), (() => {
      const f = publishFrame('/t', Buffer.from('1'), 1);
      f[5] = 0x81;
      return f;
    })()]) {
      const raw = await rawSocket(r.port);
      raw.socket.write(helloFrame(0, Role.PRODUCER));
      raw.socket.write(frame);
      assert.is(readError(await raw.next(FrameType.ERROR)).code, BrokerErrorCode.MALFORMED);
      raw.socket.destroy();
    }
  } finally {
    await r.stop();
  }
});

test.run();
