/**
 * `npm run bench:lb`: Trellis against its peers, side by side in the same run, on the same two
 * back-ends, alternating targets each round, reporting medians and ratios.
 *
 *   HTTP:  direct, Trellis (http, raw and undici engines), http-proxy (keep-alive agent), @fastify/http-proxy,
 *          minimal undici Pool proxy, haproxy (1 thread), nginx (1 worker), and a bare `net`
 *          pipe (no HTTP) as the ceiling of a Node process on this machine       — wrk -t1 -cC
 *   TCP:   Trellis (tcp), minimal net pipe, haproxy mode tcp                     — wrk -t1 -cC
 *   Strategies: 4 one-at-a-time Pi back-ends, one slowed; p99 and success per strategy.
 *
 * Trellis runs from the packages' built `dist/` (as installed from npm; the script runs
 * `npm run build` first when a source is newer than its build). BENCH_FROM_SOURCE=1 runs it from
 * the TypeScript sources through tsx instead (as a BENCH_BASELINE checkout always runs).
 *
 * Each proxy's own CPU (its process tree, from /proc) is measured per request beside req/s.
 *
 * Environment: BENCH_ROUNDS (3), BENCH_SECONDS (5), BENCH_CONNECTIONS (32),
 * BENCH_ONLY (comma list of http,tcp,tls,workers,strategies), BENCH_STRATEGY_REQUESTS (300).
 */
import { mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, freePort, hasTool, toolPath, start, startNode, wrk, median, sleep, type Proc, type WrkResult } from './tools.js';
import { haproxyConfig, nginxConfig } from './configs.js';
import { runStress } from '../src/stress.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ONLY = new Set((process.env.BENCH_ONLY ?? 'http,tcp,tls,workers,strategies').split(','));
/** Another checkout (e.g. main, `npm ci` done) whose balancer runs in the same HTTP rounds. */
const BASELINE = process.env.BENCH_BASELINE;
const STRATEGY_REQUESTS = Number(process.env.BENCH_STRATEGY_REQUESTS ?? 300);
/** Trellis from dist/ (default) or from its TypeScript sources (always beside a baseline, which runs from its sources). */
const BUILT = process.env.BENCH_FROM_SOURCE !== '1' && BASELINE === undefined;
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const trellisNode = (name: string, port: number, args: (string | number)[]) => startNode(name, port, './peers/trellis.ts', args, BUILT);

const PLAIN = 'Trellis lb (http, no fwd headers)';
const PIPE = 'net pipe (no HTTP: the Node ceiling)';
const log = (s: string) => process.stderr.write(`${s}\n`);
const procs: Proc[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'trellis-bench-lb-'));

async function cleanup(): Promise<void> {
  await Promise.all(procs.splice(0).map((p) => p.stop()));
  rmSync(tmp, { recursive: true, force: true });
}
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

async function track(p: Promise<Proc>): Promise<Proc> {
  const proc = await p;
  procs.push(proc);
  return proc;
}

interface Target {
  name: string;
  port: number;
  /** The proxy's process, whose CPU per request is measured (not for the direct back-end). */
  pid?: number;
}

/** `add(name, started)`: tracks a started proxy and makes it a target, its process measured. */
function adder(targets: Target[]): (name: string, p: Promise<Proc>) => Promise<void> {
  return async (name, p) => {
    const proc = await track(p);
    targets.push({ name, port: proc.port, pid: proc.child.pid });
  };
}

/** Runs every target once per round in rotating order; returns per-target results. */
async function alternate(targets: Target[], path: string, scheme = 'http'): Promise<Map<string, WrkResult[]>> {
  const results = new Map<string, WrkResult[]>(targets.map((t) => [t.name, []]));
  for (const t of targets) await wrk(`${scheme}://127.0.0.1:${t.port}${path}`, 1, CONNS); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
    for (const t of order) {
      const res = await wrk(`${scheme}://127.0.0.1:${t.port}${path}`, SECONDS, CONNS, t.pid);
      results.get(t.name)!.push(res);
      log(`  round ${r + 1}/${ROUNDS}  ${t.name.padEnd(28)} ${res.rps.toFixed(0).padStart(7)} req/s  p99 ${res.p99Ms.toFixed(2)} ms${res.errors ? `  errors ${res.errors}` : ''}`);
      await sleep(300);
    }
  }
  return results;
}

