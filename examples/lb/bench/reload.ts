/**
 * `npm run bench:reload -w @trellis/example-lb`: configuration reloads under wrk load. `trellis lb
 * --config` runs as its own process over three keep-alive back-ends; wrk -t1 -c32 loads it while
 * the file is rewritten every 250 ms (back-end set, weights, strategy, timeouts rotate) and
 * re-read, alternately by SIGHUP and by the authenticated POST /-/reload. The same run without
 * reloads is the baseline. Reports requests/s, p99 and failures (non-2xx + socket errors).
 */
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { freePort, start, startNode, wrk, hasTool, here, sleep, type Proc, type WrkResult } from './tools.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TOKEN = 'bench-reload-token-0123456789abcdef';

if (!hasTool('wrk')) {
  console.log('bench:reload needs wrk: apt-get update && apt-get install -y wrk');
  process.exit(0);
}

const tmp = mkdtempSync(join(tmpdir(), 'trellis-bench-reload-'));
const file = join(tmp, 'lb.yaml');
const tokenFile = join(tmp, 'token');
writeFileSync(tokenFile, TOKEN);
const procs: Proc[] = [];

function postReload(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/-/reload', method: 'POST', agent: false, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

try {
  const ports = [await freePort(), await freePort(), await freePort()];
  for (const p of ports) procs.push(await startNode(`backend-${p}`, p, 'backend.ts', [p]));
  const [a, b, c] = ports.map((p) => `127.0.0.1:${p}`);
  const configs = [
    ['strategy: round-robin', 'timeouts: { idleMs: 60000 }', 'backends:', `  - ${a}`, `  - ${b}`],
    ['strategy: least-connections', 'timeouts: { idleMs: 60000, upstreamMs: 20000 }', 'backends:', `  - ${a},weight=3`, `  - ${b}`, `  - ${c}`],
    ['strategy: { id: consistent-hash, options: { hashOn: client-ip } }', 'timeouts: { idleMs: 60000 }', 'backends:', `  - ${b}`, `  - ${c},weight=2`],
    ['strategy: least-response-time', 'timeouts: { idleMs: 60000, upstreamMs: 25000 }', 'backends:', `  - ${c}`, `  - ${a}`],
  ].map((lines) => ['healthCheck: { intervalMs: 1000 }', ...lines].join('\n') + '\n');
  writeFileSync(file, configs[0]!);
  const lbPort = await freePort();
  const adminPort = await freePort();
  const lb = await start('trellis-lb', lbPort, process.execPath, ['--conditions=trellis-source', '--import', 'tsx', here('../../cli/src/main.ts'), 'lb', '--config', file, '-p', String(lbPort), '--admin-port', String(adminPort), '--admin-token-file', tokenFile, '--quiet']);
  procs.push(lb);
  const url = `http://127.0.0.1:${lbPort}/`;
  await wrk(url, 2, 32); // warm-up
  const base: WrkResult[] = [];
  const loaded: (WrkResult & { reloads: number; refused: number })[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    base.push(await wrk(url, SECONDS, 32));
    let stop = false;
    let reloads = 0;
    let refused = 0;
    const reloader = (async () => {
      let i = 0;
      while (!stop) {
        await sleep(250);
        if (stop) break;
        writeFileSync(file, configs[++i % configs.length]!);
        if (i % 2 === 0) {
          lb.child.kill('SIGHUP');
          reloads++;
        } else {
          const status = await postReload(adminPort);
          if (status === 200) reloads++;
          else refused++;
        }
      }
    })();
    const w = await wrk(url, SECONDS, 32);
    stop = true;
    await reloader;
    loaded.push({ ...w, reloads, refused });
  }
  const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
  console.log(`\n## Reload under load (wrk -t1 -c32 -d${SECONDS}s, ${ROUNDS} rounds alternating, 3 keep-alive back-ends; a reload every 250 ms)\n`);
  console.log('| run | requests/s (median) | p99 ms (median) | failed requests (all rounds) | reloads, SIGHUP + admin POST (all rounds) |\n|---|---:|---:|---:|---:|');
  console.log(`| no reloads | ${med(base.map((x) => x.rps)).toFixed(0)} | ${med(base.map((x) => x.p99Ms)).toFixed(2)} | ${base.reduce((s, x) => s + x.errors, 0)} | 0 |`);
  console.log(`| reloading every 250 ms | ${med(loaded.map((x) => x.rps)).toFixed(0)} | ${med(loaded.map((x) => x.p99Ms)).toFixed(2)} | ${loaded.reduce((s, x) => s + x.errors, 0)} | ${loaded.reduce((s, x) => s + x.reloads, 0)} (admin POSTs refused: ${loaded.reduce((s, x) => s + x.refused, 0)}) |`);
} finally {
  for (const p of procs.reverse()) await p.stop();
  rmSync(tmp, { recursive: true, force: true });
}
