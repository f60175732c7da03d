/**
 * Bench target: the Trellis balancer. `trellis.ts MODE PORT STRATEGY BACKEND_PORT…`, where MODE
 * is `http`, `tcp`, `http-undici` (HTTP mode on the undici engine), `http-plain` (HTTP mode
 * adding no forwarding headers, as the peers are configured) or `https` (TLS termination with the
 * PEM files in BENCH_TLS_CERT / BENCH_TLS_KEY). `run.ts` starts it without the `source` export
 * condition, so `@trellis/sdk` is the built `dist/` a user installs.
 */
import { createHost } from '@trellis/sdk';
import { createBalancer } from '@trellis/sdk/balancer';

const [mode, port, strategy, ...backends] = process.argv.slice(2);
const host = createHost();
const lb = await createBalancer({
  host,
  mode: mode === 'tcp' ? 'tcp' : 'http',
  engine: mode === 'http-undici' ? 'undici' : 'raw',
  strategy: strategy!,
  backends: backends.map((p) => ({ host: '127.0.0.1', port: Number(p) })),
  timeouts: { idleMs: 60_000 },
  ...(mode === 'http-plain' ? { forwardHeaders: [] } : {}),
  ...(mode === 'https' ? { tls: [{ cert: process.env.BENCH_TLS_CERT!, key: process.env.BENCH_TLS_KEY! }] } : {}),
});
await lb.listen(Number(port));
process.stdout.write(`ready ${port}\n`);
process.on('SIGTERM', () => void lb.close({ timeoutMs: 500 }).then(() => process.exit(0)));
