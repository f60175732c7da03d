/**
 * The embeddable load balancer: HTTP (per request) and TCP (per connection) modes, strategies
 * from plugins, health checks, retries, timeouts, graceful drain, stats and Prometheus metrics.
 */
export { Balancer, createBalancer, parseBackend, type BalancerOptions, type BalancerMode, type HttpEngine, type BalancerTimeouts, type BalancerStats, type BalancerEvents, type RequestEvent } from './balancer.js';
export { AdminServer, createAdminServer, type AdminServerOptions, type AdminSource } from './admin-server.js';
export { prometheusText } from './metrics.js';
export { NoBackendError } from './errors.js';
export type { BackendAddress, BackendStats } from './backend-state.js';
export type { HealthCheckOptions } from './health-checker.js';
export { FORWARD_HEADERS, type ForwardHeader } from './forward-headers.js';
