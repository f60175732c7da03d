/**
 * Crash safety of the durable store: a broker process killed with SIGKILL in the middle of a
 * publish burst loses no message it acknowledged — neither as the topic's last value nor in the
 * queue of a persistent session whose client was away.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect, connectReliable } from '@trellis/sdk/broker';
import { testHost, take } from './helpers.js';

const FIXTURE = new URL('./fixtures/durable-broker.ts', import.meta.url).pathname;

async function startChild(dir: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--conditions=trellis-source', '--import', 'tsx', FIXTURE, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
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

function killed(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

test('kill -9 during a publish burst loses no acknowledged message', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-crash-'));
  const host = testHost();
  const children: ChildProcess[] = [];
  try {
    let { child, port } = await startChild(dir);
    children.push(child);
    // a persistent session that is away during the burst
    const away = await connectReliable({ port, codec: 'json', plugins: host, clientId: 'away', reconnect: false });
    await away.subscribe('/burst');
    await away.close();

    const producer = await connect({ port, codec: 'json', plugins: host, role: 'producer' });
    producer.on('error', () => undefined);
    const acked: number[] = [];
    let killedAt = -1;
    // a burst with many acks in flight; SIGKILL lands once a few hundred are acknowledged
    const burst = (async () => {
      const inflight: Promise<void>[] = [];
      for (let i = 1; i <= 20_000; i++) {
        let p: Promise<void>;
        try {
          p = producer.publish('/burst', i, { ack: true });
        } catch {
          break; // the connection is gone
        }
        inflight.push(p.then(() => void acked.push(i), () => undefined));
        if (i === 300) {
          await Promise.all(inflight.splice(0));
          killedAt = acked.length;
          child.kill('SIGKILL');
        }
        if (inflight.length >= 50) await Promise.race(inflight.splice(0, 1));
      }
      await Promise.all(inflight);
    })();
    await burst;
    await killed(child);
    assert.ok(killedAt >= 300, `acked before the kill: ${killedAt}`);
    assert.ok(acked.length >= 300);

    ({ child, port } = await startChild(dir));
    children.push(child);
    const top = Math.max(...acked);
    const check = await connect({ port, codec: 'json', plugins: host, role: 'consumer' });
    const sub = await check.subscribe('/burst');
    const [last] = await take(sub, 1, 10_000);
    assert.ok((last!.value as number) >= top, `last value ${String(last!.value)} is older than the last acknowledged ${top}`);
    await check.close();

    const back = await connectReliable({ port, codec: 'json', plugins: host, clientId: 'away', reconnect: false });
    const kept = await back.subscribe('/burst');
    const got = new Set<number>();
    const deadline = Date.now() + 30_000;
    while (acked.some((n) => !got.has(n)) && Date.now() < deadline) {
      const [m] = await take(kept, 1, 10_000);
      got.add(m!.value as number);
    }
    const lost = acked.filter((n) => !got.has(n));
    assert.equal(lost, [], `${lost.length} acknowledged messages lost`);
    await back.close();
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(children.map(killed));
    await host.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
