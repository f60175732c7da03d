/**
 * The reference's policy names (`N2One`, `RoundRobin`, `LeastConnections`, `LeastResponseTime`)
 * and common spellings, mapped to the strategy plugin ids. Unknown names pass through, so a
 * custom strategy plugin is named by its own id.
 */
const ALIASES: Record<string, string> = {
  n2one: 'n-to-1',
  nto1: 'n-to-1',
  ntoone: 'n-to-1',
  n21: 'n-to-1',
  roundrobin: 'round-robin',
  rr: 'round-robin',
  leastconnections: 'least-connections',
  leastconn: 'least-connections',
  lc: 'least-connections',
  leastresponsetime: 'least-response-time',
  lrt: 'least-response-time',
};

export function strategyId(name: string): string {
  return ALIASES[name.toLowerCase().replace(/[-_\s]/g, '')] ?? name;
}
