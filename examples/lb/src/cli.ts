/**
 * The load balancer's commands: `trellis lb`, `trellis pi` and `trellis stress`.
 */
import { defineCommand, intOption, portOption, addressOption, untilAborted, UsageError, createCommandHost, pluginDirOption } from '@trellis/sdk/cli';
import { createWriteStream, readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import cluster from 'node:cluster';
import { createBalancer, createAdminServer, parseBackend, FORWARD_HEADERS, type BackendAddress, type ForwardHeader } from '@trellis/sdk/balancer';
import { watchPlugins } from '@trellis/sdk';
import { strategyId } from './strategy-names.js';
import { loadConfig, type LbConfigFile } from './config.js';
import { applySettings, RESTART_ONLY, type Settings } from './reload.js';
import { WorkersView, reportToPrimary, runPrimary } from './workers.js';
import { createPiServer, type PiServer } from './pi-server.js';
import { runStress, formatSummary, progressBar } from './stress.js';

const ms = (name: string, v: string | undefined) => intOption(name, v, { min: 0, max: 3_600_000 });

/** `--backend HOST:PORT[,weight=W][,tag=T]…` (a bare PORT means 127.0.0.1). */
function backendOption(value: string): BackendAddress {
  const comma = value.indexOf(',');
  const a = addressOption('backend', comma === -1 ? value : value.slice(0, comma));
  const host = a.host.includes(':') ? `[${a.host}]` : a.host;
  try {
    return parseBackend(`${host}:${a.port}${comma === -1 ? '' : value.slice(comma)}`);
  } catch (err) {
    throw new UsageError(`--backend: ${(err as Error).message}`);
  }
}

/** The admin token: `--admin-token-file`, else `TRELLIS_ADMIN_TOKEN`; never a flag value (ps shows those). */
/** `--forward-headers x-forwarded,via` / `none`: the families to add, undefined for the default (all). */
function forwardHeadersOption(value: string | undefined): ForwardHeader[] | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  if (v === 'none') return [];
  const out: ForwardHeader[] = [];
  for (const part of v.split(',')) {
    const h = part.trim();
    if (!FORWARD_HEADERS.includes(h as ForwardHeader)) throw new UsageError(`--forward-headers: unknown header family "${part.trim()}" (use a comma list of ${FORWARD_HEADERS.join(', ')}, or none)`);
    if (!out.includes(h as ForwardHeader)) out.push(h as ForwardHeader);
  }
  return out;
}

