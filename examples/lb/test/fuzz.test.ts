import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startBalancer, startServer, raw, get } from './helpers.js';

/** A small deterministic PRNG so a failure can be replayed. */
function rng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
}

const SEEDS = [
  'GET /a HTTP/1.1\r\nHost: x\r\n\r\n',
  'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello',
  'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'GET /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
];

function mutate(seed: string, r: () => number): Buffer {
  const b = Buffer.from(seed, 'latin1');
  const out = [...b];
  const edits = 1 + Math.floor(r() * 6);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(r() * out.length);
    const op = r();
    if (op < 0.4) out[at] = Math.floor(r() * 256);
    else if (op < 0.7) out.splice(at, 1);
    else out.splice(at, 0, ...Buffer.from(['\r\n', ':', ' ', '\0', '0', 'chunked', '\r\n\r\n'][Math.floor(r() * 7)]!));
  }
  return Buffer.from(out);
}

test('mutated requests never crash the raw engine and everyone else keeps being served', async () => {
  const echo = await startServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  const lb = await startBalancer([echo.port], { timeouts: { headersMs: 300, requestMs: 300, idleMs: 200 } });
  const r = rng(42);
  const statuses = new Map<string, number>();
  try {
    for (let batch = 0; batch < 10; batch++) {
      const replies = await Promise.all(
        Array.from({ length: 30 }, () => raw(lb.port, mutate(SEEDS[Math.floor(r() * SEEDS.length)]!, r), { timeoutMs: 1500 })),
      );
      for (const reply of replies) {
        const status = /^HTTP\/1\.1 (\d{3})/.exec(reply.text)?.[1] ?? (reply.text === '' ? 'none' : 'garbage');
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        assert.not.equal(status, 'garbage', `a reply that is not HTTP: ${JSON.stringify(reply.text.slice(0, 80))}`);
      }
      const ok = await get(lb.port, '/after-batch');
      assert.is(ok.status, 200, `batch ${batch}`);
    }
    assert.ok((statuses.get('400') ?? 0) > 0, `some mutations are rejected: ${JSON.stringify([...statuses])}`);
    assert.is(lb.lb.stats().backends[0]!.healthy, true);
  } finally {
    await lb.close();
    await echo.close();
  }
});

test.run();
