/**
 * `npm run bench:plugin-reload -w @trellis/example-lb`: a strategy plugin reloaded under wrk
 * load (issue 10). `trellis lb --plugin-dir D --watch` runs as its own process over two keep-alive
 * back-ends with a two-file strategy plugin (index.js imports ./pick.js); wrk -t1 -c32 loads it
 * while pick.js is rewritten every 500 ms (round-robin ↔ first back-end only), so `--watch`
 * reloads the plugin (host.reload) each time. The same run without rewrites is the baseline.
 * Reports requests/s, p99, failures (non-2xx + socket errors) and the reloads the balancer logged.
 */
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, start, startNode, wrk, hasTool, here, sleep, type Proc, type WrkResult } from './tools.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

if (!hasTool('wrk')) {
  console.log('bench:plugin-reload needs wrk: apt-get update && apt-get install -y wrk');
  process.exit(0);
}

const tmp = mkdtempSync(join(tmpdir(), 'trellis-bench-plugin-reload-'));
const dir = join(tmp, 'live-strategy');
mkdirSync(dir);
writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'live-strategy', version: '1.0.0', type: 'module', main: './index.js', engines: { trellis: '*' }, contributes: { strategies: [{ id: 'live', title: 'Live' }] } }));
writeFileSync(
  join(dir, 'index.js'),
  `import { pick } from './pick.js';\nexport function activate(ctx) {\n  ctx.routing.registerStrategy('live', ({ backends }) => {\n    let list = backends;\n    let n = 0;\n    return { select: () => list[pick(n++, list.length)], update() {}, setBackends(b) { list = b; } };\n  });\n}\n`,
);
const picks = ['export const pick = (n, len) => n % len; // round robin\n', 'export const pick = () => 0; // first back-end\n'];
writeFileSync(join(dir, 'pick.js'), picks[0]!);
const procs: Proc[] = [];

try {
  const ports = [await freePort(), await freePort()];
  for (const p of ports) procs.push(await startNode(`backend-${p}`, p, 'backend.ts', [p]));
  const lbPort = await freePort();
  const args = ['--conditions=trellis-source', '--import', 'tsx', here('../../cli/src/main.ts'), 'lb', '--strategy', 'live', '-p', String(lbPort), '--plugin-dir', tmp, '--watch', '--quiet'];
  for (const p of ports) args.push('--backend', `127.0.0.1:${p}`);
  const lb = await start('trellis-lb', lbPort, process.execPath, args);
  procs.push(lb);
  let logged = 0;
  let failedReloads = 0;
  lb.child.stderr!.on('data', (c: Buffer) => {
    const text = c.toString();
    logged += text.split('lb: plugin live-strategy reloaded').length - 1;
    failedReloads += text.split('failed, the previous code keeps serving').length - 1;
  });
  const url = `http://127.0.0.1:${lbPort}/`;
  await wrk(url, 2, 32); // warm-up
  const base: WrkResult[] = [];
  const loaded: (WrkResult & { rewrites: number })[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    base.push(await wrk(url, SECONDS, 32));
    let stop = false;
    let rewrites = 0;
    const writer = (async () => {
      while (!stop) {
        await sleep(500);
        if (stop) break;
        writeFileSync(join(dir, 'pick.js'), picks[++rewrites % 2]!);
      }
    })();
    const w = await wrk(url, SECONDS, 32);
    stop = true;
    await writer;
    loaded.push({ ...w, rewrites });
  }
  await sleep(500); // the last debounced reload
  const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
  console.log(`\n## Strategy plugin reload under load (wrk -t1 -c32 -d${SECONDS}s, ${ROUNDS} rounds alternating, 2 keep-alive back-ends; pick.js rewritten every 500 ms, trellis lb --watch)\n`);
  console.log('| run | requests/s (median) | p99 ms (median) | failed requests (all rounds) | plugin reloads logged |\n|---|---:|---:|---:|---:|');
  console.log(`| no reloads | ${med(base.map((x) => x.rps)).toFixed(0)} | ${med(base.map((x) => x.p99Ms)).toFixed(2)} | ${base.reduce((s, x) => s + x.errors, 0)} | 0 |`);
  console.log(`| reloading every 500 ms | ${med(loaded.map((x) => x.rps)).toFixed(0)} | ${med(loaded.map((x) => x.p99Ms)).toFixed(2)} | ${loaded.reduce((s, x) => s + x.errors, 0)} | ${logged} of ${loaded.reduce((s, x) => s + x.rewrites, 0)} rewrites (failed reloads: ${failedReloads}) |`);
} finally {
  for (const p of procs.reverse()) await p.stop();
  rmSync(tmp, { recursive: true, force: true });
}
