/**
 * The Chord node engine. One class runs on any `DhtTransport` (UDP for real rings, the in-process
 * network for simulations): join through any node, stabilize/notify/check-predecessor and
 * fix-fingers on timers, a successor list of length r, key transfer on join and graceful leave,
 * replication of every key to k successors, and the reference's client protocol (`PUT`/`GET`
 * answered `ACK`/`NACK` on the client's own socket, forwarded across the ring with `from`).
 *
 * Routing asks the DHT routing table (a plugin, e.g. `chord-fingers`) for the closest preceding
 * node; without one it routes by successor only. Every forward is acknowledged hop by hop
 * (`HOP_ACK`), so a dead next hop is detected, dropped from the tables and routed around.
 */
import type { Value } from '../areas/serialization.js';
import type { DhtNode, DhtRoutingTable } from '../areas/dht-routing.js';
import { DisposedError, InvalidArgumentError, ProtocolError, StateError, TimeoutError, TrellisError } from '../errors.js';
import { createLogger, type Logger } from '../logger.js';
import { SafeEmitter } from '../safe-emitter.js';
import { realClock, type Clock, type TimerHandle } from './clock.js';
import { addressRepr, resolveHash, type DhtHash } from './hash.js';
import { KeyStore } from './key-store.js';
import { inHalfOpen, inOpen } from './ring.js';
import { successorRouting } from './successor-routing.js';
import type { Address, DhtTransport, WireMessage } from './transport.js';
import type { ChordNodeEvents, ChordNodeOptions, DhtInfo, LookupResult } from './node-types.js';
import { ROUTED, forwardArgs, readRouted, type Routed, type RoutedMethod } from './routed.js';
import {
  isArgs,
  readAddr,
  readEntries,
  readId,
  readInt,
  readNode,
  readNodes,
  chunkEntries,
  sameNode,
  wireAddr,
  wireId,
  wireNode,
  type Args,
} from './wire.js';


interface Pending {
  resolve(args: Args): void;
  reject(err: Error): void;
  timer: TimerHandle;
}

interface Forward {
  message: Routed;
  next: DhtNode;
  timer: TimerHandle;
}


export class ChordNode extends SafeEmitter<ChordNodeEvents> {
  readonly bits: number;
  readonly #opt: Required<Omit<ChordNodeOptions, 'identityHost' | 'id' | 'routing' | 'hooks' | 'logger' | 'routingOptions'>> & Pick<ChordNodeOptions, 'identityHost' | 'id' | 'routing' | 'hooks' | 'routingOptions'>;
  readonly #hash: DhtHash;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #store = new KeyStore();
  readonly #pending = new Map<number, Pending>();
  readonly #forwards = new Map<number, Forward>();
  readonly #timers = new Set<TimerHandle>();
  #transport: DhtTransport | undefined;
  #self: DhtNode | undefined;
  #table: DhtRoutingTable | undefined;
  #successors: DhtNode[] = [];
  #predecessor: DhtNode | undefined;
  #seq = 0;
  #replicaSignature = '';
  #fixing = false;
  #closed: Promise<void> | undefined;
  /** Consecutive unanswered stabilize / check-predecessor requests: one miss is not a failure. */
  #succMisses = 0;
  #predMisses = 0;
  #state: 'new' | 'running' | 'closing' | 'closed' = 'new';
  readonly #counters = { received: 0, sent: 0, dropped: 0, forwarded: 0, lookups: 0, puts: 0, gets: 0, failuresDetected: 0 };

