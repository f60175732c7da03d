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
import { randomInt } from 'node:crypto';
import type { Value } from '../areas/serialization.js';
import type { DhtNode, DhtRoutingFactory, DhtRoutingTable } from '../areas/dht-routing.js';
import { DisposedError, InvalidArgumentError, JoinError, ProtocolError, SendError, StateError, TimeoutError, TrellisError } from '../errors.js';
import { createLogger, type Logger } from '../logger.js';
import { SafeEmitter } from '../safe-emitter.js';
import { realClock, type Clock, type TimerHandle } from './clock.js';
import { addressRepr, resolveHash, type DhtHash } from './hash.js';
import { KeyStore } from './key-store.js';
import { inHalfOpen, inOpen } from './ring.js';
import { successorRouting } from './successor-routing.js';
import { addressKey, type Address, type DhtTransport, type ReceiveMeta, type WireMessage } from './transport.js';
import type { ChordNodeEvents, ChordNodeOptions, DhtInfo, LookupResult } from './node-types.js';
import { ROUTED, forwardArgs, readRouted, type Routed, type RoutedMethod } from './routed.js';
import {
  isArgs,
  readAddr,
  readEntries,
  readId,
  readInt,
  readNode,
  readString,
  readNodes,
  chunkEntries,
  approxSize,
  sameNode,
  wireAddr,
  wireId,
  wireNode,
  WIRE_VERSION,
  type Args,
} from './wire.js';


interface Pending {
  resolve(args: Args, from: Address): void;
  reject(err: Error): void;
  timer: TimerHandle;
  /** The node asked: the reply must come from this address (absent for routed requests). */
  to?: Address;
}

/** A token bucket: `rate` tokens a second, holding at most `burst`. */
interface Bucket {
  tokens: number;
  at: number;
}

/** How long a verified source stays verified without a new round trip. */
const MEMBER_TTL_MS = 300_000;
/** Most sources tracked for rate limits and membership (oldest forgotten first). */
const MAX_TRACKED = 8192;
/** Methods a client (or, with a ring key, anyone without the key) may send. */
const CLIENT_METHODS: ReadonlySet<string> = new Set(['PUT', 'GET', 'INFO', 'LOOKUP', 'ACK', 'NACK']);

/**
 * Random request ids: a stranger cannot guess one to forge a reply (2^31 values against a reply
 * window of about a second). 31 bits keep them in pickle's 4-byte BININT: wider ids would travel
 * as LONG1 and decode as big integers, which costs on every datagram.
 */
function newRid(): number {
  return randomInt(1, 2 ** 31 - 1);
}

interface Forward {
  message: Routed;
  next: DhtNode;
  timer: TimerHandle;
}


