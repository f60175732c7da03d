import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { startBalancer, waitFor } from './helpers.js';

/** An echo server that prefixes replies with its name and ends when the client ends. */
async function echoServer(tag: string): Promise<{ server: Server; port: number; sockets: Set<Socket>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.write(`${tag}:`);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    server,
    sockets,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Sends `data`, half-closes, and reads until the proxy closes. */
function roundTrip(port: number, data: Buffer | string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    s.on('end', () => {
      s.end();
      resolve(Buffer.concat(chunks));
    });
    s.on('error', reject);
    s.end(data);
  });
}

test('TCP mode round-trips bytes through a back-end, per connection round robin', async () => {
  const a = await echoServer('A');
  const b = await echoServer('B');
  const lb = await startBalancer([a.port, b.port], { mode: 'tcp', strategy: 'round-robin' });
  try {
    assert.is((await roundTrip(lb.port, 'hello')).toString(), 'A:hello');
    assert.is((await roundTrip(lb.port, 'world')).toString(), 'B:world');
    const big = Buffer.alloc(4 * 1024 * 1024, 7);
    const back = await roundTrip(lb.port, big);
    assert.is(back.length, big.length + 2);
    assert.is(back.subarray(0, 2).toString(), 'A:');
    assert.ok(back.subarray(2).equals(big));
    await waitFor(() => lb.lb.stats().requests === 3, 2000, 'three settled connections');
    const s = lb.lb.stats();
    assert.equal(s.backends.map((x) => x.requests), [2, 1]);
    assert.is(s.active, 0);
    assert.ok(s.backends[0]!.meanMs > 0, 'the strategy and stats learn how long each connection lasted');
  } finally {
    await lb.close();
    await a.close();
    await b.close();
  }
});

test('TCP mode tells the strategy when each connection ends, with its duration', async () => {
  const a = await echoServer('A');
  const b = await echoServer('B');
  const lb = await startBalancer([a.port, b.port], { mode: 'tcp', strategy: 'least-connections' });
  try {
    // hold one connection open on A: the next goes to B, then back to A once it ends
    const held = connect({ host: '127.0.0.1', port: lb.port });
    await new Promise((r) => held.once('data', r));
    assert.is((await roundTrip(lb.port, 'x')).toString(), 'B:x');
    held.destroy();
    await waitFor(() => lb.lb.stats().active === 0, 2000, 'the held connection to settle');
    assert.is((await roundTrip(lb.port, 'y')).toString(), 'A:y');
  } finally {
    await lb.close();
    await a.close();
    await b.close();
  }
});

test('TCP mode retries a refused connect on another back-end before any byte is sent', async () => {
  const a = await echoServer('A');
  // port 1: privileged and unused, so the refusal cannot race with another process
  const lb = await startBalancer([1, a.port], { mode: 'tcp', strategy: 'n-to-1', healthCheck: false });
  try {
    assert.is((await roundTrip(lb.port, 'ping')).toString(), 'A:ping');
    const s = lb.lb.stats();
    assert.is(s.retries, 1);
    assert.is(s.backends[0]!.healthy, false);
  } finally {
    await lb.close();
    await a.close();
  }
});

test('TCP mode closes a connection that stays silent past the idle timeout', async () => {
  const a = await echoServer('A');
  const lb = await startBalancer([a.port], { mode: 'tcp', timeouts: { idleMs: 400 } });
  try {
    const s = connect({ host: '127.0.0.1', port: lb.port });
    s.on('error', () => {});
    s.resume(); // read the echoes, so the close is seen
    const t0 = Date.now();
    let alive = true;
    s.on('close', () => (alive = false));
    // traffic keeps it open past the idle time
    for (let i = 0; i < 12; i++) {
      s.write('x');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(alive, 'closed while traffic was flowing');
    await waitFor(() => !alive, 2000, 'the idle connection to be closed');
    assert.ok(Date.now() - t0 >= 600);
    assert.ok(lb.lb.stats().timeouts >= 1);
    await waitFor(() => lb.lb.stats().active === 0, 2000, 'the session to settle');
  } finally {
    await lb.close();
    await a.close();
  }
});

test('TCP mode respects backpressure: a slow reader does not make the proxy buffer everything', async () => {
  // a back-end that floods 64 MiB as fast as it is allowed to; the client reads nothing for a while
  let sent = 0;
  const flood = createServer((s) => {
    const chunk = Buffer.alloc(64 * 1024, 1);
    const pump = () => {
      while (sent < 1024) {
        sent++;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      s.end();
    };
    s.on('error', () => {});
    pump();
  });
  await new Promise<void>((r) => flood.listen(0, '127.0.0.1', () => r()));
  const lb = await startBalancer([(flood.address() as AddressInfo).port], { mode: 'tcp' });
  try {
    const client = connect({ host: '127.0.0.1', port: lb.port });
    client.pause();
    await new Promise((r) => setTimeout(r, 500));
    // with backpressure the flood stalls at socket buffers plus stream high-water marks
    assert.ok(sent < 256, `the back-end could send ${sent} of 1024 chunks to a paused reader`);
    let received = 0;
    client.on('data', (c) => (received += c.length));
    client.resume();
    await new Promise((r) => client.on('end', r));
    client.destroy();
    assert.is(received, 64 * 1024 * 1024);
  } finally {
    await lb.close();
    await new Promise<void>((r) => flood.close(() => r()));
  }
});

test.run();
