/**
 * The stress tool behind `trellis stress`: N requests with C in flight over keep-alive
 * connections, recording latency, failures and which back-end answered (its `x-server`
 * header, or `server` in a JSON body), with an optional progress callback.
 */
import { Pool } from 'undici';

export interface StressOptions {
  url: string;
  requests: number;
  concurrency: number;
  /** Per-request timeout (default 30 s). */
  timeoutMs?: number;
  /** Called every `progressEvery` completions with (done, total). */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface StressSummary {
  url: string;
  requests: number;
  concurrency: number;
  ok: number;
  errors: number;
  /** Failures by status code or error code. */
  errorKinds: Record<string, number>;
  elapsedMs: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Successful answers per back-end, and their share. */
  backends: { server: string; count: number; share: number }[];
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export async function runStress(options: StressOptions): Promise<StressSummary> {
  const url = new URL(options.url);
  if (url.protocol !== 'http:') throw new RangeError(`only http:// URLs are supported, got ${url.protocol}`);
  const pool = new Pool(url.origin, { connections: options.concurrency, pipelining: 1 });
  const path = url.pathname + url.search;
  const total = options.requests;
  const latencies = new Float64Array(total);
  const errorKinds: Record<string, number> = {};
  const perServer = new Map<string, number>();
  let next = 0;
  let done = 0;
  let ok = 0;
  const every = Math.max(1, Math.floor(total / 100));
  const started = performance.now();

  const worker = async () => {
    while (next < total && !options.signal?.aborted) {
      const i = next++;
      const t0 = performance.now();
      try {
        const res = await pool.request({ path, method: 'GET', headers: { accept: 'application/json' }, headersTimeout: options.timeoutMs ?? 30_000, bodyTimeout: options.timeoutMs ?? 30_000 });
        const body = await res.body.text();
        latencies[i] = performance.now() - t0;
        if (res.statusCode >= 400) {
          errorKinds[`HTTP ${res.statusCode}`] = (errorKinds[`HTTP ${res.statusCode}`] ?? 0) + 1;
        } else {
          ok++;
          let server = res.headers['x-server'] as string | undefined;
          if (server === undefined && body.startsWith('{')) {
            try {
              server = (JSON.parse(body) as { server?: string }).server;
            } catch {}
          }
          server ??= 'unknown';
          perServer.set(server, (perServer.get(server) ?? 0) + 1);
        }
      } catch (err) {
        latencies[i] = performance.now() - t0;
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).name;
        errorKinds[code] = (errorKinds[code] ?? 0) + 1;
      }
      done++;
      if (options.onProgress && (done % every === 0 || done === total)) options.onProgress(done, total);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(options.concurrency, total) }, worker));
  } finally {
    await pool.close().catch(() => undefined);
  }
  const elapsedMs = performance.now() - started;
  const sorted = latencies.slice(0, done).sort();
  const errors = done - ok;
  return {
    url: options.url,
    requests: done,
    concurrency: options.concurrency,
    ok,
    errors,
    errorKinds,
    elapsedMs: Math.round(elapsedMs),
    rps: Math.round((done / elapsedMs) * 1000 * 10) / 10,
    p50Ms: Math.round(quantile(sorted, 0.5) * 100) / 100,
    p99Ms: Math.round(quantile(sorted, 0.99) * 100) / 100,
    maxMs: Math.round((sorted[sorted.length - 1] ?? 0) * 100) / 100,
    backends: [...perServer]
      .sort((a, b) => (a[0] < b[0] ? -1 : 1))
      .map(([server, count]) => ({ server, count, share: ok === 0 ? 0 : Math.round((count / ok) * 1000) / 10 })),
  };
}

/** The summary as an aligned text table. */
export function formatSummary(s: StressSummary): string {
  const rows: [string, string][] = [
    ['url', s.url],
    ['requests', `${s.requests} (${s.ok} ok, ${s.errors} failed)`],
    ['concurrency', String(s.concurrency)],
    ['elapsed', `${(s.elapsedMs / 1000).toFixed(2)} s`],
    ['requests/s', s.rps.toFixed(1)],
    ['latency p50', `${s.p50Ms} ms`],
    ['latency p99', `${s.p99Ms} ms`],
    ['latency max', `${s.maxMs} ms`],
  ];
  for (const [kind, n] of Object.entries(s.errorKinds)) rows.push([`errors ${kind}`, String(n)]);
  const w = Math.max(...rows.map((r) => r[0].length));
  const lines = rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`);
  if (s.backends.length) {
    const sw = Math.max(7, ...s.backends.map((b) => b.server.length));
    lines.push('', `  ${'BACKEND'.padEnd(sw)}  ${'REQUESTS'.padStart(8)}  ${'SHARE'.padStart(6)}`);
    for (const b of s.backends) lines.push(`  ${b.server.padEnd(sw)}  ${String(b.count).padStart(8)}  ${(b.share.toFixed(1) + '%').padStart(6)}`);
  }
  return lines.join('\n') + '\n';
}

/** A one-line progress bar: `[#####.....]  50%  500/1000`. */
export function progressBar(done: number, total: number, width = 30): string {
  const f = total === 0 ? 1 : done / total;
  const n = Math.round(f * width);
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}] ${String(Math.floor(f * 100)).padStart(3)}%  ${done}/${total}`;
}