  constructor(options: ChordNodeOptions) {
    super();
    const bits = options.bits ?? 10;
    this.#hash = resolveHash(options.hash ?? 'fnv1a', bits);
    this.bits = bits;
    const positive = (name: string, v: number | undefined, d: number) => {
      const x = v ?? d;
      if (!Number.isFinite(x) || x <= 0) throw new InvalidArgumentError(`${name} must be a positive number, got ${v}`);
      return x;
    };
    this.#opt = {
      transport: options.transport,
      identityHost: options.identityHost,
      bits,
      hash: options.hash ?? 'fnv1a',
      id: options.id,
      routing: options.routing,
      routingOptions: options.routingOptions,
      successors: Math.floor(positive('successors', options.successors, 4)),
      replicas: Math.max(0, Math.floor(options.replicas ?? 2)),
      clock: options.clock ?? realClock,
      stabilizeMs: positive('stabilizeMs', options.stabilizeMs, 250),
      fixFingersMs: positive('fixFingersMs', options.fixFingersMs, 500),
      checkPredecessorMs: positive('checkPredecessorMs', options.checkPredecessorMs, 500),
      rpcTimeoutMs: positive('rpcTimeoutMs', options.rpcTimeoutMs, 1000),
      hopTimeoutMs: positive('hopTimeoutMs', options.hopTimeoutMs, 1000),
      lookupTimeoutMs: positive('lookupTimeoutMs', options.lookupTimeoutMs, 3000),
      maxHops: positive('maxHops', options.maxHops, 4096),
      maintenance: options.maintenance ?? true,
      hooks: options.hooks,
    };
    this.#clock = this.#opt.clock;
    this.#log = options.logger ?? createLogger('trellis:dht');
  }

  protected override onListenerError(event: string | symbol, err: unknown): void {
    this.#log.error(`a listener of "${String(event)}" threw`, err);
  }

  // ------------------------------------------------------------------ lifecycle

  /** Binds the transport and starts as a ring of one. Returns the bound address. */
  async listen(port = 0, host = '127.0.0.1'): Promise<Address> {
    if (this.#state !== 'new') throw new StateError('listen() was already called on this node');
    const transport = await this.#opt.transport.bind(port, host);
    this.#transport = transport;
    const address = { host: this.#opt.identityHost ?? transport.address.host, port: transport.address.port };
    const id = this.#opt.id ?? this.hashOf(addressRepr(address.host, address.port));
    this.#self = Object.freeze({ id, host: address.host, port: address.port });
    const init = { self: this.#self, bits: this.bits, options: Object.freeze({ ...this.#opt.routingOptions }) };
    this.#table = (this.#opt.routing ?? successorRouting)(init);
    this.#successors = [this.#self];
    transport.onMessage((message, from) => this.#receive(message, from));
    transport.onDrop?.((from, reason) => this.#dropped(from, reason));
    this.#state = 'running';
    if (this.#opt.maintenance) this.startMaintenance();
    return transport.address;
  }

  /** Joins the ring that `bootstrap` belongs to (any member). Rejects after three unanswered tries. */
  async join(bootstrap: Address): Promise<DhtNode> {
    const self = this.#running();
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const rep = await this.#request(bootstrap, 'JOIN_REQ', { addr: wireAddr(self), id: wireId(self.id) }, this.#opt.lookupTimeoutMs);
        if (typeof rep.error === 'string') throw new InvalidArgumentError(`join refused by the ring: ${rep.error}`);
        const successor = { id: readId(rep.successor_id, 'successor_id'), ...readAddr(rep.successor_addr, 'successor_addr') };
        this.#predecessor = undefined;
        this.#setSuccessors([successor]);
        await this.stabilize();
        return successor;
      } catch (err) {
        if (!(err instanceof TimeoutError)) throw err;
        lastError = err;
      }
    }
    throw lastError;
  }

  /** Starts the stabilize, check-predecessor and fix-fingers timers (on by default). */
  startMaintenance(): void {
    const every = (ms: number, task: () => Promise<void> | void) => {
      // jitter spreads the timers of many nodes apart
      const tick = () => {
        if (this.#state !== 'running') return;
        const run = async () => {
          try {
            await task();
          } catch (err) {
            if (this.#state === 'running') this.#log.warn(`maintenance failed: ${(err as Error).message}`);
          }
        };
        void run().finally(() => this.#later(ms * (0.75 + Math.random() * 0.5), tick));
      };
      this.#later(ms * Math.random(), tick);
    };
    every(this.#opt.stabilizeMs, () => this.stabilize());
    every(this.#opt.checkPredecessorMs, () => this.checkPredecessor());
    every(this.#opt.fixFingersMs, () => this.fixFingers());
  }

  /**
   * Leaves gracefully: hands the keys it owns to its successor, tells its neighbours to link
   * past it, then closes the transport. Within `timeoutMs` overall (default 2 s).
   */
  close({ timeoutMs = 2000, graceful = true }: { timeoutMs?: number; graceful?: boolean } = {}): Promise<void> {
    this.#closed ??= this.#close(timeoutMs, graceful);
    return this.#closed;
  }

  async #close(timeoutMs: number, graceful: boolean): Promise<void> {
    const wasRunning = this.#state === 'running';
    this.#state = 'closing';
    if (wasRunning && graceful) {
      let timer: TimerHandle | undefined;
      const deadline = new Promise<void>((resolve) => (timer = this.#clock.schedule(timeoutMs, resolve)));
      await Promise.race([this.#leave().catch((err) => this.#log.warn(`graceful leave failed: ${(err as Error).message}`)), deadline]);
      timer?.cancel();
    }
    this.#state = 'closed';
    for (const t of this.#timers) t.cancel();
    this.#timers.clear();
    for (const f of this.#forwards.values()) f.timer.cancel();
    this.#forwards.clear();
    for (const p of this.#pending.values()) {
      p.timer.cancel();
      p.reject(new DisposedError('the DHT node'));
    }
    this.#pending.clear();
    await this.#transport?.close();
  }

  async #leave(): Promise<void> {
    const self = this.#self!;
    const succ = this.#successors[0]!;
    if (sameNode(succ, self)) return;
    const owned = this.#ownedEntries();
    for (const entries of chunkEntries(owned)) await this.#request(succ, 'TRANSFER', { entries }, this.#opt.rpcTimeoutMs);
    const pred = this.#predecessor;
    const notices = [this.#request(succ, 'LEAVE', { id: wireId(self.id), predecessor: pred ? wireNode(pred) : null }, this.#opt.rpcTimeoutMs)];
    if (pred && !sameNode(pred, succ)) {
      notices.push(this.#request(pred, 'LEAVE', { id: wireId(self.id), successors: this.#successors.map(wireNode) }, this.#opt.rpcTimeoutMs));
    }
    await Promise.allSettled(notices);
  }

  // -------------------------------------------------------------------- queries

  /** The node's own reference (after `listen`). */
  get self(): DhtNode {
    return this.#running();
  }

  get address(): Address {
    const s = this.#running();
    return { host: s.host, port: s.port };
  }

  get predecessor(): DhtNode | undefined {
    return this.#predecessor;
  }

  get successors(): readonly DhtNode[] {
    return this.#successors;
  }

  /** The identifier of `text` with this node's hash and bit width. */
  hashOf(text: string): bigint {
    return this.#hash(text, this.bits);
  }

  /** Whether this node is responsible for `id`: id ∈ (predecessor, self]. */
  owns(id: bigint): boolean {
    const self = this.#self!;
    if (this.#predecessor === undefined) return sameNode(this.#successors[0], self);
    return inHalfOpen(this.#predecessor.id, self.id, id);
  }

  info(): DhtInfo {
    const self = this.#running();
    return {
      id: self.id,
      address: { host: self.host, port: self.port },
      bits: this.bits,
      predecessor: this.#predecessor,
      successors: [...this.#successors],
      fingers: this.#table!.entries(),
      keys: this.#store.size,
    };
  }

  /** The reference INFO answer: `finger table as [[id, [host, port]], …]`. */
  wireInfo(): Value {
    const i = this.info();
    return {
      id: wireId(i.id),
      address: wireAddr(i.address),
      bits: i.bits,
      predecessor: i.predecessor ? wireNode(i.predecessor) : null,
      successors: i.successors.map(wireNode),
      fingers: i.fingers.map((n) => (n ? wireNode(n) : null)),
      keys: i.keys,
    };
  }

  stats(): Record<string, number | string> {
    return { id: String(this.#self?.id ?? ''), keys: this.#store.size, owned: this.#ownedEntries().length, ...this.#counters };
  }

  /** The value stored here under `key` (any role: owner or replica), for tests and tools. */
  localValue(key: string): Value | undefined {
    return this.#store.get(key)?.value;
  }

  /**
   * Finds the node responsible for `key` (a string is hashed; a bigint is an id), hop by hop.
   * `ownerShortcut: false` runs the paper's find_successor exactly: a key this node owns is not
   * answered locally but routed around the ring to its predecessor (for path-length comparisons).
   */
  async lookup(key: string | bigint, { trace = true, ownerShortcut = true } = {}): Promise<LookupResult> {
    const id = typeof key === 'string' ? this.hashOf(key) : key;
    return this.#findSuccessor(id, trace, false, ownerShortcut);
  }

  /** Stores `value` under `key` on its owner (from inside the process, not over a client socket). */
  async put(key: string, value: Value): Promise<void> {
    const rep = await this.#originate('PUT', key, { key, value });
    if (rep.method !== 'ACK') throw new ProtocolError(`PUT ${key} was refused (${rep.method})`);
  }

  /** Reads `key` from its owner; undefined when it is not stored. */
  async get(key: string): Promise<Value | undefined> {
    const rep = await this.#originate('GET', key, { key });
    return rep.method === 'ACK' ? rep.args : undefined;
  }

  /**
   * Starts from a known ring state instead of joining (simulations of large rings): sets the
   * predecessor and successor list and fills every routing entry with `successorOf(start)`.
   */
  warmStart(state: { predecessor: DhtNode | undefined; successors: readonly DhtNode[]; successorOf: (id: bigint) => DhtNode }): void {
    this.#running();
    this.#predecessor = state.predecessor;
    this.#setSuccessors(state.successors);
    for (const entry of this.#table!.refresh()) this.#table!.update(entry.index, state.successorOf(entry.start));
    this.#replicaSignature = '';
  }

  // ---------------------------------------------------------------- maintenance

  /**
   * One stabilize round: ask the successor for its predecessor and list, adopt, notify. When the
   * successor's predecessor lies between us, ask that node too (up to 16 steps), so a chain of
   * nodes that joined behind our successor is absorbed in one round instead of one per period.
   */
  async stabilize(): Promise<void> {
    const self = this.#running();
    for (let step = 0; step < 16; step++) {
      let succ = this.#successors[0]!;
      if (sameNode(succ, self)) {
        if (!this.#predecessor) return;
        this.#setSuccessors([this.#predecessor]);
        succ = this.#predecessor;
      }
      let rep: Args;
      try {
        rep = await this.#request(succ, 'PREDECESSOR', {}, this.#opt.rpcTimeoutMs);
        this.#succMisses = 0;
      } catch (err) {
        // a stalled peer (GC, a loaded machine) misses one deadline; a dead one misses two
        if (err instanceof TimeoutError && ++this.#succMisses >= 2) {
          this.#succMisses = 0;
          this.#peerFailed(succ);
        }
        return;
      }
      if (this.#state !== 'running' || !sameNode(this.#successors[0], succ)) return;
      const x = rep.predecessor_id === null || rep.predecessor_id === undefined ? undefined : { id: readId(rep.predecessor_id, 'predecessor_id'), ...readAddr(rep.predecessor_addr, 'predecessor_addr') };
      const list = readNodes(rep.successors ?? [], 'successors');
      const closer = x !== undefined && !sameNode(x, self) && inOpen(self.id, succ.id, x.id);
      this.#setSuccessors(closer ? [x, succ, ...list] : [succ, ...list]);
      if (closer) continue;
      const now = this.#successors[0]!;
      if (!sameNode(now, self)) this.#send(now, { method: 'NOTIFY', args: { predecessor_id: wireId(self.id), predecessor_addr: wireAddr(self) } });
      break;
    }
    this.#replicateIfChanged();
  }

  /** Pings the predecessor; forgets it when it does not answer. */
  async checkPredecessor(): Promise<void> {
    const pred = this.#predecessor;
    if (!pred) return;
    try {
      await this.#request(pred, 'PING', {}, this.#opt.rpcTimeoutMs);
    } catch (err) {
      if (err instanceof TimeoutError && sameNode(this.#predecessor, pred) && ++this.#predMisses >= 2) {
        this.#predMisses = 0;
        this.#peerFailed(pred);
      }
      return;
    }
    this.#predMisses = 0;
  }

  /**
   * One fix-fingers pass over the entries the routing table lists. Consecutive entries whose start
   * falls before the node found for the previous entry reuse it (successor(start) is the same), so
   * a pass costs about log N lookups however many bits the ring has.
   */
  async fixFingers(): Promise<void> {
    if (this.#fixing) return;
    this.#fixing = true;
    try {
      const self = this.#running();
      let last: DhtNode | undefined;
      for (const entry of this.#table!.refresh()) {
        if (this.#state !== 'running') return;
        let node: DhtNode;
        if (last && !sameNode(last, self) && inHalfOpen(self.id, last.id, entry.start)) node = last;
        else {
          try {
            node = (await this.#findSuccessor(entry.start, false, true)).node;
          } catch {
            last = undefined;
            continue;
          }
        }
        if (!sameNode(node, entry.node)) this.#table!.update(entry.index, node);
        last = node;
      }
    } finally {
      this.#fixing = false;
    }
  }

  // ------------------------------------------------------------------ receiving

  #receive(message: unknown, from: Address): void {
    if (this.#state !== 'running' && this.#state !== 'closing') return;
    this.#counters.received++;
    try {
      if (!isArgs(message) || typeof message.method !== 'string') throw new ProtocolError('a datagram must be a dict with a "method" string');
      const method = message.method;
      const args = message.args === undefined || message.args === null ? {} : message.args;
      if (!isArgs(args)) throw new ProtocolError(`${method}: "args" must be a dict`);
      this.#dispatch(method, args, from);
    } catch (err) {
      if (err instanceof TrellisError) return this.#dropped(from, err.message);
      // a bug must not take the node down: report it and keep serving everyone else
      this.#log.error(`handling a datagram from ${from.host}:${from.port} failed`, err instanceof Error ? err.stack ?? err.message : String(err));
      this.#dropped(from, `internal error: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  #dropped(from: Address, reason: string): void {
    this.#counters.dropped++;
    this.#log.warn(`dropped a datagram from ${from.host}:${from.port}: ${reason}`);
    this.emit('dropped', from, reason);
  }

  #dispatch(method: string, args: Args, from: Address): void {
    if (ROUTED.has(method)) {
      if (this.#state !== 'running') return; // leaving: unacknowledged, so the sender routes around us
      if (args.fwd !== undefined) this.#send(from, { method: 'HOP_ACK', args: { fwd: args.fwd } });
      return this.#route(readRouted(method as RoutedMethod, args, from, (key) => this.hashOf(key)));
    }
    switch (method) {
      case 'HOP_ACK': {
        const f = this.#forwards.get(readInt(args.fwd, 'fwd'));
        if (f) {
          f.timer.cancel();
          this.#forwards.delete(readInt(args.fwd, 'fwd'));
        }
        return;
      }
      case 'JOIN_REP':
      case 'SUCCESSOR_REP':
      case 'STABILIZE':
      case 'PONG':
      case 'TRANSFER_REP':
      case 'REPLICATE_REP':
      case 'LEAVE_REP':
        return this.#settle(args);
      case 'ACK':
      case 'NACK':
        return this.#settle(args, method);
      case 'PREDECESSOR': {
        const p = this.#predecessor;
        return this.#reply(from, 'STABILIZE', args, {
          predecessor_id: p ? wireId(p.id) : null,
          predecessor_addr: p ? wireAddr(p) : null,
          successors: this.#successors.map(wireNode),
        });
      }
      case 'NOTIFY':
        return this.#notified({ id: readId(args.predecessor_id, 'predecessor_id'), ...readAddr(args.predecessor_addr, 'predecessor_addr') });
      case 'PING':
        return this.#reply(from, 'PONG', args, {});
      case 'SUCCESSOR_HINT': {
        // checked like a stabilize answer: only a node between us and our successor is adopted
        const x = { id: readId(args.successor_id, 'successor_id'), ...readAddr(args.successor_addr, 'successor_addr') };
        const self = this.#self!;
        const succ = this.#successors[0]!;
        if (sameNode(x, self) || !inOpen(self.id, succ.id, x.id)) return;
        this.#setSuccessors([x, ...this.#successors]);
        this.#send(x, { method: 'NOTIFY', args: { predecessor_id: wireId(self.id), predecessor_addr: wireAddr(self) } });
        return;
      }
      case 'REPLICATE':
        for (const [key, value, version] of readEntries(args.entries, 'entries')) this.#store.merge(key, this.hashOf(key), value, version);
        if (args.rid !== undefined) this.#reply(from, 'REPLICATE_REP', args, {});
        return;
      case 'TRANSFER':
        for (const [key, value, version] of readEntries(args.entries, 'entries')) this.#store.merge(key, this.hashOf(key), value, version);
        this.#replicaSignature = ''; // newly owned keys go to the replicas at the next round
        return this.#reply(from, 'TRANSFER_REP', args, {});
      case 'LEAVE':
        this.#neighbourLeft(readId(args.id, 'id'), args);
        return this.#reply(from, 'LEAVE_REP', args, {});
      case 'LOOKUP': {
        // a client asks for the owner of a key and the path the lookup took (visualisation, CLI)
        const to = args.from !== undefined ? readAddr(args.from, 'from') : from;
        const key = typeof args.key === 'string' ? args.key : readId(args.id, 'id');
        if (this.#state !== 'running') return;
        this.lookup(key).then(
          (r) =>
            this.#send(to, {
              method: 'ACK',
              args: { id: wireId(r.id), node: wireNode(r.node), hops: r.hops, route_hops: r.routeHops, path: r.path.map(wireNode) },
            }),
          () => this.#send(to, { method: 'NACK' }),
        );
        return;
      }
      case 'INFO':
        return this.#send(args.from !== undefined ? readAddr(args.from, 'from') : from, { method: 'ACK', args: this.wireInfo() });
      default:
        throw new ProtocolError(`unknown method "${method.slice(0, 40)}"`);
    }
  }

  // -------------------------------------------------------------------- routing

  /** One routing step: handle the message here if this node owns the target, else forward it. */
  #route(m: Routed): void {
    const self = this.#self!;
    if (this.owns(m.target) || (m.direct && this.#predecessor === undefined)) return this.#deliver(m);
    if (m.hops >= this.#opt.maxHops) {
      this.#log.warn(`dropped ${m.method} for id ${m.target} after ${m.hops} hops`);
      if (m.method === 'PUT' || m.method === 'GET') this.#send(m.from, { method: 'NACK' });
      return;
    }
    const succ = this.#successors[0]!;
    if (m.direct) return this.#forward(m, this.#predecessor!, true); // a node joined between: step back
    if (inHalfOpen(self.id, succ.id, m.target)) return this.#forward(m, succ, true);
    let next = this.#closestPreceding(m.target);
    if (!next || sameNode(next, self)) next = succ;
    this.#forward(m, next, false);
  }

  #closestPreceding(id: bigint): DhtNode | undefined {
    try {
      return this.#table!.closestPrecedingNode(id);
    } catch (err) {
      this.#log.error(`the routing table threw in closestPrecedingNode: ${(err as Error).message}`);
      return undefined;
    }
  }

  #forward(m: Routed, next: DhtNode, direct: boolean): void {
    const self = this.#self!;
    const fwd = ++this.#seq;
    const args = forwardArgs(m, self, fwd, direct);
    this.#counters.forwarded++;
    const timer = this.#clock.schedule(this.#opt.hopTimeoutMs, () => {
      if (!this.#forwards.delete(fwd) || this.#state !== 'running') return;
      this.#peerFailed(next);
      if (m.attempt < 3) this.#route({ ...m, attempt: m.attempt + 1 });
      else this.#log.warn(`gave up forwarding ${m.method} for id ${m.target}: no next hop answered`);
    });
    this.#forwards.set(fwd, { message: m, next, timer });
    this.#send(next, { method: m.method, args });
  }

  /** This node owns the target: answer to `from`. */
  #deliver(m: Routed): void {
    const self = this.#self!;
    switch (m.method) {
      case 'SUCCESSOR':
        return this.#send(m.from, {
          method: 'SUCCESSOR_REP',
          args: {
            rid: m.args.rid ?? null,
            req_id: wireId(m.target),
            successor_id: wireId(self.id),
            successor_addr: wireAddr(self),
            hops: m.hops,
            route_hops: m.routeHops,
            ...(m.path ? { path: [...m.path, wireNode(self)] } : {}),
          },
        });
      case 'JOIN_REQ':
        if (m.target === self.id) {
          return this.#send(m.from, { method: 'JOIN_REP', args: { rid: m.args.rid ?? null, error: `id ${m.target} is taken by ${self.host}:${self.port}` } });
        }
        return this.#send(m.from, { method: 'JOIN_REP', args: { rid: m.args.rid ?? null, successor_id: wireId(self.id), successor_addr: wireAddr(self) } });
      case 'PUT': {
        const key = m.args.key as string;
        this.#counters.puts++;
        const entry = this.#store.write(key, m.target, m.args.value!);
        this.#replicate([[key, entry.value, entry.version]]);
        return this.#send(m.from, m.args.rid !== undefined ? { method: 'ACK', args: { rid: m.args.rid } } : { method: 'ACK' });
      }
      case 'GET': {
        this.#counters.gets++;
        const entry = this.#store.get(m.args.key as string);
        const rid = m.args.rid;
        if (!entry) return this.#send(m.from, rid !== undefined ? { method: 'NACK', args: { rid } } : { method: 'NACK' });
        return this.#send(m.from, rid !== undefined ? { method: 'ACK', args: { rid, value: entry.value } } : { method: 'ACK', args: entry.value });
      }
    }
  }

  /** Lookup from this node: answered locally when the successor covers it, else routed. */
  async #findSuccessor(id: bigint, trace: boolean, internal: boolean, ownerShortcut = true): Promise<LookupResult> {
    const self = this.#running();
    const succ = this.#successors[0]!;
    let result: LookupResult | undefined;
    if (this.owns(id) && (ownerShortcut || sameNode(succ, self))) result = { id, node: self, hops: 0, routeHops: 0, path: [self] };
    else if (internal && inHalfOpen(self.id, succ.id, id)) result = { id, node: succ, hops: 0, routeHops: 0, path: [self, succ] };
    if (!result) {
      let lastError: unknown;
      for (let attempt = 0; attempt < 2 && !result; attempt++) {
        try {
          const rep = await this.#routeRequest('SUCCESSOR', id, { id: wireId(id) }, trace, !ownerShortcut);
          const path = rep.path === undefined ? [] : readNodes(rep.path, 'path', this.#opt.maxHops + 2);
          result = {
            id,
            node: { id: readId(rep.successor_id, 'successor_id'), ...readAddr(rep.successor_addr, 'successor_addr') },
            hops: readInt(rep.hops, 'hops'),
            routeHops: readInt(rep.route_hops ?? rep.hops, 'route_hops'),
            path,
          };
        } catch (err) {
          lastError = err;
        }
      }
      if (!result) throw lastError;
    }
    if (!internal) {
      this.#counters.lookups++;
      const hooks = this.#opt.hooks;
      if (hooks?.lookup.isUsed()) hooks.lookup.call(self, id, result.hops);
      this.emit('lookup', result);
    }
    return result;
  }

  /** Starts a routed request at this node and waits for the reply carrying its rid. */
  #routeRequest(method: Routed['method'], target: bigint, args: Record<string, Value>, trace: boolean, skipOwn = false): Promise<Args> {
    const self = this.#self!;
    return new Promise<Args>((resolve, reject) => {
      const rid = ++this.#seq;
      const timer = this.#clock.schedule(this.#opt.lookupTimeoutMs, () => {
        if (this.#pending.delete(rid)) reject(new TimeoutError(`${method} for id ${target} got no answer within ${this.#opt.lookupTimeoutMs} ms`));
      });
      this.#pending.set(rid, { resolve, reject, timer });
      const full: Args = { ...args, rid };
      const m: Routed = { method, target, from: self, args: full, hops: 0, routeHops: 0, direct: false, path: trace ? [] : undefined, attempt: 0 };
      if (skipOwn && this.owns(target) && !inHalfOpen(self.id, this.#successors[0]!.id, target)) {
        // the paper's find_successor: start from the closest preceding finger even for our own key
        const next = this.#closestPreceding(target);
        this.#forward(m, next && !sameNode(next, self) ? next : this.#successors[0]!, false);
      } else this.#route(m);
    });
  }

  /** PUT/GET started inside the process: routed like a client's, answered with the rid. */
  async #originate(method: 'PUT' | 'GET', key: string, args: Record<string, Value>): Promise<{ method: string; args: Value | undefined }> {
    const rep = await this.#routeRequest(method, this.hashOf(key), args, false);
    return { method: rep.__method as string, args: rep.value };
  }

  // ----------------------------------------------------------- ring membership

  #notified(x: DhtNode): void {
    const self = this.#self!;
    if (sameNode(x, self)) return;
    const old = this.#predecessor;
    if (old !== undefined && (sameNode(old, x) || !inOpen(old.id, self.id, x.id))) return;
    const alone = sameNode(this.#successors[0], self);
    this.#predecessor = x;
    // keys in (old, x] now belong to x; a lone node hands over everything outside (x, self]
    const moving = old ? this.#store.select((id) => inHalfOpen(old.id, x.id, id)) : alone ? this.#store.select((id) => !inHalfOpen(x.id, self.id, id)) : [];
    if (moving.length > 0) void this.#push(x, 'TRANSFER', moving.map(([k, e]) => [k, e.value, e.version] as Value));
    if (alone) this.#setSuccessors([x]);
    // the old predecessor's successor is now x: tell it instead of waiting for its next stabilize
    if (old) this.#send(old, { method: 'SUCCESSOR_HINT', args: { successor_id: wireId(x.id), successor_addr: wireAddr(x) } });
    this.emit('predecessor-changed', x, old);
  }

  #neighbourLeft(id: bigint, args: Args): void {
    const gone = [this.#predecessor, ...this.#successors].find((n) => n?.id === id);
    if (!gone) return;
    if (this.#predecessor?.id === id) {
      const old = this.#predecessor;
      this.#predecessor = args.predecessor === null || args.predecessor === undefined ? undefined : readNode(args.predecessor, 'predecessor');
      if (sameNode(this.#predecessor, this.#self)) this.#predecessor = undefined;
      this.emit('predecessor-changed', this.#predecessor, old);
    }
    if (args.successors !== undefined) {
      const list = readNodes(args.successors, 'successors').filter((n) => n.id !== id);
      this.#setSuccessors([...list, ...this.#successors.filter((n) => n.id !== id)]);
    } else if (this.#successors.some((n) => n.id === id)) {
      this.#setSuccessors(this.#successors.filter((n) => n.id !== id));
    }
    this.#tableFailed(gone);
  }

  /** A peer stopped answering: drop it from the successor list, predecessor and routing table. */
  #peerFailed(node: DhtNode): void {
    const self = this.#self!;
    if (sameNode(node, self)) return;
    this.#counters.failuresDetected++;
    if (sameNode(this.#predecessor, node)) {
      const old = this.#predecessor;
      this.#predecessor = undefined;
      this.emit('predecessor-changed', undefined, old);
    }
    if (this.#successors.some((n) => sameNode(n, node))) this.#setSuccessors(this.#successors.filter((n) => !sameNode(n, node)));
    this.#tableFailed(node);
    this.emit('peer-failed', node);
  }

  #tableFailed(node: DhtNode): void {
    try {
      this.#table!.nodeFailed(node);
    } catch (err) {
      this.#log.error(`the routing table threw in nodeFailed: ${(err as Error).message}`);
    }
  }

  /** Sets the successor list: up to r nodes, cut where it comes back to this node. */
  #setSuccessors(list: readonly DhtNode[]): void {
    const self = this.#self!;
    const out: DhtNode[] = [];
    for (const n of list) {
      if (sameNode(n, self)) break;
      if (!out.some((o) => sameNode(o, n))) out.push(n);
      if (out.length >= this.#opt.successors) break;
    }
    if (out.length === 0) out.push(self);
    const previous = this.#successors[0]!;
    this.#successors = out;
    const now = out[0]!;
    if (!sameNode(previous, now)) {
      if (!sameNode(now, self)) {
        try {
          this.#table!.successorChanged(now);
        } catch (err) {
          this.#log.error(`the routing table threw in successorChanged: ${(err as Error).message}`);
        }
      }
      const hooks = this.#opt.hooks;
      if (hooks?.successorChanged.isUsed()) hooks.successorChanged.call(self, now);
      this.emit('successor-changed', now, previous);
    }
  }

  // --------------------------------------------------------------- replication

  #ownedEntries(): Value[] {
    return this.#store.select((id) => this.owns(id)).map(([k, e]) => [k, e.value, e.version]);
  }

  #replicaSet(): DhtNode[] {
    const self = this.#self!;
    return this.#successors.slice(0, this.#opt.replicas).filter((n) => !sameNode(n, self));
  }

  #replicate(entries: Value[]): void {
    for (const n of this.#replicaSet()) this.#send(n, { method: 'REPLICATE', args: { entries } });
  }

  /** Pushes every owned key to the replicas when the replica set or the owned range changed. */
  #replicateIfChanged(): void {
    const replicas = this.#replicaSet();
    const signature = `${this.#predecessor?.id ?? '-'}|${replicas.map((n) => n.id).join(',')}`;
    if (signature === this.#replicaSignature) return;
    this.#replicaSignature = signature;
    const owned = this.#ownedEntries();
    if (owned.length === 0) return;
    for (const n of replicas) void this.#push(n, 'REPLICATE', owned);
  }

  /**
   * Sends entries to `to` in datagram-sized batches, one acknowledged batch at a time (a burst of
   * large datagrams would overflow the receiver's socket buffer), retrying a batch once.
   */
  async #push(to: DhtNode, method: 'TRANSFER' | 'REPLICATE', entries: Value[]): Promise<void> {
    for (const batch of chunkEntries(entries)) {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.#request(to, method, { entries: batch }, this.#opt.rpcTimeoutMs);
          break;
        } catch (err) {
          if (this.#state !== 'running') return;
          if (attempt >= 1) {
            this.#log.warn(`${method} of ${batch.length} keys to ${to.host}:${to.port} failed: ${(err as Error).message}`);
            return;
          }
        }
      }
    }
  }

  // ----------------------------------------------------------------- messaging

  #request(to: Address, method: string, args: Record<string, Value>, timeoutMs: number): Promise<Args> {
    return new Promise<Args>((resolve, reject) => {
      const rid = ++this.#seq;
      const timer = this.#clock.schedule(timeoutMs, () => {
        if (this.#pending.delete(rid)) reject(new TimeoutError(`${method} to ${to.host}:${to.port} got no answer within ${timeoutMs} ms`));
      });
      this.#pending.set(rid, { resolve, reject, timer });
      this.#send(to, { method, args: { ...args, rid } });
    });
  }

  #settle(args: Args, method?: string): void {
    const rid = args.rid;
    if (typeof rid !== 'number') return;
    const p = this.#pending.get(rid);
    if (!p) return;
    this.#pending.delete(rid);
    p.timer.cancel();
    p.resolve(method ? { ...args, __method: method } : args);
  }

  #reply(to: Address, method: string, request: Args, args: Record<string, Value>): void {
    this.#send(to, { method, args: { ...args, rid: request.rid ?? null } });
  }

  #send(to: Address, message: WireMessage): void {
    const self = this.#self!;
    if (to.port === self.port && to.host === self.host) {
      // to ourselves (a lookup we started and answer): no datagram needed
      if (message.method === 'ACK' || message.method === 'NACK') return this.#settle(isArgs(message.args) ? message.args : {}, message.method);
      this.#later(0, () => this.#receive(message, to));
      return;
    }
    this.#counters.sent++;
    try {
      this.#transport!.send(to, message);
    } catch (err) {
      this.#log.warn(`could not send ${message.method} to ${to.host}:${to.port}: ${(err as Error).message}`);
    }
  }

  #later(ms: number, fn: () => void): void {
    const handle = this.#clock.schedule(ms, () => {
      this.#timers.delete(handle);
      fn();
    });
    this.#timers.add(handle);
  }

  #running(): DhtNode {
    if (!this.#self) throw new InvalidArgumentError('the DHT node is not listening yet; call listen() first');
    return this.#self;
  }
}
