/**
 * An in-process network for simulations: every node gets a `DhtTransport` whose messages are
 * delivered by a `VirtualClock` after a fixed latency, so thousands of nodes run the same code as
 * on UDP without sockets or real time. Nodes can be crashed (messages to them vanish).
 */
import { VirtualClock } from './clock.js';
import { addressKey, type Address, type DhtTransport, type Receiver, type TransportFactory, type WireMessage } from './transport.js';
import { InvalidArgumentError } from '../errors.js';

export interface MemoryNetworkOptions {
  /** One-way delivery latency in virtual ms (default 1). */
  latencyMs?: number;
  clock?: VirtualClock;
}

export class MemoryNetwork implements TransportFactory {
  readonly clock: VirtualClock;
  readonly #latency: number;
  readonly #endpoints = new Map<string, MemoryTransport>();
  #nextPort = 1;
  #sent = 0;
  #lost = 0;

  constructor(options: MemoryNetworkOptions = {}) {
    this.clock = options.clock ?? new VirtualClock();
    this.#latency = options.latencyMs ?? 1;
  }

  async bind(port: number, host = 'sim'): Promise<DhtTransport> {
    const p = port === 0 ? this.#nextPort++ : port;
    const key = addressKey({ host, port: p });
    if (this.#endpoints.has(key)) throw new InvalidArgumentError(`${key} is already bound on this in-process network`);
    const t = new MemoryTransport(this, { host, port: p });
    this.#endpoints.set(key, t);
    return t;
  }

  /** Messages sent and messages that found no live endpoint. */
  stats(): { sent: number; lost: number; endpoints: number } {
    return { sent: this.#sent, lost: this.#lost, endpoints: this.#endpoints.size };
  }

  /** Makes `address` vanish at once, as if the machine crashed: no goodbye, messages are lost. */
  crash(address: Address): void {
    const t = this.#endpoints.get(addressKey(address));
    if (t) t.crashed = true;
    this.#endpoints.delete(addressKey(address));
  }

  /** @internal */
  deliver(from: Address, to: Address, message: WireMessage): void {
    this.#sent++;
    this.clock.schedule(this.#latency, () => {
      const target = this.#endpoints.get(addressKey(to));
      if (!target || target.crashed) {
        this.#lost++;
        return;
      }
      target.receive(message, from);
    });
  }

  /** @internal */
  unbind(t: MemoryTransport): void {
    const key = addressKey(t.address);
    if (this.#endpoints.get(key) === t) this.#endpoints.delete(key);
  }
}

class MemoryTransport implements DhtTransport {
  readonly address: Address;
  crashed = false;
  readonly #network: MemoryNetwork;
  #receiver: Receiver | undefined;

  constructor(network: MemoryNetwork, address: Address) {
    this.#network = network;
    this.address = Object.freeze({ ...address });
  }

  send(to: Address, message: WireMessage): void {
    if (this.crashed) return;
    this.#network.deliver(this.address, to, message);
  }

  onMessage(receiver: Receiver): void {
    this.#receiver = receiver;
  }

  receive(message: WireMessage, from: Address): void {
    this.#receiver?.(message, from);
  }

  async close(): Promise<void> {
    this.#network.unbind(this);
    this.#receiver = undefined;
  }
}
