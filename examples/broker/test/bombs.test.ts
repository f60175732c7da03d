/**
 * Bounded cost for every input: values no codec may carry are refused at ingress whatever codec
 * they came in, and amplification through shared references (pickle memo aliases) is refused by
 * the produced size — before any translation is made — with time and memory bounds generous
 * enough for a loaded 2-core machine. Everyone else keeps being served.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BrokerError, BrokerErrorCode, measureValue, type BrokerClient } from '@trellis/sdk/broker';
import { startBroker, rawSocket, take, type Running } from './helpers.js';
import { FrameType, helloFrame, publishFrame, readError, Role } from '@trellis/sdk/broker';

const test = suite<{ r: Running }>('broker bombs');
test.before.each(async (ctx) => {
  ctx.r = await startBroker();
});
test.after.each(async (ctx) => {
  await ctx.r.stop();
});

/** Publishes raw payload bytes in `codec` on a fresh raw connection; resolves with the ERROR or PUBACK. */
async function publishRaw(r: Running, codec: number, topic: string, payload: Uint8Array): Promise<{ code: number; message: string } | 'acked'> {
  const raw = await rawSocket(r.port);
  try {
    raw.socket.write(helloFrame(codec, Role.PRODUCER));
    raw.socket.write(publishFrame(topic, payload, 1));
    for (;;) {
      const f = await raw.next();
      if (f[0] === FrameType.ERROR) return readError(f);
      if (f[0] === FrameType.PUBACK) return 'acked';
    }
  } finally {
    raw.socket.destroy();
  }
}

async function stillServing(r: Running, subscribers: BrokerClient[]): Promise<void> {
  const p = await r.client('json', 'producer');
  const subs = await Promise.all(subscribers.map((c) => c.subscribe('/alive')));
  await p.publish('/alive', 'yes', { ack: true });
  for (const s of subs) assert.equal((await take(s, 1))[0]!.value, 'yes');
}

function pickle(...parts: (number | number[])[]): Uint8Array {
  const out: number[] = [0x80, 0x04];
  for (const p of parts) {
    if (typeof p === 'number') out.push(p);
    else for (const b of p) out.push(b);
  }
  out.push(0x2e);
  return Uint8Array.from(out);
}
function binunicode(s: string): number[] {
  const b = Buffer.from(s, 'utf8');
  const out = [0x58, b.length & 0xff, (b.length >> 8) & 0xff, (b.length >> 16) & 0xff, b.length >>> 24];
  for (const x of b) out.push(x);
  return out;
}
const gets = (n: number, i: number) => Array.from({ length: n }, () => [0x68, i]).flat();

