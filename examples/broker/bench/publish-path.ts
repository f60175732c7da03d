/**
 * `npm run bench:path -w @trellis/example-broker`: the broker's CPU per message on the 1→1 publish
 * path alone, in one process and without the kernel: a producer's PUBLISH frames (the same
 * 103-byte JSON object as bench:broker, batched like a socket delivers them) are pushed through
 * `acceptStream` into a broker with one JSON subscriber whose output is dropped. Far less noisy than
 * the socket benchmark, so it tells small changes apart; it is not a comparison with any peer.
 * Runs the built dist/ (`npm run build` first). For a profile of exactly this path:
 * `node --cpu-prof --import tsx bench/publish-path.ts`.
 *
 * Env: BENCH_ROUNDS (7 measured rounds), BENCH_MESSAGES (200,000 per round), BENCH_BATCH (340
 * frames per chunk, about what a 64 KiB socket read holds in bench:broker).
 */
import { Duplex } from 'node:stream';
import { createHost } from '@trellis/sdk';
import { createBroker, helloFrame, publishFrame, topicRequestFrame, FrameType, Role } from '@trellis/sdk/broker';
import { checkBuilt } from './built.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 200_000);
const BATCH = Number(process.env.BENCH_BATCH ?? 340);
const PAYLOAD = Buffer.from(JSON.stringify({ sensor: 'greenhouse-07', kind: 'temperature', value: 21.375, unit: 'celsius', seq: 1234567, ok: true }));

/** An in-memory connection: what is pushed is what the broker reads; what it writes is counted and dropped. */
function connection(port: number, sink: { bytes: number }): Duplex & { remoteAddress: string; remotePort: number } {
  const write = (chunk: Buffer, _enc: BufferEncoding, cb: () => void) => {
    sink.bytes += chunk.length;
    cb();
  };
  return Object.assign(new Duplex({ read() {}, write }), { remoteAddress: '127.0.0.1', remotePort: port });
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

async function main(): Promise<void> {
  checkBuilt();
  const host = createHost();
  const broker = createBroker({ host, maxBufferBytes: 64 * 1024 * 1024 });
  await broker.listen(0);
  const sink = { bytes: 0 };
  try {
    const consumer = connection(1, sink);
    broker.acceptStream(consumer);
    consumer.push(helloFrame(0, Role.CONSUMER));
    const producer = connection(2, sink);
    broker.acceptStream(producer);
    producer.push(helloFrame(0, Role.PRODUCER));
    while (broker.clients().filter((c) => c.codec === 'json').length < 2) await tick();
    consumer.push(topicRequestFrame(FrameType.SUBSCRIBE, 1, '/bench/path'));
    while (broker.stats().subscriptions < 1) await tick();
    const batch = Buffer.concat(Array.from({ length: BATCH }, () => publishFrame('/bench/path/data', PAYLOAD)));
    const chunks = Math.max(1, Math.round(MESSAGES / BATCH));
    const round = async (): Promise<number> => {
      const before = process.cpuUsage();
      for (let i = 0; i < chunks; i++) {
        producer.push(Buffer.from(batch)); // a fresh chunk each time, as a socket read gives
        await tick(); // the broker's writes go out once per tick, as with a socket
      }
      const used = process.cpuUsage(before);
      return (used.user + used.system) / (chunks * BATCH);
    };
    await round(); // warm-up
    const us: number[] = [];
    for (let r = 0; r < ROUNDS; r++) us.push(await round());
    const stats = broker.stats();
    if (stats.protocolErrors > 0 || stats.messagesOut !== stats.messagesIn) throw new Error(`the run was not clean: ${JSON.stringify(stats)}`);
    const sorted = [...us].sort((a, b) => a - b);
    console.log(`publish path, 1→1, ${chunks * BATCH} messages x ${ROUNDS} rounds, node ${process.version}`);
    console.log(`CPU per message: median ${sorted[sorted.length >> 1]!.toFixed(3)} µs, best ${sorted[0]!.toFixed(3)} µs (rounds: ${us.map((x) => x.toFixed(2)).join(' ')})`);
    console.log(`${stats.messagesIn.toLocaleString('en-US')} messages in, ${stats.messagesOut.toLocaleString('en-US')} delivered, ${sink.bytes.toLocaleString('en-US')} bytes written`);
  } finally {
    await broker.close({ timeoutMs: 100 });
    await host.dispose();
  }
}

await main();
