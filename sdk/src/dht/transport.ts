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
}

/** Called for every message that arrived; `from` is the sender's socket address. */
export type Receiver = (message: unknown, from: Address) => void;

export interface DhtTransport {
  /** The address this transport is bound to. */
  readonly address: Address;
  /** Sends one message; throws `ProtocolError` when it cannot be encoded or is too large. */
  send(to: Address, message: WireMessage): void;
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