/** Median CPU µs per request of a target's rounds (NaN when not measured). */
function cpuPerReq(rs: WrkResult[]): number {
  const xs = rs.map((r) => r.cpuUsPerReq).filter(Number.isFinite);
  return xs.length === 0 ? Number.NaN : median(xs);
}

function table(results: Map<string, WrkResult[]>, reference: string | undefined): string {
  const ref = reference ? median(results.get(reference)!.map((r) => r.rps)) : undefined;
  const refCpu = reference ? cpuPerReq(results.get(reference)!) : Number.NaN;
  const lines = ['| target | req/s (median) | p99 ms (median) | errors | Trellis ÷ target | proxy CPU µs/req (median) | Trellis ÷ target per CPU-second |', '|---|---:|---:|---:|---:|---:|---:|'];
  for (const [name, rs] of results) {
    const rps = median(rs.map((r) => r.rps));
    const p99 = median(rs.map((r) => r.p99Ms));
    const errors = rs.reduce((a, r) => a + r.errors, 0);
    const ratio = ref !== undefined && name !== reference ? `${(ref / rps).toFixed(2)}×` : '';
    const cpu = cpuPerReq(rs);
    const cpuRatio = Number.isFinite(cpu) && Number.isFinite(refCpu) && name !== reference ? `${(cpu / refCpu).toFixed(2)}×` : '';
    lines.push(`| ${name} | ${rps.toFixed(0)} | ${p99.toFixed(2)} | ${errors} | ${ratio} | ${Number.isFinite(cpu) ? cpu.toFixed(1) : '—'} | ${cpuRatio} |`);
  }
  return lines.join('\n');
}

