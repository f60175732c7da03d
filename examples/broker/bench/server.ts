/**
 * A broker in its own process for the benchmark: `trellis` (the Trellis engine with the shipped
 * codec plugins; `trellis-durable` on LMDB, `trellis-cluster URL` joined to a Redis) or `aedes` (MQTT). Prints `{"port":N}` once listening; exits on SIGTERM/stdin end.
 */
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHost } from '@trellis/sdk';
import { createBroker, openLmdbStore, joinRedisCluster } from '@trellis/sdk/broker';

const kind = process.argv[2];
let stop: () => Promise<void>;
let port: number;

if (kind === 'trellis' || kind === 'trellis-durable' || kind === 'trellis-cluster') {
  const host = createHost();
  // durable: the LMDB store in a fresh directory; cluster: joined to the Redis given as argv[3]
  const dir = kind === 'trellis-durable' ? mkdtempSync(join(tmpdir(), 'trellis-bench-')) : undefined;
  const broker = createBroker({ host, maxBufferBytes: 64 * 1024 * 1024, ...(dir ? { store: await openLmdbStore(dir) } : {}) });
  const cluster = kind === 'trellis-cluster' ? await joinRedisCluster(broker, { url: process.argv[3]! }) : undefined;
  ({ port } = await broker.listen(0));
  stop = async () => {
    await cluster?.close();
    await broker.close({ timeoutMs: 1000 });
    await host.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
} else if (kind === 'aedes') {
  const Aedes = createRequire(import.meta.url)('aedes') as (opts?: object) => { handle: (s: unknown) => void; close(cb: () => void): void };
  const aedes = Aedes();
  const server = createServer({ noDelay: true }, aedes.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
  stop = () => new Promise<void>((r) => aedes.close(() => server.close(() => r())));
} else {
  process.stderr.write('usage: server.ts trellis|trellis-durable|trellis-cluster REDIS_URL|aedes\n');
  process.exit(2);
}

process.stdout.write(JSON.stringify({ port }) + '\n');
const shutdown = () => void stop().then(() => process.exit(0));
process.on('SIGTERM', shutdown);
process.stdin.on('end', shutdown);
process.stdin.resume();
