/**
 * Wiring a UDP Chord node to a plugin host: the pickle codec and the routing policy come from
 * plugins (activated lazily), the node reports to the host's DHT routing hooks.
 */
import type { PluginHost } from '../plugin-host.js';
import type { DhtRoutingFactory } from '../areas/dht-routing.js';
import { InvalidArgumentError } from '../errors.js';
import { ChordNode } from './node.js';
import type { ChordNodeOptions } from './node-types.js';
import { udpTransport } from './udp-transport.js';

export interface UdpNodeOptions extends Omit<ChordNodeOptions, 'transport' | 'routing' | 'hooks'> {
  /** The DHT routing policy (default 'chord-fingers'); null routes by successor only. */
  routing?: string | null;
  /** The wire codec (default 'pickle', the reference's format). */
  codec?: string;
  /** Largest datagram accepted (default 65507). */
  maxDatagramBytes?: number;
  /** Largest message sent or accepted over the stream side channel (default 8 MiB). */
  maxStreamBytes?: number;
  /** The shared ring key: every node-to-node datagram is HMAC-SHA256-tagged with it. */
  ringKey?: Uint8Array;
}

/** Creates a `ChordNode` on UDP, not yet listening: call `listen(port, host)` then maybe `join`. */
export async function createUdpNode(host: PluginHost, options: UdpNodeOptions = {}): Promise<ChordNode> {
  if (options.wire === 'reference' && options.ringKey) throw new InvalidArgumentError('a ring key cannot be used with wire "reference": the original protocol has no tags');
  const codec = await host.serialization.codec(options.codec ?? 'pickle');
  const policy = options.routing === undefined ? 'chord-fingers' : options.routing;
  const routing: DhtRoutingFactory | undefined = policy === null ? undefined : await host.dhtRouting.factory(policy);
  const logger = options.logger ?? host.log.child('dht');
  const node = new ChordNode({
    ...options,
    transport: udpTransport({ codec, maxDatagramBytes: options.maxDatagramBytes, maxStreamBytes: options.maxStreamBytes, ringKey: options.ringKey, logger }),
    routing,
    hooks: host.dhtRouting.hooks,
    logger,
  });
  if (policy !== null) followRouting(host, node, policy);
  return node;
}

/**
 * Lifecycle reaches the node: when the plugin providing `policy` is deactivated or fails, the node
 * falls back to successor routing (and says so); when a provider of `policy` is registered again,
 * it re-adopts it (and a reloaded plugin's new table). The listeners leave the host when the node closes.
 */
function followRouting(host: PluginHost, node: ChordNode, policy: string): void {
  const live = () => !node.closing;
  const removed = (area: string, id: string, plugin: string): void => {
    if (area === 'dhtRouting' && id === policy && live()) node.setRouting(undefined, null, `plugin "${plugin}" unregistered ${policy}`);
  };
  const added = (area: string, id: string, plugin: string): void => {
    if (area !== 'dhtRouting' || id !== policy) return;
    // once the registering plugin's activation has finished
    queueMicrotask(() => {
      host.dhtRouting.factory(policy).then(
        (factory) => live() && node.setRouting(factory, policy, `plugin "${plugin}" registered ${policy}`),
        (err) => host.log.warn(`could not re-adopt DHT routing ${policy}: ${(err as Error).message}`),
      );
    });
  };
  host.on('provider-removed', removed);
  host.on('provider-added', added);
  host.on('provider-replaced', added); // a reload: the new code's table
  node.once('closed', () => {
    host.off('provider-removed', removed);
    host.off('provider-added', added);
    host.off('provider-replaced', added);
  });
}
