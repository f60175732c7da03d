/**
 * A broker in its own process for the benchmark: `trellis` (the Trellis engine with the shipped
 * codec plugins) or `aedes` (MQTT). Prints `{"port":N}` once listening; exits on SIGTERM/stdin end.
 */
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { createHost } from '@trellis/sdk';
import { createBroker } from '@trellis/sdk/broker';

const kind = process.argv[2];
let stop: () => Promise<void>;
let port: number;

if (kind === 'trellis') {
  const host = createHost();
  const broker = createBroker({ host, maxBufferBytes: 64 * 1024 * 1024 });
  ({ port } = await broker.listen(0));
  stop = async () => {
    await broker.close({ timeoutMs: 1000 });
    await host.dispose();
  };
} else if (kind === 'aedes') {
  const Aedes = createRequire(import.meta.url)('aedes') as (opts?: object) => { handle: (s: unknown) => void; close(cb: () => void): void };
  const aedes = Aedes();
  const server = createServer({ noDelay: true }, aedes.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
  stop = () => new Promise<void>((r) => aedes.close(() => server.close(() => r())));
} else {
  process.stderr.write('usage: server.ts trellis|aedes\n');
  process.exit(2);
}

process.stdout.write(JSON.stringify({ port }) + '\n');
const shutdown = () => void stop().then(() => process.exit(0));
process.on('SIGTERM', shutdown);
process.stdin.on('end', shutdown);
process.stdin.resume();