test('a 5,000-digit integer published in JSON is refused at ingress; XML and pickle subscribers keep going', async ({ r }) => {
  const xml = await r.client('xml', 'consumer');
  const pkl = await r.client('pickle', 'consumer');
  await xml.subscribe('/n');
  await pkl.subscribe('/n');
  const err = await publishRaw(r, 0, '/n', Buffer.from('9'.repeat(5000)));
  assert.ok(err !== 'acked' && err.code === BrokerErrorCode.BAD_PAYLOAD, JSON.stringify(err));
  assert.match((err as { message: string }).message, /5000 digits exceeds the .*4300-digit limit/);
  assert.equal(r.broker.topics(), []);
  // a codec without a digit cap of its own (the test's v8 codec) is held to the same value model
  const v8 = await r.client('v8', 'producer');
  const refused = await v8.publish('/n', 10n ** 5000n, { ack: true }).then(() => 'acked', (e: Error) => e.message);
  assert.match(refused, /BAD_PAYLOAD: an integer of 5001 digits exceeds the value model's 4300-digit limit/);
  assert.is(xml.closed || pkl.closed, false);
  await stillServing(r, [xml, pkl]);
  // 4,300 digits is the limit and passes
  assert.is(await publishRaw(r, 0, '/n', Buffer.from('9'.repeat(4300))), 'acked');
});

test('a lone surrogate (valid JSON, not Unicode text) is refused at ingress', async ({ r }) => {
  const err = await publishRaw(r, 0, '/s', Buffer.from('"a\\ud800b"'));
  assert.ok(err !== 'acked' && err.code === BrokerErrorCode.BAD_PAYLOAD, JSON.stringify(err));
  assert.match((err as { message: string }).message, /lone surrogate/);
});

test('a 100 KB pickle naming one string 300 times (30 MB expanded) is refused by produced size, quickly', async ({ r }) => {
  const xml = await r.client('xml', 'consumer');
  await xml.subscribe('/bomb');
  const bomb = pickle(0x5d, 0x28, binunicode('x'.repeat(100_000)), 0x94, gets(299, 0), 0x65);
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  const err = await publishRaw(r, 2, '/bomb', bomb);
  const ms = performance.now() - t0;
  const grewMb = (process.memoryUsage().heapUsed - heap0) / 1e6;
  assert.ok(err !== 'acked' && err.code === BrokerErrorCode.LIMIT, JSON.stringify(err));
  assert.match((err as { message: string }).message, /expands to more than/);
  assert.ok(ms < 5000, `${ms} ms`);
  assert.ok(grewMb < 150, `heap grew ${grewMb} MB`);
  assert.equal(r.broker.topics(), [], 'nothing kept');
  assert.is(r.broker.stats().encodes.xml ?? 0, 0, 'no translation was even attempted');
  await stillServing(r, [xml]);
});

test('a ~700-byte pickle of nested shared lists (10^6 integers: a 12 MB XML message) is refused', async ({ r }) => {
  const xml = await r.client('xml', 'consumer');
  await xml.subscribe('/bomb');
  const bomb = pickle(
    0x28, Array.from({ length: 100 }, () => [0x4b, 7]).flat(), 0x6c, 0x94, 0x30, // memo 0: 100 ints
    0x28, gets(100, 0), 0x6c, 0x94, 0x30, // memo 1: 100 × memo 0
    0x28, gets(100, 1), 0x6c, // 100 × memo 1
  );
  assert.ok(bomb.length < 1000, `${bomb.length} bytes`);
  const t0 = performance.now();
  const err = await publishRaw(r, 2, '/bomb', bomb);
  assert.ok(err !== 'acked' && err.code === BrokerErrorCode.LIMIT, JSON.stringify(err));
  assert.ok(performance.now() - t0 < 5000);
  assert.is(r.broker.stats().encodes.xml ?? 0, 0);
  await stillServing(r, [xml]);
});

test('measureValue counts shared references each time and stops at the budget', () => {
  const s = 'x'.repeat(1000);
  const shared = Array.from({ length: 1000 }, () => s);
  assert.throws(() => measureValue(shared, { maxValueBytes: 100_000 }), (e: unknown) => e instanceof BrokerError && e.wireCode === BrokerErrorCode.LIMIT);
  assert.ok(measureValue(shared, { maxValueBytes: 2_000_000 }) >= 1_000_000);
  assert.ok(measureValue([0, 0, 0], { maxValueBytes: 100 }) <= JSON.stringify([0, 0, 0]).length + 2, 'about the compact JSON length');
  // a cycle cannot come out of a decoder, but would stop at the depth limit, not loop
  const cyclic: unknown[] = [];
  cyclic.push(cyclic);
  assert.throws(() => measureValue(cyclic, { maxValueBytes: 1e9 }), /deeper than 512/);
});

test.run();

// ------------------------------------------------------------------ a broker with little memory

const BROKER_DIR = fileURLToPath(new URL('..', import.meta.url));

const child = suite('broker bombs in a child process');

child('a broker limited to 160 MB of heap survives a barrage of alias and entity bombs and keeps serving', async () => {
  const script = `
    import { createHost, createLogger } from '@trellis/sdk';
import { createBroker } from '@trellis/sdk/broker';
    const host = createHost({ logger: createLogger('bombs', 'silent') });
    const broker = createBroker({ host });
    const { port } = await broker.listen(0);
    process.stdout.write(port + '\\n');
    process.stdin.on('data', () => {});
    process.stdin.on('end', async () => { await broker.close(); process.exit(0); });
  `;
  const proc = spawn(process.execPath, ['--max-old-space-size=160', '--conditions=trellis-source', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: BROKER_DIR, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (c) => (stderr += c));
  const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the child broker did not start: ${stderr}`)), 30_000);
      proc.stdout.once('data', (c) => {
        clearTimeout(t);
        resolve(Number(String(c).trim()));
      });
    });
    const r = { port } as Running;
    const stringBomb = pickle(0x5d, 0x28, binunicode('x'.repeat(100_000)), 0x94, gets(2999, 0), 0x65);
    const listBomb = pickle(0x28, Array.from({ length: 100 }, () => [0x4b, 7]).flat(), 0x6c, 0x94, 0x30, 0x28, gets(100, 0), 0x6c, 0x94, 0x30, 0x28, gets(100, 1), 0x6c, 0x94, 0x30, 0x28, gets(100, 2), 0x6c);
    const laughs = Buffer.from('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><str>&lol2;</str>');
    const deep = Buffer.from('<list>'.repeat(200_000));
    const t0 = performance.now();
    for (let round = 0; round < 10; round++) {
      for (const [codec, bomb] of [[2, stringBomb], [2, listBomb], [1, laughs], [1, deep], [0, Buffer.from('['.repeat(300_000))]] as const) {
        const res = await publishRaw(r, codec, `/bomb/${round}`, bomb);
        assert.ok(res !== 'acked', `round ${round}, codec ${codec}: a bomb was accepted`);
      }
    }
    assert.ok(performance.now() - t0 < 60_000, `the barrage took ${performance.now() - t0} ms`);
    assert.is(await publishRaw(r, 0, '/fine', Buffer.from('{"ok":true}')), 'acked', 'still serving');
    assert.is(proc.exitCode, null, `the broker died: ${stderr}`);
  } finally {
    proc.stdin.end();
    const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }
});

child.run();
