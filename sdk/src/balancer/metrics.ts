/** Prometheus text exposition (format 0.0.4) of a balancer's stats. */
import type { BalancerStats } from './balancer.js';

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function prometheusText(stats: BalancerStats): string {
  const lines: string[] = [];
  const lb = `balancer="${esc(stats.name)}"`;
  const family = (name: string, type: 'gauge' | 'counter', help: string, rows: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of rows) lines.push(`${name}{${labels}} ${Number.isFinite(value) ? value : 0}`);
  };
  const per = (pick: (b: BalancerStats['backends'][number]) => number): [string, number][] =>
    stats.backends.map((b) => [`${lb},backend="${esc(b.id)}"`, pick(b)]);
  family('trellis_lb_backend_up', 'gauge', 'Whether the back-end is healthy (1) or marked down (0).', per((b) => (b.healthy ? 1 : 0)));
  family('trellis_lb_backend_weight', 'gauge', 'The back-end\'s weight (0 = draining).', per((b) => b.weight));
  family('trellis_lb_backend_active', 'gauge', 'Requests (HTTP) or connections (TCP) in flight to the back-end.', per((b) => b.active));
  family('trellis_lb_backend_requests_total', 'counter', 'Requests or connections routed to the back-end that ended.', per((b) => b.requests));
  family('trellis_lb_backend_errors_total', 'counter', 'Of those, the ones that failed (connect error, reset, timeout, 5xx).', per((b) => b.errors));
  family('trellis_lb_backend_response_ms_mean', 'gauge', 'Mean response time in milliseconds.', per((b) => b.meanMs));
  family('trellis_lb_backend_response_ms_p99', 'gauge', '99th percentile response time over the recent window, in milliseconds.', per((b) => b.p99Ms));
  family('trellis_lb_backend_connections', 'gauge', 'Open keep-alive sockets to the back-end (raw engine).', per((b) => b.connections));
  family('trellis_lb_active', 'gauge', 'Requests or connections in flight.', [[lb, stats.active]]);
  family('trellis_lb_client_connections', 'gauge', 'Open client connections.', [[lb, stats.clientConnections]]);
  family('trellis_lb_requests_total', 'counter', 'Requests or connections routed to a back-end that ended.', [[lb, stats.requests]]);
  family('trellis_lb_local_responses_total', 'counter', 'Answers and events produced by the balancer itself, by kind.', [
    [`${lb},kind="bad_request"`, stats.badRequests],
    [`${lb},kind="no_backend"`, stats.noBackend],
    [`${lb},kind="upstream_error"`, stats.upstreamErrors],
    [`${lb},kind="timeout"`, stats.timeouts],
    [`${lb},kind="client_abort"`, stats.aborted],
    [`${lb},kind="retry"`, stats.retries],
    [`${lb},kind="rate_limited"`, stats.rateLimited],
    [`${lb},kind="client_connection_limited"`, stats.clientLimited],
    [`${lb},kind="queue_full"`, stats.queueFull],
  ]);
  family('trellis_lb_dropped_connections_total', 'counter', 'Client connections dropped at accept by the max-connections limit.', [[lb, stats.droppedConnections]]);
  family('trellis_lb_uptime_seconds', 'gauge', 'Seconds since the balancer was created.', [[lb, stats.uptimeMs / 1000]]);
  return lines.join('\n') + '\n';
}
