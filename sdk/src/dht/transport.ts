/**
 * The transport abstraction the Chord node runs on: it sends and receives message objects
 * (`{ method, args }` dicts) addressed by `(host, port)`. The UDP transport pickles them into
 * datagrams; the in-process transport hands objects over through a simulated network.
 */
import type { Value } from '../areas/serialization.js';

export interface Address {
  readonly host: string;
  readonly port: number;
}

/** What goes on the wire: the reference's dict `{"method": NAME, "args": …}`. */
export interface WireMessage {
  readonly method: string;
  readonly args?: Value;
  /**
   * The Trellis wire version (`WIRE_VERSION`) on node-to-node messages; absent on the original
   * protocol's messages (`wire: 'reference'`) and on answers to clients.
   */
  readonly v?: number;
}

/** What the transport knows about a datagram besides its sender. */
export interface ReceiveMeta {
  /** True when the datagram carried a valid ring-key tag (always false on a transport without a key). */
  readonly authenticated: boolean;
  /** Set for a client's request that came over the stream side channel: the answer goes here. */
  readonly reply?: (message: WireMessage) => void;
}

/** Called for every message that arrived; `from` is the sender's socket address. */
export type Receiver = (message: unknown, from: Address, meta?: ReceiveMeta) => void;

/** Send options: whether to tag the datagram with the ring key, and where a late local error goes. */
export interface SendOptions {
  /** Tag with the ring key (node-to-node traffic); replies to clients go untagged. Default true. */
  readonly authenticate?: boolean;
  /** May a message too large for one datagram go over the stream side channel (verified peers only)? */
  readonly stream?: boolean;
  /** Called when the datagram could not leave this host after `send` returned (EMSGSIZE, …). */
  readonly onError?: (err: Error) => void;
}

export interface DhtTransport {
  /** The address this transport is bound to. */
  readonly address: Address;
  /** True when node-to-node datagrams are authenticated with a ring key. */
  readonly keyed?: boolean;
  /**
   * Sends one message; throws `SendError` when it cannot be encoded or is too large, and reports a
   * later local send failure to `options.onError`. Neither says anything about the peer.
   */
  send(to: Address, message: WireMessage, options?: SendOptions): void;
  /** The IPv4 address a host name stands for (UDP); absent on transports without names. */
  resolve?(host: string): Promise<string>;
  /** Sets the function incoming messages go to (the node). */
  onMessage(receiver: Receiver): void;
  /** Sets the function told about datagrams dropped before decoding (oversized, not decodable). */
  onDrop?(listener: (from: Address, reason: string) => void): void;
  close(): Promise<void>;
}

/** Creates bound transports: `bind(port, host)`, port 0 meaning any free port. */
export interface TransportFactory {
  bind(port: number, host: string): Promise<DhtTransport>;
}

export function addressKey(a: Address): string {
  return `${a.host}:${a.port}`;
}