export class ChordNode extends SafeEmitter<ChordNodeEvents> {
  readonly bits: number;
  readonly #opt: Required<Omit<ChordNodeOptions, 'identityHost' | 'id' | 'routing' | 'hooks' | 'logger' | 'routingOptions' | 'persistence'>> & Pick<ChordNodeOptions, 'identityHost' | 'id' | 'routing' | 'hooks' | 'routingOptions' | 'persistence'>;
  /** Verified ring members by socket address (`ip:port`): proven by a PING round trip. */
  readonly #members = new Map<string, { node: DhtNode; until: number }>();
  readonly #verifying = new Map<string, Promise<DhtNode | undefined>>();
  /** Host names resolved to the IPs datagrams come from. */
  readonly #ips = new Map<string, string>();
  readonly #inBuckets = new Map<string, Bucket>();
  readonly #outBuckets = new Map<string, Bucket>();
  readonly #hash: DhtHash;
  /** Recent short texts and their ids (keys and address reprs are hashed again at every hop). */
  readonly #hashes = new Map<string, bigint>();
  readonly #clock: Clock;
  readonly #log: Logger;
  #store = new KeyStore();
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
  /** Speaks the original node protocol (REFERENCE.md §3) instead of Trellis's versioned wire. */
  readonly #ref: boolean;
  /** Reference mode: socket addresses that answered a PREDECESSOR from themselves recently. */
  readonly #refProven = new Map<string, number>();
  readonly #refProving = new Map<string, Promise<boolean>>();
  /** Reference mode: who waits for a STABILIZE from a socket address. */
  readonly #refAsks = new Map<string, ((id: bigint | undefined) => void)[]>();
  /** Reference mode: lookups waiting for a SUCCESSOR_REP, by req_id. */
  readonly #refLookups = new Map<bigint, ((node: DhtNode) => void)[]>();
  /** Reference mode: nodes whose id is the hash of their address, seen in checked messages. */
  readonly #refKnown = new Map<bigint, DhtNode>();
  /** Reference mode: the one rid-less ACK/NACK awaited (put/get started here, key hand-over). */
  #refReply: ((method: string, args: Value | undefined) => void) | undefined;
  #refChain: Promise<unknown> = Promise.resolve();
  /** Reference mode: the JOIN_REP awaited while joining. */
  #refJoin: ((args: Args, from: Address) => void) | undefined;
  readonly #counters = {
    received: 0,
    sent: 0,
    dropped: 0,
    forwarded: 0,
    lookups: 0,
    puts: 0,
    gets: 0,
    failuresDetected: 0,
    /** Datagrams refused by the per-source rate limit. */
    rateLimited: 0,
    /** Requests whose `from` was ignored (answered to the real source instead). */
    reflectionRefused: 0,
    /** Replies to unverified addresses dropped by the reply byte budget. */
    replyBudgetDropped: 0,
    /** Membership claims refused: id not the hash of the address, wrong source, no round trip. */
    membershipRefused: 0,
    /** Replies that did not come from the node asked. */
    spoofedReplies: 0,
    /** Node-to-node datagrams without a valid ring-key tag (keyed rings). */
    unauthenticated: 0,
    /** Messages that could not leave this host (encoding, size, local socket error). */
    sendErrors: 0,
    /** Node-to-node messages of another wire version (or none: the original protocol), dropped. */
    wireVersion: 0,
  };

  constructor(options: ChordNodeOptions) {
    super();
    const bits = options.bits ?? 10;
    this.#hash = resolveHash(options.hash ?? 'fnv1a', bits);
    this.bits = bits;
    this.#ref = options.wire === 'reference';
    if (options.wire !== undefined && options.wire !== 'trellis' && options.wire !== 'reference') throw new InvalidArgumentError(`wire must be "trellis" or "reference", got ${String(options.wire)}`);
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
      // the original protocol has no REPLICATE: a reference-mode node keeps one copy, as the original
      replicas: this.#ref ? 0 : Math.max(0, Math.floor(options.replicas ?? 2)),
      clock: options.clock ?? realClock,
      stabilizeMs: positive('stabilizeMs', options.stabilizeMs, 250),
      fixFingersMs: positive('fixFingersMs', options.fixFingersMs, 500),
      checkPredecessorMs: positive('checkPredecessorMs', options.checkPredecessorMs, 500),
      rpcTimeoutMs: positive('rpcTimeoutMs', options.rpcTimeoutMs, 1000),
      hopTimeoutMs: positive('hopTimeoutMs', options.hopTimeoutMs, 1000),
      lookupTimeoutMs: positive('lookupTimeoutMs', options.lookupTimeoutMs, 3000),
      maxHops: positive('maxHops', options.maxHops, 4096),
      maintenance: options.maintenance ?? true,
      verifyIds: options.verifyIds ?? options.id === undefined,
      rateLimit: Math.max(0, options.rateLimit ?? 5000),
      replyBudget: Math.max(0, options.replyBudget ?? 2 * 1024 * 1024),
      maxValueBytes: Math.max(1, options.maxValueBytes ?? 4 * 1024 * 1024),
      persistence: options.persistence,
      hooks: options.hooks,
      wire: this.#ref ? 'reference' : 'trellis',
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
    // a restarted node comes back with the keys it had (ids from the hash: bits/hash may differ)
    if (this.#opt.persistence) this.#store = new KeyStore(this.#opt.persistence, (key) => this.hashOf(key));
    const init = { self: this.#self, bits: this.bits, options: Object.freeze({ ...this.#opt.routingOptions }) };
    this.#table = (this.#opt.routing ?? successorRouting)(init);
    this.#successors = [this.#self];
    transport.onMessage((message, from, meta) => this.#receive(message, from, meta));
    void this.#resolveHost(address.host);
    transport.onDrop?.((from, reason) => this.#dropped(from, reason));
    this.#state = 'running';
    if (this.#opt.maintenance) this.startMaintenance();
    return transport.address;
  }

  /** Joins the ring that `bootstrap` belongs to (any member). Rejects after three unanswered tries. */
  async join(bootstrap: Address): Promise<DhtNode> {
    const self = this.#running();
    const where = `${bootstrap.host}:${bootstrap.port}`;
    if (this.#ref) return this.#joinReference(bootstrap, where);
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      let rep: Args;
      let from: Address;
      try {
        ({ args: rep, from } = await this.#call(bootstrap, 'JOIN_REQ', { addr: wireAddr(self), id: wireId(self.id) }, this.#opt.lookupTimeoutMs, false));
      } catch (err) {
        if (err instanceof TimeoutError) {
          lastError = err;
          continue;
        }
        throw new JoinError(`cannot join through ${where}: ${(err as Error).message}`, { cause: err });
      }
      if (typeof rep.error === 'string') throw new JoinError(`join refused by the ring at ${where}: ${rep.error}`);
      let successor: DhtNode;
      try {
        successor = { id: readId(rep.successor_id, 'successor_id'), ...readAddr(rep.successor_addr, 'successor_addr') };
      } catch (err) {
        throw new JoinError(`malformed JOIN_REP from ${from.host}:${from.port}: ${(err as Error).message}`);
      }
      if (!this.#idOk(successor) || !(await this.#sameAddress(successor, from))) {
        this.#counters.membershipRefused++;
        throw new JoinError(`the JOIN_REP from ${from.host}:${from.port} names a successor (${successor.id} at ${successor.host}:${successor.port}) that does not check out`);
      }
      this.#remember(successor, from);
      this.#predecessor = undefined;
      this.#setSuccessors([successor]);
      await this.stabilize();
      return successor;
    }
    throw new JoinError(`no answer from ${where} after 3 tries: ${(lastError as Error)?.message ?? 'timeout'}`);
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
    await this.#opt.persistence?.close();
    this.emit('closed');
  }

  async #leave(): Promise<void> {
    const self = this.#self!;
    const succ = this.#successors[0]!;
    if (sameNode(succ, self)) return;
    if (this.#ref) {
      // the original has no LEAVE: hand the keys to the successor as PUTs; the ring heals as the original's does
      return this.#refHandOver(succ, this.#store.select((id) => this.owns(id)).map(([k, e]) => [k, e.value]));
    }
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

  /** True once `close()` has started. */
  get closing(): boolean {
    return this.#state === 'closing' || this.#state === 'closed';
  }

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
    // every hop and every replica hashes the key again; SHA-1 through node:crypto costs ~1.5 µs
    if (text.length > 256) return this.#hash(text, this.bits);
    let id = this.#hashes.get(text);
    if (id === undefined) {
      id = this.#hash(text, this.bits);
      if (this.#hashes.size >= 4096) this.#hashes.clear();
      this.#hashes.set(text, id);
    }
    return id;
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
      counters: { ...this.#counters },
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
    if (rep.method !== 'ACK') throw new ProtocolError(`PUT ${key} was refused${rep.error ? `: ${rep.error}` : ` (${rep.method})`}`);
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

  /**
   * Swaps the routing table at run time (issue 10: the routing plugin went away or came back).
   * `factory` undefined falls back to successor-only routing. The new table starts from the current
   * successor and is filled by the next fix-fingers pass; routing goes on meanwhile (an empty table
   * routes by successor). Emits `routing-changed` and logs the change.
   */
  setRouting(factory: DhtRoutingFactory | undefined, policy: string | null, reason: string): void {
    if (this.#state === 'new') {
      this.#opt.routing = factory; // listen() builds the table
      this.emit('routing-changed', factory ? policy : null, reason);
      return;
    }
    const self = this.#running();
    const table = (factory ?? successorRouting)({ self, bits: this.bits, options: Object.freeze({ ...this.#opt.routingOptions }) });
    const succ = this.#successors[0]!;
    if (!sameNode(succ, self)) {
      try {
        table.successorChanged(succ);
      } catch (err) {
        this.#log.error(`the routing table threw in successorChanged: ${(err as Error).message}`);
      }
    }
    this.#table = table;
    if (factory) this.#log.info(`routing by ${policy ?? 'a custom table'} again (${reason})`);
    else this.#log.warn(`routing plugin gone, falling back to successor routing (${reason})`);
    this.emit('routing-changed', factory ? policy : null, reason);
    if (factory && this.#opt.maintenance) void this.fixFingers().catch(() => undefined);
  }

  // ---------------------------------------------------------------- maintenance

  /**
   * One stabilize round: ask the successor for its predecessor and list, adopt, notify. When the
   * successor's predecessor lies between us, ask that node too (up to 16 steps), so a chain of
   * nodes that joined behind our successor is absorbed in one round instead of one per period.
   */
  async stabilize(): Promise<void> {
    if (this.#ref) return this.#stabilizeReference();
    const self = this.#running();
    /** A closer node the successor named: adopted only once it answers from its own address. */
    let candidate: DhtNode | undefined;
    for (let step = 0; step < 16; step++) {
      let succ = candidate ?? this.#successors[0]!;
      if (sameNode(succ, self)) {
        if (!this.#predecessor) return;
        this.#setSuccessors([this.#predecessor]);
        succ = this.#predecessor;
      }
      let rep: Args;
      const previous = this.#successors[0];
      try {
        rep = await this.#request(succ, 'PREDECESSOR', {}, this.#opt.rpcTimeoutMs);
        if (!candidate) this.#succMisses = 0;
        if (this.#idOk(succ)) this.#remember(succ); // it answered from its own address
      } catch (err) {
        // a named node that never answers is simply not adopted; the successor still hears from us
        if (candidate) {
          const now = this.#successors[0]!;
          if (!sameNode(now, self)) this.#send(now, { method: 'NOTIFY', args: { predecessor_id: wireId(self.id), predecessor_addr: wireAddr(self) } });
          break;
        }
        // a stalled peer (GC, a loaded machine) misses one deadline; a dead one misses two
        if (err instanceof TimeoutError && ++this.#succMisses >= 2) {
          this.#succMisses = 0;
          this.#peerFailed(succ);
        }
        return;
      }
      if (this.#state !== 'running' || !sameNode(this.#successors[0], previous)) return;
      if (candidate) {
        // the round trip proved the candidate holds its address
        this.#setSuccessors([candidate, ...this.#successors]);
        candidate = undefined;
      }
      const x = rep.predecessor_id === null || rep.predecessor_id === undefined ? undefined : { id: readId(rep.predecessor_id, 'predecessor_id'), ...readAddr(rep.predecessor_addr, 'predecessor_addr') };
      const list = readNodes(rep.successors ?? [], 'successors').filter((n) => this.#idOk(n));
      const closer = x !== undefined && !sameNode(x, self) && inOpen(self.id, succ.id, x.id) && this.#idOk(x);
      this.#setSuccessors([succ, ...list]);
      if (closer) {
        candidate = x;
        continue;
      }
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
      // the original protocol has no PING: asking the predecessor for its predecessor is the round trip
      if (this.#ref) await this.#refAsk(pred);
      else await this.#request(pred, 'PING', {}, this.#opt.rpcTimeoutMs);
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
      const table = this.#table!; // a swapped table (setRouting) starts its own pass
      let last: DhtNode | undefined;
      for (const entry of table.refresh()) {
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
        if (!sameNode(node, entry.node)) table.update(entry.index, node);
        last = node;
      }
    } finally {
      this.#fixing = false;
    }
  }

  // ------------------------------------------------------------------ receiving

  #receive(message: unknown, from: Address, meta?: ReceiveMeta): void {
    if (this.#state !== 'running' && this.#state !== 'closing') return;
    this.#counters.received++;
    const authenticated = meta?.authenticated === true;
    const member = authenticated || this.#isMember(from);
    if (!member && !this.#admit(from)) {
      this.#counters.rateLimited++;
      return;
    }
    try {
      if (!isArgs(message) || typeof message.method !== 'string') throw new ProtocolError('a datagram must be a dict with a "method" string');
      const method = message.method;
      if (this.#ref) return this.#receiveReference(method, message.args, from, member, meta);
      const v = message.v;
      // node-to-node messages carry this wire's version; clients (and their answers) need none
      if (v !== WIRE_VERSION && (v !== undefined || !CLIENT_METHODS.has(method))) return this.#wrongVersion(method, message.args, v, from);
      const args = message.args === undefined || message.args === null ? {} : message.args;
      if (!isArgs(args)) throw new ProtocolError(`${method}: "args" must be a dict`);
      if (this.#transport?.keyed && !authenticated && !CLIENT_METHODS.has(method)) {
        this.#counters.unauthenticated++;
        throw new ProtocolError(`${method.slice(0, 40)} without a valid ring-key tag`);
      }
      if (meta?.reply) return this.#streamClient(method, args, meta.reply);
      this.#dispatch(method, args, from, member, authenticated);
    } catch (err) {
      if (err instanceof TrellisError) return this.#dropped(from, err.message);
      // a bug must not take the node down: report it and keep serving everyone else
      this.#log.error(`handling a datagram from ${from.host}:${from.port} failed`, err instanceof Error ? err.stack ?? err.message : String(err));
      this.#dropped(from, `internal error: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  /** A client's request over the stream side channel (large values): run here, answered on its connection. */
  #streamClient(method: string, args: Args, reply: (message: WireMessage) => void): void {
    const fail = (err: unknown) => reply({ method: 'NACK', args: { error: (err as Error)?.message ?? String(err) } });
    switch (method) {
      case 'PUT': {
        const key = readString(args.key, 'key');
        if (args.value === undefined) throw new ProtocolError('PUT needs a "value"');
        const size = approxSize(args.value);
        if (size > this.#opt.maxValueBytes) return reply({ method: 'NACK', args: { error: `the value is about ${size} bytes, over this ring's ${this.#opt.maxValueBytes}-byte limit` } });
        this.put(key, args.value).then(() => reply({ method: 'ACK' }), fail);
        return;
      }
      case 'GET':
        this.get(readString(args.key, 'key')).then((v) => reply(v === undefined ? { method: 'NACK' } : { method: 'ACK', args: v }), fail);
        return;
      case 'INFO':
        return reply({ method: 'ACK', args: this.wireInfo() });
      default:
        throw new ProtocolError(`${method.slice(0, 40)} is not a client request`);
    }
  }

  #dropped(from: Address, reason: string): void {
    this.#counters.dropped++;
    this.#log.warn(`dropped a datagram from ${from.host}:${from.port}: ${reason}`);
    this.emit('dropped', from, reason);
  }

  /** Where a client-style request is answered: `from` only when it is the real source, else the source. */
  #answerAddress(args: Args, from: Address): Address {
    if (args.from === undefined || args.from === null) return from;
    const claimed = readAddr(args.from, 'from');
    // a name this node never resolved may still be the source: answer the source without counting
    if (claimed.port !== from.port || (claimed.host !== from.host && (this.#ips.get(claimed.host) ?? from.host) !== from.host) || /^\d+\.\d+\.\d+\.\d+$/.test(claimed.host) && claimed.host !== from.host) {
      this.#counters.reflectionRefused++;
    }
    return from;
  }

  #refuse(from: Address, reason: string): void {
    this.#counters.membershipRefused++;
    this.#dropped(from, reason);
  }

  /** Runs `fn` once `from` is a verified ring member; counts and drops the message otherwise. */
  #asMember(from: Address, member: boolean, what: string, fn: (node: DhtNode | undefined) => void): void {
    if (member) return fn(this.#members.get(addressKey(from))?.node);
    void this.#verifySource(from).then((node) => {
      if (this.#state !== 'running' && this.#state !== 'closing') return;
      if (!node) {
        this.#counters.membershipRefused++;
        return this.#dropped(from, `${what} from a source that is not a verified ring member`);
      }
      try {
        fn(node);
      } catch (err) {
        this.#dropped(from, (err as Error).message);
      }
    });
  }

  #dispatch(method: string, args: Args, from: Address, member: boolean, authenticated: boolean): void {
    if (ROUTED.has(method)) {
      if (this.#state !== 'running') return; // leaving: unacknowledged, so the sender routes around us
      const forwarded = args.fwd !== undefined && args.fwd !== null;
      if (!forwarded) {
        // a client's request (or a joining node's): the answer goes back to where it came from
        if (method === 'JOIN_REQ') {
          const joiner = { id: readId(args.id, 'id'), ...readAddr(args.addr, 'addr') };
          if (!this.#idOk(joiner)) {
            this.#counters.membershipRefused++;
            return this.#send(from, { method: 'JOIN_REP', args: { rid: args.rid ?? null, error: `id ${joiner.id} is not the hash of ${joiner.host}:${joiner.port}` } });
          }
        }
        const answer = this.#answerAddress(method === 'JOIN_REQ' ? { from: args.addr! } : args, from);
        return this.#route(readRouted(method as RoutedMethod, { ...args, from: wireAddr(answer) }, from, (key) => this.hashOf(key)));
      }
      this.#send(from, { method: 'HOP_ACK', args: { fwd: args.fwd! } });
      // a forward: `from` (the answer address) is trusted only from a verified ring member
      if (member) return this.#route(readRouted(method as RoutedMethod, args, from, (key) => this.hashOf(key)));
      return this.#asMember(from, false, method, () => {
        if (this.#state === 'running') this.#route(readRouted(method as RoutedMethod, args, from, (key) => this.hashOf(key)));
      });
    }
    switch (method) {
      case 'HOP_ACK': {
        const fwd = readInt(args.fwd, 'fwd');
        const f = this.#forwards.get(fwd);
        if (f && this.#sameAddressSync(f.next, from)) {
          f.timer.cancel();
          this.#forwards.delete(fwd);
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
        return this.#settle(args, from);
      case 'ACK':
      case 'NACK':
        return this.#settle(args, from, method);
      case 'PREDECESSOR': {
        const p = this.#predecessor;
        return this.#reply(from, 'STABILIZE', args, {
          predecessor_id: p ? wireId(p.id) : null,
          predecessor_addr: p ? wireAddr(p) : null,
          successors: this.#successors.map(wireNode),
        });
      }
      case 'NOTIFY': {
        const x = { id: readId(args.predecessor_id, 'predecessor_id'), ...readAddr(args.predecessor_addr, 'predecessor_addr') };
        if (!this.#idOk(x)) return this.#refuse(from, `NOTIFY names id ${x.id}, not the hash of ${x.host}:${x.port}`);
        // the claimed predecessor must be the sender, proven by a round trip to the sender's address
        return this.#asMember(from, false, 'NOTIFY', (node) => {
          if (!node || !sameNode(node, x)) return this.#refuse(from, `NOTIFY for ${x.host}:${x.port} sent from ${from.host}:${from.port}`);
          this.#notified(x);
        });
      }
      case 'PING':
        return this.#reply(from, 'PONG', args, { node: wireNode(this.#self!) });
      case 'SUCCESSOR_HINT': {
        // sent by our successor when a node joined between us; checked like a stabilize answer and
        // adopted only after that node answers a round trip
        const x = { id: readId(args.successor_id, 'successor_id'), ...readAddr(args.successor_addr, 'successor_addr') };
        const self = this.#self!;
        const succ = this.#successors[0]!;
        if (!this.#sameAddressSync(succ, from)) return this.#refuse(from, 'SUCCESSOR_HINT not from our successor');
        if (!this.#idOk(x)) return this.#refuse(from, `SUCCESSOR_HINT names id ${x.id}, not the hash of ${x.host}:${x.port}`);
        if (sameNode(x, self) || !inOpen(self.id, succ.id, x.id)) return;
        void this.#verifyNode(x).then((ok) => {
          if (!ok || this.#state !== 'running' || !sameNode(this.#successors[0], succ)) return;
          this.#setSuccessors([x, ...this.#successors]);
          this.#send(x, { method: 'NOTIFY', args: { predecessor_id: wireId(self.id), predecessor_addr: wireAddr(self) } });
        });
        return;
      }
      case 'REPLICATE':
      case 'TRANSFER': {
        const entries = readEntries(args.entries, 'entries');
        return this.#asMember(from, member, method, () => {
          for (const [key, value, version] of entries) this.#store.merge(key, this.hashOf(key), value, version);
          if (method === 'TRANSFER') this.#replicaSignature = ''; // newly owned keys go to the replicas at the next round
          if (method === 'TRANSFER' || args.rid !== undefined) this.#reply(from, `${method}_REP`, args, {});
        });
      }
      case 'LEAVE': {
        const id = readId(args.id, 'id');
        const gone = [this.#predecessor, ...this.#successors].find((n) => n?.id === id);
        if (gone && !this.#sameAddressSync(gone, from)) return this.#refuse(from, `LEAVE for ${gone.host}:${gone.port} sent from ${from.host}:${from.port}`);
        this.#neighbourLeft(id, args);
        return this.#reply(from, 'LEAVE_REP', args, {});
      }
      case 'LOOKUP': {
        // a client asks for the owner of a key and the path the lookup took (visualisation, CLI)
        const to = this.#answerAddress(args, from);
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
        return this.#send(this.#answerAddress(args, from), { method: 'ACK', args: this.wireInfo() });
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
      if (m.method === 'PUT' || m.method === 'GET') this.#nack(m, `no route after ${m.hops} hops`);
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
    const fwd = newRid();
    const args = forwardArgs(m, self, fwd, direct);
    this.#counters.forwarded++;
    const timer = this.#clock.schedule(this.#opt.hopTimeoutMs, () => {
      if (!this.#forwards.delete(fwd) || this.#state !== 'running') return;
      this.#peerFailed(next);
      if (m.attempt < 3) this.#route({ ...m, attempt: m.attempt + 1 });
      else this.#log.warn(`gave up forwarding ${m.method} for id ${m.target}: no next hop answered`);
    });
    this.#forwards.set(fwd, { message: m, next, timer });
    // a message that cannot leave this host says nothing about the next hop: no eviction, no retry
    this.#send(next, { method: m.method, args }, (err) => {
      const f = this.#forwards.get(fwd);
      if (!f) return;
      f.timer.cancel();
      this.#forwards.delete(fwd);
      this.#log.warn(`could not forward ${m.method} for id ${m.target}: ${err.message}`);
      if (m.method === 'PUT' || m.method === 'GET') this.#nack(m, `could not forward: ${err.message}`);
    });
  }

  /** Refuses a routed PUT/GET with a reason (`error`; the original client only looks at the method). */
  #nack(m: Routed, reason: string): void {
    const args: Record<string, Value> = { error: reason };
    if (m.args.rid !== undefined) args.rid = m.args.rid!;
    this.#send(m.from, { method: 'NACK', args });
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
        const size = approxSize(m.args.value!);
        if (size > this.#opt.maxValueBytes) return this.#nack(m, `the value is about ${size} bytes, over this ring's ${this.#opt.maxValueBytes}-byte limit`);
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
        const reply: WireMessage = rid !== undefined ? { method: 'ACK', args: { rid, value: entry.value } } : { method: 'ACK', args: entry.value };
        return this.#send(m.from, reply, (err) => {
          const bytes = err instanceof SendError ? err.bytes : undefined;
          if (bytes === undefined) return this.#nack(m, `could not send the value: ${err.message}`);
          if (rid === undefined) {
            // a UDP client: the value cannot reach it in one datagram, and it is told so
            return this.#nack(m, `the value is ${bytes} bytes, too large for a datagram; read it over the stream side channel (TCP port ${self.port}; trellis dht get does)`);
          }
          // a node asked (it gave a rid): once it proves it holds its address, the value is streamed to it
          void this.#verifyAddress(m.from).then((ok) => {
            if (ok) this.#send(m.from, reply, (e) => this.#nack(m, `could not send the value: ${e.message}`));
            else this.#nack(m, `the value is ${bytes} bytes and ${m.from.host}:${m.from.port} is not a verified ring member`);
          });
        });
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
          if (this.#ref) {
            const node = await this.#refLookup(id);
            // the original's SUCCESSOR_REP carries no hop count or path
            result = { id, node, hops: 0, routeHops: 0, path: [self, node] };
            break;
          }
          const { args: rep, from } = await this.#routeRequest('SUCCESSOR', id, { id: wireId(id) }, trace, !ownerShortcut);
          const path = rep.path === undefined ? [] : readNodes(rep.path, 'path', this.#opt.maxHops + 2);
          const node = { id: readId(rep.successor_id, 'successor_id'), ...readAddr(rep.successor_addr, 'successor_addr') };
          // the owner answers for itself: its id must be its address's hash, sent from that address
          if (!this.#idOk(node) || !(await this.#sameAddress(node, from))) {
            this.#counters.membershipRefused++;
            throw new ProtocolError(`SUCCESSOR_REP from ${from.host}:${from.port} names ${node.id} at ${node.host}:${node.port}, which does not check out`);
          }
          this.#remember(node);
          result = {
            id,
            node,
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
  #routeRequest(method: Routed['method'], target: bigint, args: Record<string, Value>, trace: boolean, skipOwn = false): Promise<{ args: Args; from: Address }> {
    const self = this.#self!;
    return new Promise<{ args: Args; from: Address }>((resolve, reject) => {
      const rid = newRid();
      const timer = this.#clock.schedule(this.#opt.lookupTimeoutMs, () => {
        if (this.#pending.delete(rid)) reject(new TimeoutError(`${method} for id ${target} got no answer within ${this.#opt.lookupTimeoutMs} ms`));
      });
      this.#pending.set(rid, { resolve: (a, from) => resolve({ args: a, from }), reject, timer });
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
  async #originate(method: 'PUT' | 'GET', key: string, args: Record<string, Value>): Promise<{ method: string; args: Value | undefined; error?: string }> {
    if (this.#ref) {
      const m: Routed = { method, target: this.hashOf(key), from: this.#self!, args, hops: 0, routeHops: 0, direct: false, path: undefined, attempt: 0 };
      return this.#refExclusive(method, this.#opt.lookupTimeoutMs, () => this.#refRoute(m));
    }
    const { args: rep } = await this.#routeRequest(method, this.hashOf(key), args, false);
    return { method: rep.__method as string, args: rep.value, ...(typeof rep.error === 'string' ? { error: rep.error } : {}) };
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
    if (moving.length > 0) {
      // the original protocol has no TRANSFER: keys are handed over as ordinary PUTs
      if (this.#ref) void this.#refHandOver(x, moving.map(([k, e]) => [k, e.value]));
      else void this.#push(x, 'TRANSFER', moving.map(([k, e]) => [k, e.value, e.version] as Value));
    }
    if (alone) this.#setSuccessors([x]);
    // the old predecessor's successor is now x: tell it instead of waiting for its next stabilize
    if (old && !this.#ref) this.#send(old, { method: 'SUCCESSOR_HINT', args: { successor_id: wireId(x.id), successor_addr: wireAddr(x) } });
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
    return this.#call(to, method, args, timeoutMs, true).then((r) => r.args);
  }

  /**
   * Sends a request and waits for the reply carrying its (random) rid. With `fromTo`, only a reply
   * from the address asked counts. A message that cannot be sent rejects at once with `SendError`
   * (a local problem, not a sign the peer is dead); silence rejects with `TimeoutError`.
   */
  #call(to: Address, method: string, args: Record<string, Value>, timeoutMs: number, fromTo: boolean): Promise<{ args: Args; from: Address }> {
    return new Promise<{ args: Args; from: Address }>((resolve, reject) => {
      const rid = newRid();
      const timer = this.#clock.schedule(timeoutMs, () => {
        if (this.#pending.delete(rid)) reject(new TimeoutError(`${method} to ${to.host}:${to.port} got no answer within ${timeoutMs} ms`));
      });
      this.#pending.set(rid, { resolve: (a, from) => resolve({ args: a, from }), reject, timer, to: fromTo ? to : undefined });
      const failed = (err: Error) => {
        if (!this.#pending.delete(rid)) return;
        timer.cancel();
        reject(err);
      };
      this.#send(to, { method, args: { ...args, rid } }, failed);
    });
  }

  #settle(args: Args, from: Address, method?: string): void {
    const rid = args.rid;
    if (typeof rid !== 'number') return;
    const p = this.#pending.get(rid);
    if (!p) return;
    if (p.to && !this.#sameAddressSync(p.to, from)) {
      this.#counters.spoofedReplies++;
      return this.#dropped(from, `a reply to a request sent to ${p.to.host}:${p.to.port}`);
    }
    this.#pending.delete(rid);
    p.timer.cancel();
    p.resolve(method ? { ...args, __method: method } : args, from);
  }

  #reply(to: Address, method: string, request: Args, args: Record<string, Value>): void {
    this.#send(to, { method, args: { ...args, rid: request.rid ?? null } });
  }

  /**
   * Sends one message. When it cannot be sent (encoding, size, budget, a local socket error
   * reported later) `onFail` hears of it; the peer is never blamed for it.
   */
  #send(to: Address, message: WireMessage, onFail?: (err: Error) => void): void {
    const self = this.#self!;
    const answer = message.method === 'ACK' || message.method === 'NACK';
    if (!this.#ref && !answer) message = { method: message.method, args: message.args, v: WIRE_VERSION };
    if (to.port === self.port && to.host === self.host) {
      // to ourselves (a lookup we started and answer): no datagram needed
      if (this.#ref && answer) return this.#refReply?.(message.method, message.args);
      if (message.method === 'ACK' || message.method === 'NACK') {
        this.#settle(isArgs(message.args) ? message.args : {}, to, message.method);
        return;
      }
      this.#later(0, () => this.#receive(message, to, { authenticated: true }));
      return;
    }
    if (!this.#ips.has(to.host)) void this.#resolveHost(to.host);
    const member = this.#isMember(to);
    if (this.#opt.replyBudget > 0 && !member && !this.#spend(to, 24 + (message.args === undefined ? 0 : approxSize(message.args)))) {
      this.#counters.replyBudgetDropped++;
      onFail?.(new SendError(`${message.method} to ${to.host}:${to.port} is over the reply budget for unverified addresses`));
      return;
    }
    this.#counters.sent++;
    // (no closure per datagram unless the caller wants to hear of a late failure)
    const late = onFail
      ? (err: Error) => {
          this.#lateError(err);
          onFail(err);
        }
      : this.#lateError;
    try {
      // replies to clients go untagged (a client has no ring key); node-to-node messages are tagged
      this.#transport!.send(to, message, { authenticate: !answer, stream: member, onError: late });
      return;
    } catch (err) {
      const e = err instanceof SendError ? err : new SendError(`could not send ${message.method} to ${to.host}:${to.port}: ${(err as Error).message}`, { cause: err });
      this.#counters.sendErrors++;
      this.#log.warn(`could not send ${message.method} to ${to.host}:${to.port}: ${e.message}`);
      onFail?.(e);
      return;
    }
  }

  readonly #lateError = (err: Error): void => {
    this.#counters.sendErrors++;
    this.#log.warn(err.message);
  };

  // ---------------------------------------------------- the original protocol

  /** Drops a node-to-node message of another wire version; a joiner of a newer version is told why. */
  #wrongVersion(method: string, rawArgs: Value | undefined, v: Value | undefined, from: Address): void {
    this.#counters.wireVersion++;
    const what = v === undefined ? 'no wire version (the original protocol; start this node with --wire reference to talk to it)' : `wire version ${String(v).slice(0, 20)}`;
    const reason = `${method.slice(0, 40)} with ${what}; this node speaks Trellis wire ${WIRE_VERSION}`;
    if (method === 'JOIN_REQ' && typeof v === 'number' && isArgs(rawArgs)) {
      this.#send(from, { method: 'JOIN_REP', args: { rid: rawArgs.rid ?? null, error: reason } });
    }
    this.#dropped(from, reason);
  }

  /**
   * Reference mode: the original node protocol (REFERENCE.md §3). Every check that the protocol
   * allows stays: ids must be the hash of their address, NOTIFY must come from the node it names
   * and is acted on only after a PREDECESSOR round trip to that address, a STABILIZE counts only
   * from the node asked, `from` is honoured only from a source that answered such a round trip.
   */
  #receiveReference(method: string, rawArgs: Value | undefined, from: Address, member: boolean, meta?: ReceiveMeta): void {
    if (method === 'STABILIZE') {
      // the original's answer to PREDECESSOR: args are the predecessor id alone (or None)
      const id = rawArgs === undefined || rawArgs === null ? undefined : readId(rawArgs, 'STABILIZE args');
      const waiting = this.#refAsks.get(addressKey(from));
      if (!waiting) return this.#dropped(from, 'a STABILIZE nobody asked for');
      this.#refAsks.delete(addressKey(from));
      this.#refProven.set(addressKey(from), this.#clock.now() + MEMBER_TTL_MS);
      for (const w of waiting) w(id);
      return;
    }
    if (method === 'ACK' || method === 'NACK') return this.#refReply?.(method, rawArgs);
    const args = rawArgs === undefined || rawArgs === null ? {} : rawArgs;
    if (!isArgs(args)) throw new ProtocolError(`${method.slice(0, 40)}: "args" must be a dict`);
    if (meta?.reply) return this.#streamClient(method, args, meta.reply);
    const self = this.#self!;
    switch (method) {
      case 'PREDECESSOR': {
        const p = this.#predecessor;
        return this.#send(from, { method: 'STABILIZE', args: p ? wireId(p.id) : null });
      }
      case 'JOIN_REQ':
        return this.#refJoinRequest(args);
      case 'JOIN_REP':
        return this.#refJoin?.(args, from);
      case 'NOTIFY': {
        const x = { id: readId(args.predecessor_id, 'predecessor_id'), ...readAddr(args.predecessor_addr, 'predecessor_addr') };
        if (!this.#idOk(x)) return this.#refuse(from, `NOTIFY names id ${x.id}, not the hash of ${x.host}:${x.port}`);
        void this.#sameAddress(x, from).then(async (same) => {
          if (!same) return this.#refuse(from, `NOTIFY for ${x.host}:${x.port} sent from ${from.host}:${from.port}`);
          if (!(await this.#refProve(x))) return this.#refuse(from, `NOTIFY from ${x.host}:${x.port}, which did not answer a round trip`);
          this.#refLearn(x);
          if (this.#state === 'running') this.#notified(x);
        });
        return;
      }
      case 'SUCCESSOR': {
        const id = readId(args.id, 'id');
        const to = readAddr(args.from, 'from');
        const succ = this.#successors[0]!;
        if (sameNode(succ, self) || inHalfOpen(self.id, succ.id, id)) {
          return this.#send(to, { method: 'SUCCESSOR_REP', args: { req_id: wireId(id), successor_id: wireId(succ.id), successor_addr: wireAddr(succ) } });
        }
        return this.#send(this.#refNextHop(id), { method: 'SUCCESSOR', args: { id: wireId(id), from: wireAddr(to) } });
      }
      case 'SUCCESSOR_REP': {
        const id = readId(args.req_id, 'req_id');
        const node = { id: readId(args.successor_id, 'successor_id'), ...readAddr(args.successor_addr, 'successor_addr') };
        const waiting = this.#refLookups.get(id);
        if (!waiting) return; // fix-fingers answers that arrived late, or nobody asked
        if (!this.#idOk(node)) return this.#refuse(from, `SUCCESSOR_REP names id ${node.id}, not the hash of ${node.host}:${node.port}`);
        this.#refLookups.delete(id);
        this.#refLearn(node);
        for (const w of waiting) w(node);
        return;
      }
      case 'PUT':
      case 'GET': {
        if (this.#state !== 'running') return;
        const claimed = args.from === undefined || args.from === null ? undefined : readAddr(args.from, 'from');
        const route = (answer: Address) => {
          if (this.#state === 'running') this.#refRoute(readRouted(method, { ...args, from: wireAddr(answer) }, from, (key) => this.hashOf(key)));
        };
        if (!claimed || this.#sameAddressSync(claimed, from) || member) return route(claimed ?? from);
        // a forward names the client in `from`: honoured only from a source that answers as a node
        void this.#refProve(from).then((ok) => {
          if (!ok) this.#counters.reflectionRefused++;
          route(ok ? claimed : from);
        });
        return;
      }
      case 'INFO':
        return this.#send(from, { method: 'ACK', args: this.wireInfo() });
      case 'LOOKUP': {
        const key = typeof args.key === 'string' ? args.key : readId(args.id, 'id');
        this.lookup(key).then(
          (r) => this.#send(from, { method: 'ACK', args: { id: wireId(r.id), node: wireNode(r.node), hops: r.hops, route_hops: r.routeHops, path: r.path.map(wireNode) } }),
          () => this.#send(from, { method: 'NACK' }),
        );
        return;
      }
      default:
        throw new ProtocolError(`"${method.slice(0, 40)}" is not part of the original protocol (this node runs with wire "reference")`);
    }
  }

  /** The original's next hop toward `id`: the successor when it covers `id`, else the closest preceding finger. */
  #refNextHop(id: bigint): DhtNode {
    const self = this.#self!;
    const succ = this.#successors[0]!;
    if (inHalfOpen(self.id, succ.id, id)) return succ;
    const next = this.#closestPreceding(id);
    return next && !sameNode(next, self) ? next : succ;
  }

  /** A PUT/GET in reference mode: answered by the owner to `from`, else forwarded with the original's three fields. */
  #refRoute(m: Routed): void {
    if (this.owns(m.target)) return this.#deliver(m);
    const args: Record<string, Value> = { key: m.args.key!, from: wireAddr(m.from) };
    if (m.method === 'PUT') args.value = m.args.value!;
    this.#counters.forwarded++;
    this.#send(this.#refNextHop(m.target), { method: m.method, args }, (err) => this.#nack(m, `could not forward: ${err.message}`));
  }

  /** A JOIN_REQ in reference mode: the node whose (self, successor] holds the id answers and links the joiner. */
  #refJoinRequest(args: Args): void {
    if (this.#state !== 'running') return;
    const self = this.#self!;
    const joiner = { id: readId(args.id, 'id'), ...readAddr(args.addr, 'addr') };
    if (!this.#idOk(joiner)) {
      this.#counters.membershipRefused++;
      throw new ProtocolError(`JOIN_REQ for id ${joiner.id}, not the hash of ${joiner.host}:${joiner.port}`);
    }
    if (joiner.id === self.id) throw new ProtocolError(`JOIN_REQ for id ${joiner.id}, which this node holds`);
    const succ = this.#successors[0]!;
    if (!sameNode(succ, self) && !inHalfOpen(self.id, succ.id, joiner.id)) {
      return this.#send(this.#refNextHop(joiner.id), { method: 'JOIN_REQ', args: { addr: wireAddr(joiner), id: wireId(joiner.id) } });
    }
    // a joiner whose JOIN_REP was lost asks again: it is already our successor
    const next = sameNode(succ, joiner) ? this.#successors[1] ?? self : succ;
    if (joiner.id === next.id && !sameNode(next, joiner)) throw new ProtocolError(`JOIN_REQ for id ${joiner.id}, which ${next.host}:${next.port} holds`);
    this.#send(joiner, { method: 'JOIN_REP', args: { successor_id: wireId(next.id), successor_addr: wireAddr(next) } });
    if (sameNode(succ, joiner)) return;
    this.#refLearn(joiner);
    // linked once it answers at its address (the original links at once; a forged JOIN_REQ must not)
    void this.#refProve(joiner).then((ok) => {
      if (!ok) return this.#refuse(joiner, `joiner ${joiner.host}:${joiner.port} did not answer a round trip`);
      if (this.#state === 'running' && sameNode(this.#successors[0], succ) && (sameNode(succ, self) || inOpen(self.id, succ.id, joiner.id))) this.#setSuccessors([joiner, ...this.#successors]);
    });
  }

  async #joinReference(bootstrap: Address, where: string): Promise<DhtNode> {
    const self = this.#self!;
    for (let attempt = 0; attempt < 3; attempt++) {
      const rep = await new Promise<{ args: Args; from: Address } | undefined>((resolve) => {
        const timer = this.#clock.schedule(this.#opt.lookupTimeoutMs, () => {
          this.#refJoin = undefined;
          resolve(undefined);
        });
        // the answer comes from whichever node precedes our id, not from the bootstrap
        this.#refJoin = (args, from) => {
          timer.cancel();
          this.#refJoin = undefined;
          resolve({ args, from });
        };
        this.#send(bootstrap, { method: 'JOIN_REQ', args: { addr: wireAddr(self), id: wireId(self.id) } }, () => undefined);
      });
      if (!rep) continue;
      let successor: DhtNode;
      try {
        successor = { id: readId(rep.args.successor_id, 'successor_id'), ...readAddr(rep.args.successor_addr, 'successor_addr') };
      } catch (err) {
        throw new JoinError(`malformed JOIN_REP from ${rep.from.host}:${rep.from.port}: ${(err as Error).message}`);
      }
      if (!this.#idOk(successor)) {
        this.#counters.membershipRefused++;
        throw new JoinError(`the JOIN_REP from ${rep.from.host}:${rep.from.port} names id ${successor.id}, not the hash of ${successor.host}:${successor.port}`);
      }
      if (successor.id === self.id && !sameNode(successor, self)) throw new JoinError(`join refused: id ${self.id} is taken by ${successor.host}:${successor.port}`);
      this.#refLearn(successor);
      this.#predecessor = undefined;
      this.#setSuccessors([successor]);
      await this.stabilize();
      return successor;
    }
    throw new JoinError(`no JOIN_REP for a JOIN_REQ sent through ${where} after 3 tries`);
  }

  /**
   * Stabilize with the original's messages: PREDECESSOR to the successor, whose STABILIZE names an
   * id only. A closer node is adopted only when its address is known from a checked message and it
   * answers a round trip there (the original takes the sender's address, which is the old
   * successor's: the flaw REFERENCE.md names). Then NOTIFY.
   */
  async #stabilizeReference(): Promise<void> {
    const self = this.#running();
    let succ = this.#successors[0]!;
    if (sameNode(succ, self)) {
      if (!this.#predecessor) return;
      this.#setSuccessors([this.#predecessor]);
      succ = this.#predecessor;
    }
    let x: bigint | undefined;
    try {
      x = await this.#refAsk(succ);
      this.#succMisses = 0;
    } catch (err) {
      if (err instanceof TimeoutError && ++this.#succMisses >= 2) {
        this.#succMisses = 0;
        this.#peerFailed(succ);
      }
      return;
    }
    if (this.#state !== 'running' || !sameNode(this.#successors[0], succ)) return;
    if (x !== undefined && x !== self.id && inOpen(self.id, succ.id, x)) {
      const known = this.#refKnown.get(x);
      if (known && (await this.#refProve(known)) && sameNode(this.#successors[0], succ)) this.#setSuccessors([known, ...this.#successors]);
    }
    const now = this.#successors[0]!;
    if (!sameNode(now, self)) this.#send(now, { method: 'NOTIFY', args: { predecessor_id: wireId(self.id), predecessor_addr: wireAddr(self) } });
  }

  /** Sends PREDECESSOR to `to` and resolves with the id its STABILIZE names (from that address only). */
  async #refAsk(to: Address): Promise<bigint | undefined> {
    await this.#resolveHost(to.host);
    const key = this.#socketKey(to);
    return new Promise<bigint | undefined>((resolve, reject) => {
      let waiter: (id: bigint | undefined) => void = () => undefined;
      const timer = this.#clock.schedule(this.#opt.rpcTimeoutMs, () => {
        const list = this.#refAsks.get(key)?.filter((w) => w !== waiter);
        if (list && list.length > 0) this.#refAsks.set(key, list);
        else this.#refAsks.delete(key);
        reject(new TimeoutError(`PREDECESSOR to ${to.host}:${to.port} got no STABILIZE within ${this.#opt.rpcTimeoutMs} ms`));
      });
      waiter = (id) => {
        timer.cancel();
        resolve(id);
      };
      const list = this.#refAsks.get(key);
      if (list) list.push(waiter);
      else this.#refAsks.set(key, [waiter]);
      // one question answers every waiter: only the first asks
      if (!list) this.#send(to, { method: 'PREDECESSOR' });
    });
  }

  /** Whether a node answers the original protocol at address `a` (cached for 5 minutes). */
  #refProve(a: Address): Promise<boolean> {
    if (this.#isMember(a)) return Promise.resolve(true);
    const key = `${a.host}:${a.port}`;
    let pending = this.#refProving.get(key);
    if (!pending) {
      pending = this.#refAsk(a).then(
        () => true,
        () => false,
      );
      void pending.finally(() => this.#refProving.delete(key));
      this.#refProving.set(key, pending);
    }
    return pending;
  }

  #refLearn(n: DhtNode): void {
    if (sameNode(n, this.#self)) return;
    if (this.#refKnown.size >= MAX_TRACKED) this.#refKnown.delete(this.#refKnown.keys().next().value!);
    this.#refKnown.set(n.id, n);
  }

  /** A lookup with the original's SUCCESSOR: the answer comes from anywhere, matched by req_id. */
  #refLookup(id: bigint): Promise<DhtNode> {
    const self = this.#self!;
    const succ = this.#successors[0]!;
    if (sameNode(succ, self) || inHalfOpen(self.id, succ.id, id)) return Promise.resolve(succ);
    return new Promise<DhtNode>((resolve, reject) => {
      let waiter: (n: DhtNode) => void = () => undefined;
      const timer = this.#clock.schedule(this.#opt.lookupTimeoutMs, () => {
        const list = this.#refLookups.get(id)?.filter((w) => w !== waiter);
        if (list && list.length > 0) this.#refLookups.set(id, list);
        else this.#refLookups.delete(id);
        reject(new TimeoutError(`SUCCESSOR for id ${id} got no answer within ${this.#opt.lookupTimeoutMs} ms`));
      });
      waiter = (n) => {
        timer.cancel();
        resolve(n);
      };
      const list = this.#refLookups.get(id);
      if (list) list.push(waiter);
      else this.#refLookups.set(id, [waiter]);
      if (!list) this.#send(this.#refNextHop(id), { method: 'SUCCESSOR', args: { id: wireId(id), from: wireAddr(self) } });
    });
  }

  /**
   * Runs `start` and waits for the rid-less ACK/NACK it causes. The original's answers carry no
   * request id, so these run one at a time: put/get started here and key hand-overs.
   */
  #refExclusive(what: string, timeoutMs: number, start: () => void): Promise<{ method: string; args: Value | undefined; error?: string }> {
    const run = () =>
      new Promise<{ method: string; args: Value | undefined; error?: string }>((resolve, reject) => {
        const timer = this.#clock.schedule(timeoutMs, () => {
          this.#refReply = undefined;
          reject(new TimeoutError(`${what} got no ACK or NACK within ${timeoutMs} ms`));
        });
        this.#refReply = (method, args) => {
          timer.cancel();
          this.#refReply = undefined;
          const error = method === 'NACK' && isArgs(args) && typeof args.error === 'string' ? args.error : undefined;
          resolve({ method, args: method === 'ACK' ? args : undefined, ...(error ? { error } : {}) });
        };
        start();
      });
    const next = this.#refChain.then(run, run);
    this.#refChain = next.catch(() => undefined);
    return next;
  }

  /** Hands keys to `to` as the original's PUTs, one acknowledged at a time. */
  async #refHandOver(to: DhtNode, entries: [string, Value][]): Promise<void> {
    for (const [key, value] of entries) {
      try {
        await this.#refExclusive('PUT', this.#opt.rpcTimeoutMs, () => this.#send(to, { method: 'PUT', args: { key, value } }));
      } catch (err) {
        if (this.#state !== 'running' && this.#state !== 'closing') return;
        this.#log.warn(`handing ${key} to ${to.host}:${to.port} failed: ${(err as Error).message}`);
      }
    }
  }

  // ------------------------------------------------------------- verification

  /** Whether `n`'s id is the hash of its advertised address (always true with `verifyIds: false`). */
  #idOk(n: DhtNode): boolean {
    return !this.#opt.verifyIds || n.id === this.hashOf(addressRepr(n.host, n.port));
  }

  /** The socket address key of an advertised address, names mapped to the IPs datagrams come from. */
  #socketKey(a: Address): string {
    return `${this.#ips.get(a.host) ?? a.host}:${a.port}`;
  }

  #sameAddressSync(a: Address, from: Address): boolean {
    return a.port === from.port && (a.host === from.host || this.#ips.get(a.host) === from.host);
  }

  async #sameAddress(a: Address, from: Address): Promise<boolean> {
    if (this.#sameAddressSync(a, from)) return true;
    if (a.port !== from.port || this.#ips.has(a.host)) return false;
    return (await this.#resolveHost(a.host)) === from.host;
  }

  async #resolveHost(host: string): Promise<string | undefined> {
    const known = this.#ips.get(host);
    if (known !== undefined) return known;
    const resolve = this.#transport?.resolve;
    if (!resolve) return undefined;
    try {
      const ip = await resolve.call(this.#transport, host);
      this.#ips.set(host, ip);
      return ip;
    } catch {
      return undefined;
    }
  }

  #isMember(a: Address): boolean {
    const self = this.#self!;
    if (a.port === self.port && a.host === self.host) return true;
    if (this.#ref) return (this.#refProven.get(this.#socketKey(a)) ?? 0) > this.#clock.now();
    const m = this.#members.get(this.#socketKey(a));
    return m !== undefined && m.until > this.#clock.now();
  }

  /** Records `node` as verified, reachable at socket address `at` (default: its own address). */
  #remember(node: DhtNode, at: Address = node): void {
    if (this.#members.size >= MAX_TRACKED) this.#members.delete(this.#members.keys().next().value!);
    this.#members.set(this.#socketKey(at), { node, until: this.#clock.now() + MEMBER_TTL_MS });
  }

  /**
   * Proves who sits at socket address `from`: a PING with a random rid must be answered from that
   * address by a node whose id is the hash of its advertised address, that address being `from`.
   */
  #verifySource(from: Address): Promise<DhtNode | undefined> {
    const key = this.#socketKey(from);
    const known = this.#members.get(key);
    if (known && known.until > this.#clock.now()) return Promise.resolve(known.node);
    let pending = this.#verifying.get(key);
    if (!pending) {
      pending = this.#request(from, 'PING', {}, this.#opt.rpcTimeoutMs)
        .then(async (rep) => {
          const node = readNode(rep.node, 'node');
          if (!this.#idOk(node) || !(await this.#sameAddress(node, from))) return undefined;
          this.#remember(node, from);
          return node;
        })
        .catch(() => undefined)
        .finally(() => this.#verifying.delete(key));
      this.#verifying.set(key, pending);
    }
    return pending;
  }

  /** Proves that a ring member answers at advertised address `a`. */
  async #verifyAddress(a: Address): Promise<boolean> {
    const ip = (await this.#resolveHost(a.host)) ?? a.host;
    const found = await this.#verifySource({ host: ip, port: a.port });
    return found !== undefined && (await this.#sameAddress(found, { host: ip, port: a.port }));
  }

  /** Proves that `node` answers at its advertised address. */
  async #verifyNode(node: DhtNode): Promise<boolean> {
    const ip = (await this.#resolveHost(node.host)) ?? node.host;
    const found = await this.#verifySource({ host: ip, port: node.port });
    return found !== undefined && sameNode(found, node);
  }

  /** Token bucket per source that is not a verified member: false when it is over its rate. */
  #admit(from: Address): boolean {
    const rate = this.#opt.rateLimit;
    if (rate <= 0) return true;
    return this.#take(this.#inBuckets, addressKey(from), rate, rate, 1);
  }

  /** Byte budget per unverified destination, against reflection and amplification. */
  #spend(to: Address, bytes: number): boolean {
    const rate = this.#opt.replyBudget;
    return this.#take(this.#outBuckets, this.#socketKey(to), rate, rate, bytes);
  }

  #take(buckets: Map<string, Bucket>, key: string, rate: number, burst: number, cost: number): boolean {
    const now = this.#clock.now();
    let b = buckets.get(key);
    if (!b) {
      if (buckets.size >= MAX_TRACKED) buckets.delete(buckets.keys().next().value!);
      b = { tokens: burst, at: now };
      buckets.set(key, b);
    } else {
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
      b.at = now;
    }
    if (b.tokens < cost) return false;
    b.tokens -= cost;
    return true;
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