function adminToken(file: string | undefined): string | undefined {
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new UsageError(`--admin-token-file: cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (text.length < 16) throw new UsageError('--admin-token-file: the token must be at least 16 characters');
    return text;
  }
  const env = process.env.TRELLIS_ADMIN_TOKEN;
  return env !== undefined && env.length >= 16 ? env : undefined;
}

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
    config: { type: 'string', short: 'c', description: 'YAML or JSON configuration file; flags override it; SIGHUP re-reads it', placeholder: 'file' },
    port: { type: 'string', short: 'p', description: 'port to listen on (default: 8080)', placeholder: 'port' },
    host: { type: 'string', description: 'address to listen on (default: 127.0.0.1)', placeholder: 'addr' },
    strategy: { type: 'string', description: 'strategy id (default: round-robin)', placeholder: 'id' },
    algorithm: { type: 'string', short: 'a', description: 'reference alias of --strategy (N2One, RoundRobin, …)', placeholder: 'policy' },
    backend: { type: 'string', short: 'b', multiple: true, description: 'a back-end, optionally weighted and tagged', placeholder: 'host:port[,weight=W][,tag=T]' },
    server: { type: 'string', short: 's', multiple: true, description: 'reference alias: a back-end port on localhost', placeholder: 'port' },
    'hash-on': { type: 'string', description: 'consistent-hash key: client-ip, header:NAME, cookie:NAME or path', placeholder: 'source' },
    'sticky-cookie': { type: 'string', description: 'consistent-hash: pin each client to its back-end with this cookie', placeholder: 'name' },
    mode: { type: 'string', description: 'http (per request) or tcp (per connection) (default: http)', placeholder: 'http|tcp' },
    engine: { type: 'string', description: 'HTTP mode engine: raw (own HTTP/1.1 framing) or undici (node:http + undici pools) (default: raw)', placeholder: 'raw|undici' },
    'admin-port': { type: 'string', description: 'serve /-/stats, /-/metrics, /-/health and /-/events on this port', placeholder: 'port' },
    'admin-token-file': { type: 'string', description: 'file holding the bearer token for admin writes (weights, reload); or set TRELLIS_ADMIN_TOKEN', placeholder: 'file' },
    'plugin-dir': pluginDirOption,
    watch: { type: 'boolean', description: 'reload a --plugin-dir plugin in place when its files change (development)' },
    'health-interval': { type: 'string', description: 'ms between health checks, 0 disables them (default: 2000)', placeholder: 'ms' },
    'health-timeout': { type: 'string', description: 'ms a health check may take (default: 1000)', placeholder: 'ms' },
    'health-path': { type: 'string', description: 'HTTP path to check (default: a TCP connect)', placeholder: 'path' },
    rise: { type: 'string', description: 'passing checks to mark a back-end up (default: 2)', placeholder: 'n' },
    fall: { type: 'string', description: 'failing checks to mark a back-end down (default: 3)', placeholder: 'n' },
    retries: { type: 'string', description: 'retries on another back-end for safe requests (default: 2)', placeholder: 'n' },
    'headers-timeout': { type: 'string', description: 'ms for a client to send its headers (default: 10000)', placeholder: 'ms' },
    'idle-timeout': { type: 'string', description: 'ms an idle client connection stays open (default: 30000)', placeholder: 'ms' },
    'upstream-timeout': { type: 'string', description: 'ms to wait for a back-end to answer (default: 30000)', placeholder: 'ms' },
    'drain-timeout': { type: 'string', description: 'ms to drain requests on shutdown (default: 5000)', placeholder: 'ms' },
    'max-connections': { type: 'string', default: '10000', description: 'open client connections in all; more are dropped at accept (0: no limit)', placeholder: 'n' },
    'max-connections-per-client': { type: 'string', default: '1000', description: 'open connections per client address; more get 429 (0: no limit)', placeholder: 'n' },
    'rate-limit': { type: 'string', default: '0', description: 'requests per second per client address, bursts up to it; more get 429 (0: off)', placeholder: 'n' },
    'max-pending': { type: 'string', default: '1024', description: 'requests queued per back-end when its connections are busy; more get 503', placeholder: 'n' },
    workers: { type: 'string', default: '1', description: 'balancer processes sharing the port (node:cluster); strategies and health checks are per worker, the admin port shows all', placeholder: 'n' },
    'backend-tls': { type: 'boolean', description: 'speak TLS to the back-ends, verifying their certificates (system roots, or --backend-ca)' },
    'backend-ca': { type: 'string', description: 'PEM CA bundle to verify back-end certificates with (implies --backend-tls)', placeholder: 'file' },
    'tls-cert': { type: 'string', multiple: true, description: 'terminate TLS with this PEM certificate (repeatable with --tls-key: the first is the default, the others picked by SNI); reloaded on SIGHUP', placeholder: 'file' },
    'tls-key': { type: 'string', multiple: true, description: 'the PEM private key of the --tls-cert in the same position', placeholder: 'file' },
    'forward-headers': { type: 'string', description: 'forwarding headers added to requests: a comma list of x-forwarded, forwarded, via, or none (default: all three); one left out passes through as the client sent it', placeholder: 'list' },
    'access-log': { type: 'string', description: 'write one JSON line per request to FILE (appended), or - for stdout', placeholder: 'file|-' },
    quiet: { type: 'boolean', short: 'q', description: 'do not log back-end state changes' },
  },
  examples: [
    'trellis lb --port 8080 --strategy round-robin --backend 127.0.0.1:5000 --backend 127.0.0.1:5001',
    'trellis lb -a LeastResponseTime -p 8080 -s 5000 -s 5001 -s 5002 -s 5003',
    'trellis lb -a RoundRobin -p 8080 -s 5000 5001 5002 5003 --admin-port 9090',
    'trellis lb --mode tcp --port 7000 --backend 10.0.0.5:7000 --backend 10.0.0.6:7000',
    'trellis lb --strategy consistent-hash --hash-on cookie:session --backend 127.0.0.1:5000,weight=2 --backend 127.0.0.1:5001',
    'trellis lb --config lb.yaml --admin-port 9090 --admin-token-file /run/secrets/lb-admin',
  ],
  async run({ values, positionals }, io) {
    const flagBackends: BackendAddress[] = (values.backend ?? []).map(backendOption);
    const ports = [...(values.server ?? []), ...positionals];
    if (positionals.length > 0 && !values.server?.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    for (const p of ports) flagBackends.push({ host: '127.0.0.1', port: intOption('s', p, { min: 1, max: 65535 })! });
    const file = values.config;
    /** The file's settings with every flag given on the command line on top. */
    const resolve = (cfg: LbConfigFile): Settings => {
      const backends = flagBackends.length > 0 ? flagBackends : (cfg.backends as BackendAddress[] | undefined) ?? [];
      if (backends.length === 0) throw new UsageError('give at least one back-end with --backend HOST:PORT (or -s PORT, or backends: in --config)');
      const mode = values.mode ?? cfg.mode ?? 'http';
      if (mode !== 'http' && mode !== 'tcp') throw new UsageError(`--mode must be http or tcp, got "${mode}"`);
      const engine = values.engine ?? cfg.engine ?? 'raw';
      if (engine !== 'raw' && engine !== 'undici') throw new UsageError(`--engine must be raw or undici, got "${engine}"`);
      const fileStrategy = typeof cfg.strategy === 'string' ? { id: cfg.strategy } : cfg.strategy;
      const flagStrategy = values.algorithm ?? values.strategy;
      const strategy = strategyId(flagStrategy ?? fileStrategy?.id ?? 'round-robin');
      const strategyOptions: Record<string, unknown> = { ...(flagStrategy === undefined || strategyId(flagStrategy) === fileStrategy?.id ? fileStrategy?.options : {}) };
      if (values['hash-on'] !== undefined) strategyOptions.hashOn = values['hash-on'];
      if (values['sticky-cookie'] !== undefined) strategyOptions.stickyCookie = values['sticky-cookie'];
      const hc = cfg.healthCheck === false ? undefined : (cfg.healthCheck ?? {});
      const interval = ms('health-interval', values['health-interval']) ?? (cfg.healthCheck === false ? 0 : (hc?.intervalMs ?? 2000));
      const t = cfg.timeouts ?? {};
      return {
        host: values.host ?? cfg.listen?.host ?? '127.0.0.1',
        port: portOption('port', values.port) ?? cfg.listen?.port ?? 8080,
        mode,
        engine,
        strategy,
        strategyOptions,
        backends,
        healthCheck:
          interval === 0
            ? false
            : {
                intervalMs: interval,
                timeoutMs: ms('health-timeout', values['health-timeout']) ?? hc?.timeoutMs ?? 1000,
                rise: intOption('rise', values.rise, { min: 1, max: 100 }) ?? hc?.rise ?? 2,
                fall: intOption('fall', values.fall, { min: 1, max: 100 }) ?? hc?.fall ?? 3,
                ...((values['health-path'] ?? hc?.path) ? { path: values['health-path'] ?? hc?.path } : {}),
              },
        retries: intOption('retries', values.retries, { min: 0, max: 10 }) ?? cfg.retries ?? 2,
        timeouts: {
          headersMs: ms('headers-timeout', values['headers-timeout']) ?? t.headersMs ?? 10_000,
          idleMs: ms('idle-timeout', values['idle-timeout']) ?? t.idleMs ?? 30_000,
          upstreamMs: ms('upstream-timeout', values['upstream-timeout']) ?? t.upstreamMs ?? 30_000,
          connectMs: t.connectMs ?? 3_000,
          requestMs: t.requestMs ?? 120_000,
        },
        drainMs: ms('drain-timeout', values['drain-timeout']) ?? t.drainMs ?? 5_000,
        adminPort: portOption('admin-port', values['admin-port']) ?? cfg.admin?.port,
        tokenFile: values['admin-token-file'] ?? cfg.admin?.tokenFile,
        pluginDirs: [...(values['plugin-dir'] ?? []), ...(cfg.pluginDirs ?? [])],
        forwardHeaders: forwardHeadersOption(values['forward-headers']) ?? cfg.forwardHeaders,
      };
    };
    const initial = resolve(file === undefined ? {} : await loadConfig(file));
    let current = initial;
    const { mode, strategy, backends } = initial;
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
    const adminPort = initial.adminPort;
    if (workers > 1 && cluster.isPrimary) {
      // the primary only forks, restarts, aggregates and drains: every worker runs this same command
      accessLog?.destroy(); // each worker opens the log itself (appends are line-atomic)
      const view = new WorkersView();
      const admin = adminPort !== undefined ? createAdminServer(view) : undefined;
      const drainMs = initial.drainMs;
      const onHupAll = () => {
        for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
      };
      // certificates and the configuration file are re-read by each worker
      if (tls !== undefined || file !== undefined) process.on('SIGHUP', onHupAll);
      const { listening, done } = runPrimary(workers, view, io.signal, drainMs, (line) => io.stderr.write(`${line}\n`));
      try {
        const addr = await listening;
        io.stdout.write(`lb: ${mode}${tls !== undefined ? ' (TLS)' : ''} mode on ${addr.host}:${addr.port}, ${workers} workers, strategy ${strategy} (per worker), back-ends ${backends.map((b) => `${b.host}:${b.port}`).join(' ')}\n`);
        if (admin) {
          const a = await admin.listen(adminPort, initial.host);
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
    const host = createCommandHost(import.meta.url, initial.pluginDirs);
    const balancer = await createBalancer({
      host,
      strategy,
      strategyOptions: initial.strategyOptions,
      backends,
      mode,
      engine: initial.engine,
      healthCheck: initial.healthCheck,
      retries: initial.retries,
      timeouts: initial.timeouts,
      ...(accessLog !== undefined ? { accessLog } : {}),
      ...(initial.forwardHeaders !== undefined ? { forwardHeaders: initial.forwardHeaders } : {}),
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
    // --watch: a changed plugin folder is reloaded in place (host.reload), requests keep flowing
    const watcher =
      values.watch && initial.pluginDirs.length > 0
        ? watchPlugins(host, initial.pluginDirs, {
            onReload: (id, r) =>
              r.error ? io.stderr.write(`lb: reload of plugin ${id} failed, the previous code keeps serving: ${r.error.message}\n`) : io.stderr.write(`lb: plugin ${id} reloaded\n`),
          })
        : undefined;
    if (values.watch && initial.pluginDirs.length === 0) io.stderr.write('lb: --watch ignored: no --plugin-dir to watch\n');
    // reloads run one at a time; a refused file changes nothing
    let reloading: Promise<unknown> = Promise.resolve();
    const reload = (): Promise<Record<string, unknown>> => {
      const run = reloading.then(async () => {
        const next = resolve(await loadConfig(file!));
        const summary = await applySettings(balancer, current, next);
        // what needs a restart keeps running as it was, and is reported again on the next reload
        current = { ...next, ...Object.fromEntries(RESTART_ONLY.map((k) => [k, current[k]])) };
        return summary;
      });
      reloading = run.catch(() => undefined);
      return run;
    };
    const onHangup = () => {
      if (file === undefined) {
        if (tls === undefined) io.stderr.write('lb: SIGHUP ignored: no --config file to re-read\n');
        return;
      }
      reload().then(
        (summary) => io.stdout.write(`lb: reloaded ${file}: ${JSON.stringify(summary)}\n`),
        (err: Error) => io.stderr.write(`lb: reload refused, the running configuration stays: ${err.message}\n`),
      );
    };
    process.on('SIGHUP', onHangup);
    // certificate reload on SIGHUP: its own small handler beside the configuration reload
    const onHup = () => {
      try {
        balancer.reloadTls();
        io.stderr.write('lb: TLS certificates reloaded\n');
      } catch (err) {
        io.stderr.write(`lb: TLS reload failed, keeping the current certificates: ${(err as Error).message}\n`);
      }
    };
    if (tls !== undefined) process.on('SIGHUP', onHup);
    const inWorker = cluster.isWorker && workers > 1;
    const token = adminToken(initial.tokenFile);
    const admin = initial.adminPort !== undefined && !inWorker ? createAdminServer(balancer, { token, ...(file !== undefined ? { reload } : {}) }) : undefined;
    let stopReporting: (() => void) | undefined;
    try {
      const addr = await balancer.listen(initial.port, initial.host);
      if (inWorker) {
        stopReporting = reportToPrimary(balancer);
        process.send!({ trellis: 'lb-listening', host: addr.host, port: addr.port });
      }
      io.stdout.write(`lb: ${mode}${tls !== undefined ? ' (TLS)' : ''} mode on ${addr.host}:${addr.port}, strategy ${strategy}, back-ends ${backends.map((b) => `${b.host}:${b.port}${b.weight !== undefined ? `,weight=${b.weight}` : ''}`).join(' ')}\n`);
      if (admin) {
        const a = await admin.listen(initial.adminPort, initial.host);
        io.stdout.write(`lb: admin on http://${a.host}:${a.port}/-/stats, /-/metrics and /-/events\n`);
      }
      await untilAborted(io.signal);
      io.stdout.write('lb: draining…\n');
    } finally {
      watcher?.dispose();
      process.off('SIGHUP', onHangup);
      process.off('SIGHUP', onHup);
      await admin?.close();
      await balancer.close({ timeoutMs: current.drainMs });
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