async function httpSection(backends: number[]): Promise<string> {
  log('\nHTTP mode: starting targets');
  const targets: Target[] = [{ name: 'direct (one back-end)', port: backends[0]! }];
  const add = adder(targets);
  await add('Trellis lb (http)', freePort().then((port) => trellisNode('trellis', port, ['http', port, 'round-robin', ...backends])));
  await add(PLAIN, freePort().then((port) => trellisNode('trellis-plain', port, ['http-plain', port, 'round-robin', ...backends])));
  if (BASELINE) await add('Trellis lb (baseline)', freePort().then((port) => startNode('trellis-baseline', port, join(BASELINE, 'examples/lb/bench/peers/trellis.ts'), ['http', port, 'round-robin', ...backends])));
  await add('Trellis lb (undici engine)', freePort().then((port) => trellisNode('trellis-undici', port, ['http-undici', port, 'round-robin', ...backends])));
  await add('http-proxy (keep-alive)', freePort().then((port) => startNode('http-proxy', port, './peers/http-proxy.ts', [port, ...backends])));
  await add('@fastify/http-proxy', freePort().then((port) => startNode('fastify', port, './peers/fastify-proxy.ts', [port, ...backends])));
  await add('undici Pool proxy', freePort().then((port) => startNode('undici', port, './peers/undici-proxy.ts', [port, ...backends])));
  // not an HTTP proxy: a byte pipe per connection, the least work any Node process can do here
  await add(PIPE, freePort().then((port) => startNode('net-pipe-http', port, './peers/net-pipe.ts', [port, ...backends])));
  const notes: string[] = [];
  if (hasTool('haproxy')) {
    const port = await freePort();
    await add('haproxy 1 thread', start('haproxy', port, toolPath('haproxy'), ['-db', '-f', haproxyConfig(tmp, 'http', port, backends)]));
  } else notes.push('haproxy missing: apt-get install -y haproxy');
  if (hasTool('nginx')) {
    const port = await freePort();
    const root = nginxConfig(tmp, port, backends);
    await add('nginx 1 worker', start('nginx', port, toolPath('nginx'), ['-p', root, '-c', join(root, 'nginx.conf')]));
  } else notes.push('nginx missing: apt-get install -y nginx');
  const results = await alternate(targets, '/');
  const trellis = median(results.get('Trellis lb (http)')!.map((r) => r.rps));
  const nodePeers = ['http-proxy (keep-alive)', '@fastify/http-proxy', 'undici Pool proxy'].map((n) => [n, median(results.get(n)!.map((r) => r.rps))] as const);
  const best = nodePeers.reduce((a, b) => (b[1] > a[1] ? b : a));
  const plain = median(results.get(PLAIN)!.map((r) => r.rps));
  const summary = [
    `Trellis ÷ best Node peer (${best[0]}): **${(trellis / best[1]).toFixed(2)}×** (target ≥ 1.5×), Trellis as configured by default: it adds X-Forwarded-For/-Proto/-Host, Forwarded and Via, which no peer here adds`,
    `Like for like, Trellis adding no forwarding headers (\`forwardHeaders: []\`) as no peer does: ÷ best Node peer **${(plain / best[1]).toFixed(2)}×**${results.has('haproxy 1 thread') ? `, ÷ haproxy **${(plain / median(results.get('haproxy 1 thread')!.map((r) => r.rps))).toFixed(2)}×**` : ''}`,
  ];
  const pipe = median(results.get(PIPE)!.map((r) => r.rps));
  summary.push(`Ceiling in this run: a bare \`net\` pipe (bytes relayed per connection, no HTTP parsing or per-request routing) ÷ best Node peer **${(pipe / best[1]).toFixed(2)}×**; Trellis ÷ that pipe **${(trellis / pipe).toFixed(2)}×**`);
  if (results.has('haproxy 1 thread')) summary.push(`Trellis ÷ haproxy: **${(trellis / median(results.get('haproxy 1 thread')!.map((r) => r.rps))).toFixed(2)}×** (target ≥ 0.6×)`);
  const perCpu = (name: string) => cpuPerReq(results.get(name)!);
  const tCpu = perCpu('Trellis lb (http)');
  if (Number.isFinite(tCpu)) {
    const bestCpu = nodePeers.map(([n]) => [n, perCpu(n)] as const).reduce((a, b) => (b[1] < a[1] ? b : a));
    summary.push(
      `Per proxy CPU-second (requests per second of the proxy's own CPU: less sensitive than req/s to how wrk and the back-ends shared the 2 cores, though not independent of it): Trellis ÷ most efficient Node peer (${bestCpu[0]}) **${(bestCpu[1] / tCpu).toFixed(2)}×**${results.has('haproxy 1 thread') ? `, ÷ haproxy **${(perCpu('haproxy 1 thread') / tCpu).toFixed(2)}×**` : ''}; Trellis ${tCpu.toFixed(1)} µs of CPU per request`,
    );
  }
  if (BASELINE) summary.push(`Trellis ÷ baseline (${BASELINE}): **${(trellis / median(results.get('Trellis lb (baseline)')!.map((r) => r.rps))).toFixed(2)}×** (target ≥ 1.0×: no worse)`);
  const p99T = median(results.get('Trellis lb (http)')!.map((r) => r.p99Ms));
  const p99H = median(results.get('http-proxy (keep-alive)')!.map((r) => r.p99Ms));
  summary.push(`p99 Trellis ${p99T.toFixed(2)} ms vs http-proxy ${p99H.toFixed(2)} ms (target: no worse)`);
  for (const p of procs.splice(0)) await p.stop();
  return `### HTTP mode (wrk -t1 -c${CONNS} -d${SECONDS}s, ${ROUNDS} rounds, 2 back-ends, Trellis from ${BUILT ? 'dist/' : 'source'})\n\n${table(results, 'Trellis lb (http)')}\n\n${summary.map((s) => `- ${s}`).join('\n')}${notes.length ? `\n- skipped: ${notes.join('; ')}` : ''}\n`;
}

async function tcpSection(backends: number[]): Promise<string> {
  log('\nTCP mode: starting targets');
  const targets: Target[] = [];
  const add = adder(targets);
  await add('Trellis lb (tcp)', freePort().then((port) => trellisNode('trellis-tcp', port, ['tcp', port, 'round-robin', ...backends])));
  await add('net pipe', freePort().then((port) => startNode('net-pipe', port, './peers/net-pipe.ts', [port, ...backends])));
  if (hasTool('haproxy')) {
    const port = await freePort();
    await add('haproxy mode tcp', start('haproxy-tcp', port, toolPath('haproxy'), ['-db', '-f', haproxyConfig(tmp, 'tcp', port, backends)]));
  }
  const results = await alternate(targets, '/');
  const trellis = median(results.get('Trellis lb (tcp)')!.map((r) => r.rps));
  const pipe = median(results.get('net pipe')!.map((r) => r.rps));
  for (const p of procs.splice(0)) await p.stop();
  return `### TCP mode (wrk -t1 -c${CONNS} -d${SECONDS}s through the proxy, ${ROUNDS} rounds)\n\n${table(results, 'Trellis lb (tcp)')}\n\n- Trellis ÷ net pipe: **${(trellis / pipe).toFixed(2)}×** (target ≥ 1.0×)\n`;
}

