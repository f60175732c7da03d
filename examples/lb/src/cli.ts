/**
 * The load balancer's commands: `trellis lb`, `trellis pi` and `trellis stress`.
 */
import { defineCommand, intOption, portOption, addressOption, untilAborted, UsageError } from '@trellis/sdk/cli';
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { createHost, createBalancer, createAdminServer, type BackendAddress } from '@trellis/sdk';
import cluster from 'node:cluster';
import { strategyId } from './strategy-names.js';
import { WorkersView, reportToPrimary, runPrimary } from './workers.js';
import { createPiServer, type PiServer } from './pi-server.js';
import { runStress, formatSummary, progressBar } from './stress.js';

const ms = (name: string, v: string | undefined) => intOption(name, v, { min: 0, max: 3_600_000 });

export const lb = defineCommand({
  name: 'lb',
  summary: 'Run the load balancer (HTTP per request, or TCP per connection)',
  usage: '[--port P] [--strategy ID] --backend HOST:PORT… | -a POLICY -p PORT -s PORT…',
  description: [
    'Strategies come from plugins: n-to-1, round-robin, least-connections, least-response-time, or any',
    'custom strategy found in --plugin-dir. The reference names N2One, RoundRobin, LeastConnections and',
    'LeastResponseTime also work (any case). -s takes one port each time, or several after one -s',
    '(ports listed after a -s value come after every repeated -s, so do not mix the two forms).',
  ].join('\n'),
  positionals: '[PORT…]',
  options: {
    port: { type: 'string', short: 'p', default: '8080', description: 'port to listen on', placeholder: 'port' },
    host: { type: 'string', default: '127.0.0.1', description: 'address to listen on', placeholder: 'addr' },
    strategy: { type: 'string', default: 'round-robin', description: 'strategy id', placeholder: 'id' },
    algorithm: { type: 'string', short: 'a', description: 'reference alias of --strategy (N2One, RoundRobin, …)', placeholder: 'policy' },
    backend: { type: 'string', short: 'b', multiple: true, description: 'a back-end HOST:PORT', placeholder: 'host:port' },
    server: { type: 'string', short: 's', multiple: true, description: 'reference alias: a back-end port on localhost', placeholder: 'port' },
    mode: { type: 'string', default: 'http', description: 'http (per request) or tcp (per connection)', placeholder: 'http|tcp' },
    engine: { type: 'string', default: 'raw', description: 'HTTP mode engine: raw (own HTTP/1.1 framing) or undici (node:http + undici pools)', placeholder: 'raw|undici' },
    'admin-port': { type: 'string', description: 'serve /-/stats, /-/metrics, /-/health and /-/events on this port', placeholder: 'port' },
    'plugin-dir': { type: 'string', multiple: true, description: 'also load plugins from this directory', placeholder: 'dir' },
    'health-interval': { type: 'string', default: '2000', description: 'ms between health checks (0 disables them)', placeholder: 'ms' },
    'health-timeout': { type: 'string', default: '1000', description: 'ms a health check may take', placeholder: 'ms' },
    'health-path': { type: 'string', description: 'HTTP path to check (default: a TCP connect)', placeholder: 'path' },
    rise: { type: 'string', default: '2', description: 'passing checks to mark a back-end up', placeholder: 'n' },
    fall: { type: 'string', default: '3', description: 'failing checks to mark a back-end down', placeholder: 'n' },
    retries: { type: 'string', default: '2', description: 'retries on another back-end for safe requests', placeholder: 'n' },
    'headers-timeout': { type: 'string', default: '10000', description: 'ms for a client to send its headers', placeholder: 'ms' },
    'idle-timeout': { type: 'string', default: '30000', description: 'ms an idle client connection stays open', placeholder: 'ms' },
    'upstream-timeout': { type: 'string', default: '30000', description: 'ms to wait for a back-end to answer', placeholder: 'ms' },
    'drain-timeout': { type: 'string', default: '5000', description: 'ms to drain requests on shutdown', placeholder: 'ms' },
    'max-connections': { type: 'string', default: '10000', description: 'open client connections in all; more are dropped at accept (0: no limit)', placeholder: 'n' },
    'max-connections-per-client': { type: 'string', default: '1000', description: 'open connections per client address; more get 429 (0: no limit)', placeholder: 'n' },
    'rate-limit': { type: 'string', default: '0', description: 'requests per second per client address, bursts up to it; more get 429 (0: off)', placeholder: 'n' },
    workers: { type: 'string', default: '1', description: 'balancer processes sharing the port (node:cluster); strategies and health checks are per worker, the admin port shows all', placeholder: 'n' },
    'backend-tls': { type: 'boolean', description: 'speak TLS to the back-ends, verifying their certificates (system roots, or --backend-ca)' },
    'backend-ca': { type: 'string', description: 'PEM CA bundle to verify back-end certificates with (implies --backend-tls)', placeholder: 'file' },
    'tls-cert': { type: 'string', multiple: true, description: 'terminate TLS with this PEM certificate (repeatable with --tls-key: the first is the default, the others picked by SNI); reloaded on SIGHUP', placeholder: 'file' },
    'tls-key': { type: 'string', multiple: true, description: 'the PEM private key of the --tls-cert in the same position', placeholder: 'file' },
    'access-log': { type: 'string', description: 'write one JSON line per request to FILE (appended), or - for stdout', placeholder: 'file|-' },
    'max-pending': { type: 'string', default: '1024', description: 'requests queued per back-end when its connections are busy; more get 503', placeholder: 'n' },
    quiet: { type: 'boolean', short: 'q', description: 'do not log back-end state changes' },
  },
  examples: [
    'trellis lb --port 8080 --strategy round-robin --backend 127.0.0.1:5000 --backend 127.0.0.1:5001',
    'trellis lb -a LeastResponseTime -p 8080 -s 5000 -s 5001 -s 5002 -s 5003',
    'trellis lb -a RoundRobin -p 8080 -s 5000 5001 5002 5003 --admin-port 9090',
    'trellis lb --mode tcp --port 7000 --backend 10.0.0.5:7000 --backend 10.0.0.6:7000',
  ],
  async run({ values, positionals }, io) {
    const backends: BackendAddress[] = (values.backend ?? []).map((b) => addressOption('backend', b));
    const ports = [...(values.server ?? []), ...positionals];
    if (positionals.length > 0 && !values.server?.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    for (const p of ports) backends.push({ host: '127.0.0.1', port: intOption('s', p, { min: 1, max: 65535 })! });
    if (backends.length === 0) throw new UsageError('give at least one back-end with --backend HOST:PORT (or -s PORT)');
    const mode = values.mode;
    if (mode !== 'http' && mode !== 'tcp') throw new UsageError(`--mode must be http or tcp, got "${mode}"`);
    const engine = values.engine;
    if (engine !== 'raw' && engine !== 'undici') throw new UsageError(`--engine must be raw or undici, got "${engine}"`);
    const strategy = strategyId(values.algorithm ?? values.strategy);
    const port = portOption('port', values.port)!;
    const adminPort = portOption('admin-port', values['admin-port']);
    const interval = ms('health-interval', values['health-interval'])!;
    const certs = values['tls-cert'] ?? [];
    const keys = values['tls-key'] ?? [];
    if (certs.length !== keys.length) throw new UsageError(`give one --tls-key per --tls-cert (got ${certs.length} certificates, ${keys.length} keys)`);
    const tls = certs.length > 0 ? certs.map((cert, i) => ({ cert, key: keys[i]! })) : undefined;
    const logTo = values['access-log'];
    const accessLog: Writable | undefined = logTo === undefined ? undefined : logTo === '-' ? (io.stdout as Writable) : createWriteStream(logTo, { flags: 'a' });
    if (accessLog !== undefined && logTo !== '-') {
      // a log file that cannot be opened is a start-up error, not a silent loss
      await new Promise<void>((resolve, reject) => {
        accessLog.once('ready', () => resolve());
        accessLog.once('error', (err) => reject(new UsageError(`--access-log: cannot open "${logTo}": ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
      });
    }
    const workers = intOption('workers', values.workers, { min: 1, max: 64 })!;
    if (workers > 1 && cluster.isPrimary) {
      // the primary only forks, restarts, aggregates and drains: every worker runs this same command
      accessLog?.destroy(); // each worker opens the log itself (appends are line-atomic)
      const view = new WorkersView();
      const admin = adminPort !== undefined ? createAdminServer(view) : undefined;
      const drainMs = ms('drain-timeout', values['drain-timeout'])!;
      const onHupAll = () => {
        for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
      };
      if (tls !== undefined) process.on('SIGHUP', onHupAll);
      const { listening, done } = runPrimary(workers, view, io.signal, drainMs, (line) => io.stderr.write(`${line}\n`));
      try {
        const addr = await listening;
        io.stdout.write(`lb: ${mode}${tls !== undefined ? ' (TLS)' : ''} mode on ${addr.host}:${addr.port}, ${workers} workers, strategy ${strategy} (per worker), back-ends ${backends.map((b) => `${b.host}:${b.port}`).join(' ')}\n`);
        if (admin) {
          const a = await admin.listen(adminPort, values.host);
          io.stdout.write(`lb: admin on http://${a.host}:${a.port}/-/stats, /-/metrics and /-/events (all workers)\n`);
        }
        await untilAborted(io.signal);
        io.stdout.write('lb: draining every worker…\n');
        await done;
      } catch (err) {
        io.stderr.write(`lb: ${(err as Error).message}\n`);
        await done;
        return 1;
      } finally {
        process.off('SIGHUP', onHupAll);
        await admin?.close();
      }
      return 0;
    }
    const host = createHost({ dirs: values['plugin-dir'] ?? [] });
    const balancer = await createBalancer({
      host,
      strategy,
      backends,
      mode,
      engine,
      healthCheck: interval === 0 ? false : {
        intervalMs: interval,
        timeoutMs: ms('health-timeout', values['health-timeout'])!,
        rise: intOption('rise', values.rise, { min: 1, max: 100 })!,
        fall: intOption('fall', values.fall, { min: 1, max: 100 })!,
        ...(values['health-path'] ? { path: values['health-path'] } : {}),
      },
      retries: intOption('retries', values.retries, { min: 0, max: 10 })!,
      timeouts: {
        headersMs: ms('headers-timeout', values['headers-timeout'])!,
        idleMs: ms('idle-timeout', values['idle-timeout'])!,
        upstreamMs: ms('upstream-timeout', values['upstream-timeout'])!,
      },
      ...(accessLog !== undefined ? { accessLog } : {}),
      ...(tls !== undefined ? { tls } : {}),
      ...(values['backend-ca'] !== undefined ? { backendTls: { ca: values['backend-ca'] } } : values['backend-tls'] ? { backendTls: true } : {}),
      limits: {
        maxConnections: intOption('max-connections', values['max-connections'], { min: 0, max: 10_000_000 })!,
        maxConnectionsPerClient: intOption('max-connections-per-client', values['max-connections-per-client'], { min: 0, max: 10_000_000 })!,
        requestsPerSecondPerClient: intOption('rate-limit', values['rate-limit'], { min: 0, max: 10_000_000 })!,
        maxPendingPerBackend: intOption('max-pending', values['max-pending'], { min: 0, max: 10_000_000 })!,
      },
    }).catch(async (err) => {
      await host.dispose();
      throw err;
    });
    if (!values.quiet) {
      balancer.on('backend-down', (b, reason) => io.stderr.write(`lb: back-end ${b.id} is DOWN (${reason})\n`));
      balancer.on('backend-up', (b) => io.stderr.write(`lb: back-end ${b.id} is UP\n`));
      balancer.on('plugin-error', (e) => io.stderr.write(`lb: ${e.message}\n`));
    }
    const inWorker = cluster.isWorker && workers > 1;
    const admin = adminPort !== undefined && !inWorker ? createAdminServer(balancer) : undefined;
    // certificate reload on SIGHUP: its own small handler, so other SIGHUP uses can coexist
    const onHup = () => {
      try {
        balancer.reloadTls();
        io.stderr.write('lb: TLS certificates reloaded\n');
      } catch (err) {
        io.stderr.write(`lb: TLS reload failed, keeping the current certificates: ${(err as Error).message}\n`);
      }
    };
    if (tls !== undefined) process.on('SIGHUP', onHup);
    let stopReporting: (() => void) | undefined;
    try {
      const addr = await balancer.listen(port, values.host);
      if (inWorker) {
        stopReporting = reportToPrimary(balancer);
        process.send!({ trellis: 'lb-listening', host: addr.host, port: addr.port });
      }
      io.stdout.write(`lb: ${mode}${tls !== undefined ? ' (TLS)' : ''} mode on ${addr.host}:${addr.port}, strategy ${strategy}, back-ends ${backends.map((b) => `${b.host}:${b.port}`).join(' ')}\n`);
      if (admin) {
        const a = await admin.listen(adminPort, values.host);
        io.stdout.write(`lb: admin on http://${a.host}:${a.port}/-/stats, /-/metrics and /-/events\n`);
      }
      await untilAborted(io.signal);
      io.stdout.write('lb: draining…\n');
    } finally {
      await admin?.close();
      await balancer.close({ timeoutMs: ms('drain-timeout', values['drain-timeout'])! });
      process.off('SIGHUP', onHup);
      stopReporting?.();
      if (logTo !== '-') await balancer.accessLog?.close();
      await host.dispose();
    }
    return 0;
  },
});

export const pi = defineCommand({
  name: 'pi',
  summary: 'Run the Pi back-end: GET /<precision> computes π (HTML, or JSON with Accept: application/json)',
  options: {
    port: { type: 'string', short: 'p', default: '5000', description: 'port to listen on (the first one with --count)', placeholder: 'port' },
    host: { type: 'string', default: '127.0.0.1', description: 'address to listen on', placeholder: 'addr' },
    count: { type: 'string', short: 'n', default: '1', description: 'start this many servers on consecutive ports', placeholder: 'n' },
    serial: { type: 'boolean', description: 'serve one request at a time, like the original' },
    'ms-per-digit': { type: 'string', default: '0', description: 'extra pacing per digit (the original: about 1)', placeholder: 'ms' },
    'max-precision': { type: 'string', default: '20000', description: 'largest precision served; above it 400', placeholder: 'n' },
  },
  examples: ['trellis pi --port 5000', 'trellis pi --port 5000 --count 4 --serial --ms-per-digit 1'],
  async run({ values }, io) {
    const base = portOption('port', values.port)!;
    const count = intOption('count', values.count, { min: 1, max: 64 })!;
    const perDigit = Number(values['ms-per-digit']);
    if (!Number.isFinite(perDigit) || perDigit < 0 || perDigit > 1000) throw new UsageError(`--ms-per-digit must be a number in 0..1000, got "${values['ms-per-digit']}"`);
    const maxPrecision = intOption('max-precision', values['max-precision'], { min: 0, max: 200_000 })!;
    const servers: PiServer[] = [];
    try {
      for (let i = 0; i < count; i++) {
        const s = createPiServer({ serial: values.serial ?? false, msPerDigit: perDigit, maxPrecision });
        servers.push(s);
        const a = await s.listen(base === 0 ? 0 : base + i, values.host);
        io.stdout.write(`pi: serving on http://${a.host}:${a.port}/<precision>${values.serial ? ' (one at a time)' : ''}\n`);
      }
      await untilAborted(io.signal);
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
    return 0;
  },
});

export const stress = defineCommand({
  name: 'stress',
  summary: 'Send concurrent requests to a URL and summarise rate, latency, errors and back-end shares',
  options: {
    url: { type: 'string', short: 'u', default: 'http://127.0.0.1:8080/100', description: 'the URL to load', placeholder: 'url' },
    requests: { type: 'string', short: 'n', default: '1000', description: 'total requests', placeholder: 'n' },
    concurrency: { type: 'string', short: 'c', default: '10', description: 'requests in flight', placeholder: 'n' },
    timeout: { type: 'string', default: '30000', description: 'per-request timeout', placeholder: 'ms' },
    json: { type: 'boolean', description: 'print the summary as JSON' },
    'no-progress': { type: 'boolean', description: 'do not draw the progress bar' },
  },
  examples: ['trellis stress --url http://127.0.0.1:8080/100 --requests 1000 --concurrency 20'],
  async run({ values }, io) {
    let url: URL;
    try {
      url = new URL(values.url);
    } catch {
      throw new UsageError(`--url must be an absolute http:// URL, got "${values.url}"`);
    }
    if (url.protocol !== 'http:') throw new UsageError(`--url must use http://, got "${url.protocol}"`);
    const requests = intOption('requests', values.requests, { min: 1, max: 100_000_000 })!;
    const concurrency = intOption('concurrency', values.concurrency, { min: 1, max: 10_000 })!;
    const showProgress = !values['no-progress'] && !values.json && (io.stderr as NodeJS.WriteStream).isTTY === true;
    const summary = await runStress({
      url: values.url,
      requests,
      concurrency,
      timeoutMs: ms('timeout', values.timeout)!,
      signal: io.signal,
      ...(showProgress ? { onProgress: (d: number, t: number) => io.stderr.write(`\r${progressBar(d, t)}`) } : {}),
    });
    if (showProgress) io.stderr.write('\n');
    io.stdout.write(values.json ? JSON.stringify(summary, null, 2) + '\n' : formatSummary(summary));
    return summary.errors > 0 ? 1 : 0;
  },
});
