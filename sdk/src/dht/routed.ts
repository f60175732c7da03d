/**
 * Routed messages: the requests that travel the ring toward an identifier (SUCCESSOR, JOIN_REQ,
 * PUT, GET). Each forward adds the reference's `from` (where the answer goes) plus Trellis's
 * routing fields: `fwd` (acknowledged with HOP_ACK), `hops`, `route_hops`, `direct` (the sender
 * believes the receiver owns the target) and, when tracing, `path`.
 */
import type { Value } from '../areas/serialization.js';
import type { DhtNode } from '../areas/dht-routing.js';
import { ProtocolError } from '../errors.js';
import type { Address } from './transport.js';
import { readAddr, readId, readInt, readString, wireAddr, wireNode, type Args } from './wire.js';

export type RoutedMethod = 'SUCCESSOR' | 'JOIN_REQ' | 'PUT' | 'GET';

export const ROUTED: ReadonlySet<string> = new Set<RoutedMethod>(['SUCCESSOR', 'JOIN_REQ', 'PUT', 'GET']);

/** Fields a node adds when forwarding; rewritten at every hop. */
const ROUTING_FIELDS = new Set(['from', 'fwd', 'hops', 'route_hops', 'direct', 'path']);

export interface Routed {
  readonly method: RoutedMethod;
  readonly target: bigint;
  /** Where the answer goes. */
  readonly from: Address;
  readonly args: Args;
  /** Forwards so far. */
  readonly hops: number;
  /** Forwards so far, not counting a final step to the owner (the paper's path length). */
  readonly routeHops: number;
  readonly direct: boolean;
  readonly path: Value[] | undefined;
  /** Retries at this node after a next hop did not acknowledge. */
  readonly attempt: number;
}

/** Reads a routed request; `sender` is the answer address when the request has no `from`. */
export function readRouted(method: RoutedMethod, args: Args, sender: Address, hashOf: (key: string) => bigint): Routed {
  const from = args.from !== undefined && args.from !== null ? readAddr(args.from, 'from') : method === 'JOIN_REQ' ? readAddr(args.addr, 'addr') : sender;
  let target: bigint;
  if (method === 'PUT' || method === 'GET') {
    target = hashOf(readString(args.key, 'key'));
    if (method === 'PUT' && args.value === undefined) throw new ProtocolError('PUT needs a "value"');
  } else {
    target = readId(args.id, 'id');
    if (method === 'JOIN_REQ') readAddr(args.addr, 'addr');
  }
  const hops = args.hops === undefined ? 0 : readInt(args.hops, 'hops');
  const routeHops = args.route_hops === undefined ? hops : readInt(args.route_hops, 'route_hops');
  const path = args.path === undefined || args.path === null ? undefined : Array.isArray(args.path) ? [...args.path] : undefined;
  return { method, target, from, args, hops, routeHops, direct: args.direct === true, path, attempt: 0 };
}

/** The args of the next forward of `m` by node `self`. */
export function forwardArgs(m: Routed, self: DhtNode, fwd: number, direct: boolean): Record<string, Value> {
  const args: Record<string, Value> = {};
  for (const k in m.args) if (!ROUTING_FIELDS.has(k)) args[k] = m.args[k]!;
  args.from = wireAddr(m.from);
  args.fwd = fwd;
  args.hops = m.hops + 1;
  args.route_hops = m.routeHops + (direct ? 0 : 1);
  args.direct = direct;
  if (m.path) args.path = [...m.path, wireNode(self)];
  return args;
}