async function tlsSection(backends: number[]): Promise<string> {
  log('\nTLS termination: starting targets');
  if (!hasTool('openssl')) return '### TLS termination\n\n- skipped: openssl missing\n';
  const cert = join(tmp, 'tls.pem');
  const key = join(tmp, 'tls.key');
  spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  writeFileSync(join(tmp, 'tls-combined.pem'), readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'));
  const targets: Target[] = [];
  const add = adder(targets);
  await add(
    'Trellis lb (https)',
    freePort().then((port) => start('trellis-https', port, process.execPath, [...(BUILT ? [] : ['--conditions=trellis-source']), '--import', 'tsx', fileURLToPath(new URL('./peers/trellis.ts', import.meta.url)), 'https', String(port), 'round-robin', ...backends.map(String)], { TRELLIS_LOG: 'error', BENCH_TLS_CERT: cert, BENCH_TLS_KEY: key })),
  );
  if (hasTool('haproxy')) {
    const port = await freePort();
    await add('haproxy 1 thread (ssl)', start('haproxy-ssl', port, toolPath('haproxy'), ['-db', '-f', haproxyConfig(tmp, 'http', port, backends, join(tmp, 'tls-combined.pem'))]));
  }
  const results = await alternate(targets, '/', 'https');
  const trellis = median(results.get('Trellis lb (https)')!.map((r) => r.rps));
  const h = results.get('haproxy 1 thread (ssl)');
  for (const p of procs.splice(0)) await p.stop();
  return `### TLS termination (wrk -t1 -c${CONNS} -d${SECONDS}s over keep-alive TLS 1.3, ${ROUNDS} rounds, 2 back-ends)\n\n${table(results, 'Trellis lb (https)')}\n${h ? `\n- Trellis ÷ haproxy with TLS: **${(trellis / median(h.map((r) => r.rps))).toFixed(2)}×**\n` : '\n- skipped haproxy: not installed\n'}`;
}

async function workersSection(backends: number[]): Promise<string> {
  log('\nAll cores: trellis lb --workers 2 against haproxy nbthread 2');
  const targets: Target[] = [];
  const add = adder(targets);
  const main = BUILT ? [fileURLToPath(new URL('../../cli/bin/trellis.js', import.meta.url))] : ['--conditions=trellis-source', '--import', 'tsx', fileURLToPath(new URL('../../cli/src/main.ts', import.meta.url))];
  const cli = (workers: number) => async () => {
    const port = await freePort();
    return start(`trellis-w${workers}`, port, process.execPath, [...main, 'lb', '--workers', String(workers), '-p', String(port), ...backends.flatMap((b) => ['-b', `127.0.0.1:${b}`]), '--health-interval', '0', '--idle-timeout', '60000', '--quiet'], { TRELLIS_LOG: 'error' });
  };
  await add('Trellis lb --workers 2', cli(2)());
  await add('Trellis lb --workers 1', cli(1)());
  if (hasTool('haproxy')) {
    const port = await freePort();
    await add('haproxy nbthread 2', start('haproxy-2', port, toolPath('haproxy'), ['-db', '-f', haproxyConfig(tmp, 'http', port, backends, undefined, 2)]));
  }
  const results = await alternate(targets, '/');
  const w2 = median(results.get('Trellis lb --workers 2')!.map((r) => r.rps));
  const h = results.get('haproxy nbthread 2');
  for (const p of procs.splice(0)) await p.stop();
  return `### All cores (wrk -t1 -c${CONNS} -d${SECONDS}s, ${ROUNDS} rounds, 2 back-ends)\n\n${table(results, 'Trellis lb --workers 2')}\n${h ? `\n- Trellis --workers 2 ÷ haproxy nbthread 2: **${(w2 / median(h.map((r) => r.rps))).toFixed(2)}×**\n` : ''}`;
}

async function strategySection(): Promise<string> {
  log('\nStrategies: 4 one-at-a-time Pi back-ends, the third slowed 8×');
  const perDigit = [1, 1, 8, 1];
  const pis: number[] = [];
  for (const ms of perDigit) pis.push((await track(freePort().then((port) => startNode('pi', port, './peers/pi-backends.ts', [port, ms])))).port);
  const strategies = ['n-to-1', 'round-robin', 'least-connections', 'least-response-time'];
  const rows = new Map<string, { p99: number[]; success: number[]; rps: number[] }>(strategies.map((s) => [s, { p99: [], success: [], rps: [] }]));
  const rounds = Math.max(1, Math.min(ROUNDS, 2));
  for (let r = 0; r < rounds; r++) {
    for (const s of strategies.map((_, i) => strategies[(i + r) % strategies.length]!)) {
      const port = await freePort();
      const lb = await trellisNode(`lb-${s}`, port, ['http', port, s, ...pis]);
      // one fresh lb per run: strategies start without history
      const sum = await runStress({ url: `http://127.0.0.1:${port}/50`, requests: STRATEGY_REQUESTS, concurrency: 8, timeoutMs: 1000 });
      await lb.stop();
      const row = rows.get(s)!;
      row.p99.push(sum.p99Ms);
      row.success.push((sum.ok / sum.requests) * 100);
      row.rps.push(sum.rps);
      log(`  round ${r + 1}/${rounds}  ${s.padEnd(20)} p99 ${sum.p99Ms.toFixed(0)} ms  success ${((sum.ok / sum.requests) * 100).toFixed(1)}%  ${sum.rps} req/s  ${sum.backends.map((b) => `${b.server.split(':')[1]}:${b.share}%`).join(' ')}`);
    }
  }
  for (const p of procs.splice(0)) await p.stop();
  const lines = ['| strategy | p99 ms (median) | success % (1 s timeout) | req/s |', '|---|---:|---:|---:|'];
  for (const [s, row] of rows) lines.push(`| ${s} | ${median(row.p99).toFixed(0)} | ${median(row.success).toFixed(1)} | ${median(row.rps).toFixed(1)} |`);
  const lrt = median(rows.get('least-response-time')!.p99);
  const rr = median(rows.get('round-robin')!.p99);
  return `### Strategies (4 serial Pi back-ends at 1 ms/digit, one at 8 ms/digit; GET /50; ${STRATEGY_REQUESTS} requests, concurrency 8; ${rounds} rounds)\n\n${lines.join('\n')}\n\n- least-response-time p99 ${lrt.toFixed(0)} ms vs round-robin ${rr.toFixed(0)} ms: ${lrt < rr ? '**beats round robin**' : '**does not beat round robin**'}\n`;
}

async function main(): Promise<void> {
  const missing = ['wrk'].filter((t) => !hasTool(t));
  if (missing.length && (ONLY.has('http') || ONLY.has('tcp'))) {
    log(`bench:lb needs ${missing.join(', ')} for the HTTP and TCP sections: apt-get update && apt-get install -y wrk haproxy nginx`);
    ONLY.delete('http');
    ONLY.delete('tcp');
  }
  if (BUILT) ensureBuilt(ROOT, log);
  const out: string[] = [`## Load balancer benchmark (${new Date().toISOString().slice(0, 16)}Z, node ${process.version})\n`];
  if (ONLY.has('http') || ONLY.has('tcp') || ONLY.has('tls') || ONLY.has('workers')) {
    const backends: number[] = [];
    for (let i = 0; i < 2; i++) backends.push((await track(freePort().then((port) => startNode(`backend-${i}`, port, './backend.ts', [port])))).port);
    const keep = procs.splice(0);
    try {
      if (ONLY.has('http')) out.push(await httpSection(backends));
      if (ONLY.has('tcp')) out.push(await tcpSection(backends));
      if (ONLY.has('tls')) out.push(await tlsSection(backends));
      if (ONLY.has('workers')) out.push(await workersSection(backends));
    } finally {
      procs.push(...keep);
      for (const p of procs.splice(0)) await p.stop();
    }
  }
  if (ONLY.has('strategies')) out.push(await strategySection());
  process.stdout.write(out.join('\n') + '\n');
}

main()
  .catch((err) => {
    log(`bench:lb failed: ${err instanceof Error ? err.stack : String(err)}`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
