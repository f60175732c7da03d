/**
 * @packageDocumentation
 * The embeddable Chord DHT node: one engine over a transport abstraction, with a UDP transport
 * speaking the reference's pickled datagrams and an in-process network for simulations.
 *
 * @example
 * ```ts
 * import { createHost } from '@trellis/sdk';
 * import { ChordNode, udpTransport } from '@trellis/sdk/dht';
 * const host = createHost();
 * const codec = await host.serialization.codec('pickle');
 * const routing = await host.dhtRouting.factory('chord-fingers');
 * const node = new ChordNode({ transport: udpTransport({ codec }), routing, hooks: host.dhtRouting.hooks });
 * await node.listen(5000, '127.0.0.1');
 * await node.join({ host: '127.0.0.1', port: 4000 });
 * ```
 */
export { ChordNode } from './node.js';
export type { DhtPersistence } from './key-store.js';
export type { ChordNodeOptions, ChordNodeEvents, LookupResult, DhtInfo } from './node-types.js';
export { fnv1aHash, sha1Hash, resolveHash, addressRepr, hashes, type DhtHash, type HashName } from './hash.js';
export { inHalfOpen, inOpen, ringDistance } from './ring.js';
export { realClock, VirtualClock, type Clock, type TimerHandle } from './clock.js';
export { MemoryNetwork, type MemoryNetworkOptions } from './memory-transport.js';
export { UdpTransport, udpTransport, MAX_DATAGRAM_BYTES, type UdpTransportOptions } from './udp-transport.js';
export { successorRouting } from './successor-routing.js';
export { DhtClient, type DhtClientOptions } from './client.js';
export { addressKey, type Address, type DhtTransport, type TransportFactory, type WireMessage, type Receiver } from './transport.js';
export { wireNode, wireAddr, wireId, readNode, readAddr, WIRE_VERSION, type WireMode } from './wire.js';
export { Simulation, checkRing, idealSuccessor, seededRandom, type SimulationOptions, type RingCheck } from './simulation.js';
export { createUdpNode, type UdpNodeOptions } from './create-node.js';
