import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Server } from 'node:http';
import { startBalancer, startServer, waitFor } from './helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function connections(server: Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

/** Opens a connection, sends a GET, and destroys the socket as soon as response bytes arrive. */
function abortMidResponse(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.on('error', () => resolve());
    s.once('data', () => {
      s.destroy();
      resolve();
    });
    s.on('close', () => resolve());
    s.write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\n');
  });
}

async function abortMany(port: number, n: number, concurrency: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < n) await abortMidResponse(port);
    }),
  );
}

function heapMb(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

test('clients aborting mid-response leak nothing after 10,000 aborts', async () => {
  // a back-end that starts a response and keeps it open, so every abort lands mid-body
  const open = new Set<NodeJS.Timeout>();
  const upstream = await startServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first chunk\n');
    const t = setInterval(() => res.write('.'), 200);
    open.add(t);
    res.on('close', () => {
      clearInterval(t);
      open.delete(t);
    });
  });
  const lb = await startBalancer([upstream.port], { healthCheck: false });
  const lbServerConnections = () => lb.lb.stats().active;
  try {
    await abortMany(lb.port, 500, 50); // warm-up: pools, JIT, buffers
    await waitFor(() => lbServerConnections() === 0, 5000, 'warm-up requests to settle');
    const baseline = heapMb();
    const listenersBefore = lb.lb.eventNames().length;

    await abortMany(lb.port, 10_000, 50);

    await waitFor(() => lb.lb.stats().active === 0, 10_000, 'every aborted request to settle');
    await waitFor(() => open.size === 0, 10_000, 'every upstream response to be closed');
    const upstreamSockets = await connections(upstream.server);
    // what may stay is idle pooled keep-alive connections, bounded by the client concurrency
    assert.ok(upstreamSockets <= 50, `upstream sockets left open: ${upstreamSockets}`);
    const stats = lb.lb.stats();
    assert.is(stats.backends[0]!.active, 0);
    assert.ok(stats.aborted >= 10_000, `aborted ${stats.aborted}`);
    assert.is(stats.backends[0]!.healthy, true, 'client aborts never eject a back-end');
    assert.is(lb.lb.eventNames().length, listenersBefore);
    const grown = heapMb() - baseline;
    assert.ok(grown < 16, `heap grew by ${grown.toFixed(1)} MB over 10,000 aborts`);
  } finally {
    for (const t of open) clearInterval(t);
    await lb.close();
    await upstream.close();
  }
});

test.run();
