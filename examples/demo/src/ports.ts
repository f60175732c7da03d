/**
 * The demo's port plan: everything on loopback, laid out from one base port so the demo never
 * collides with the reference defaults (5000–5004, 8080) and can be moved with `--port`.
 * Base 0 puts every service on an ephemeral port (tests).
 */
import { InvalidArgumentError } from '@trellis/sdk';

export interface PortPlan {
  readonly web: number;
  readonly balancer: number;
  readonly admin: number;
  readonly broker: number;
  /** The broker's WebSocket transport (the page's live topic tree). */
  readonly brokerWs: number;
  readonly pi: readonly number[];
  readonly chord: readonly number[];
}

export const DEFAULT_BASE_PORT = 8600;

export function portPlan(base: number, { backends = 4, nodes = 8 } = {}): PortPlan {
  const at = (offset: number) => (base === 0 ? 0 : base + offset);
  const need = 20 + nodes;
  if (base !== 0 && base + need > 65535) throw new InvalidArgumentError(`base port ${base} leaves no room for ${need} ports below 65536; use --port ${65535 - need} or lower`);
  return Object.freeze({
    web: at(0),
    balancer: at(1),
    admin: at(2),
    broker: at(3),
    brokerWs: at(4),
    pi: Object.freeze(Array.from({ length: backends }, (_, i) => at(10 + i))),
    chord: Object.freeze(Array.from({ length: nodes }, (_, i) => at(20 + i))),
  });
}
