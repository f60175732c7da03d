/**
 * The embeddable pub/sub broker (REFERENCE.md §2). Clients announce a codec in HELLO; the broker
 * resolves it through the plugin host once per connection, decodes each publish once, encodes it
 * once per codec that has a subscriber (never per subscriber), keeps the last value of every
 * topic for new subscribers, matches subscriptions by path segment, and bounds what a slow
 * consumer can make it hold. Bad input closes only the offending connection.
 *
 * @example
 * ```ts
 * const host = createHost();
 * const broker = createBroker({ host });
 * const { port } = await broker.listen(5000);
 * ```
 */
import { createServer, type Server, type Socket, type AddressInfo } from 'node:net';
import { createServer as createTlsServer, createSecureContext, type Server as TlsServer, type TlsOptions } from 'node:tls';
import { isUtf8 } from 'node:buffer';
import type { Duplex } from 'node:stream';
import { SafeEmitter } from '../safe-emitter.js';
import { createLogger, type Logger } from '../logger.js';
import { AccessReloadError, CodecError, InvalidArgumentError, StateError } from '../errors.js';
import type { PluginHost } from '../plugin-host.js';
import type { Codec, Value } from '../areas/serialization.js';
import type { AccessIdentity, AccessProvider } from '../areas/access.js';
import { FrameReader, FrameSizeError } from '../framing/frame-reader.js';
import { FrameQueue } from '../framing/frame-writer.js';
import { FilterTrie, TopicTree, retainedMatching, type FilterNode, type TopicNode } from './topic-tree.js';
import { measureValue, type ValueBudget } from './value-budget.js';
import { LineLimiter } from './line-limiter.js';
import {
  BrokerError,
  BrokerErrorCode,
  FrameType,
  PROTOCOL_VERSION,
  Role,
  checkFilter,
  checkTopic,
  errorCodeName,
  isWildcard,
  errorFrame,
  idFrame,
  pingFrame,
  PublishFlag,
  messageFrame,
  MESSAGE_HEADER_BYTES,
  MAX_TOPIC_BYTES,
  readHello,
  type Hello,
  readId,
  readTopicRequest,
  statsReplyFrame,
  subackFrame,
  topicsFrame,
  welcomeFrame,
} from './protocol.js';
import { SessionEngine, trieFilter, type Link, type SessionOptions, type SessionStats } from './sessions.js';
import { memoryStore, type BrokerStore } from './persistence.js';

export interface BrokerOptions {
  /** The plugin host whose serializer plugins provide the codecs clients announce. */
  readonly host: PluginHost;
  /** Largest frame accepted from a client, checked before its body is buffered (default 1 MiB). */
  readonly maxFrameBytes?: number;
  /** Output a client may have waiting before it is disconnected as a slow consumer (default 8 MiB). */
  readonly maxBufferBytes?: number;
  /** Most topic-tree nodes (topics with values or subscribers, and their parents) (default 100,000). */
  readonly maxTopics?: number;
  /** Total size of the last values kept, in payload bytes; a publish past it is refused (default 256 MiB). */
  readonly maxRetainedBytes?: number;
  /** Bytes of last values one client (by address) may have the broker keep (default 32 MiB). */
  readonly maxRetainedBytesPerClient?: number;
  /**
   * Largest produced size of a published value, about its compact JSON length with shared
   * references counted each time (default maxFrameBytes). See `measureValue`.
   */
  readonly maxValueBytes?: number;
  /** Largest translation of a message into a subscriber's codec (default 4 × maxFrameBytes, at least 16 MiB). */
  readonly maxEncodedBytes?: number;
  /** Most subscriptions one connection may hold (default 10,000). */
  readonly maxSubscriptionsPerClient?: number;
  /** Most connections at once; more are refused with LIMIT (default 10,000). */
  readonly maxConnections?: number;
  /** Most connections at once from one address (default 1,000). */
  readonly maxConnectionsPerAddress?: number;
  /**
   * Topic-tree nodes one client (its user, else its address) may hold through all its
   * subscriptions and last values together, each counting its number of segments, so no client
   * can fill `maxTopics` for everyone (default 25,000).
   */
  readonly maxTopicNodesPerClient?: number;
  /** Most topics one client (by address) may hold a last value on (default 10,000). */
  readonly maxTopicsPerClient?: number;
  /**
   * A client that sends nothing for this long gets a PING; one that then sends nothing for
   * `pingTimeoutMs` more is closed with IDLE_TIMEOUT (default 120 s; 0 turns it off).
   */
  readonly idleTimeoutMs?: number;
  /** How long a pinged client has to answer (default 30 s). */
  readonly pingTimeoutMs?: number;
  /** Most lines of each kind (client errors, slow consumers, refusals) logged per second (default 10). */
  readonly logLinesPerSecond?: number;
  /**
   * Who may connect, publish and subscribe: an access provider object, or the id of one a plugin
   * contributes (`contributes.access`) with its options, e.g. `{ provider: 'file', options:
   * { passwordFile, aclFile, allowAnonymous } }`. Without it every client may do everything.
   */
  readonly access?: AccessProvider | { readonly provider: string; readonly options?: Record<string, unknown> };
  /**
   * Password guessing is slowed down: a refused login is answered only after this delay (default
   * 1 s), and one address may have at most `maxLoginsInProgressPerAddress` (default 8) logins
   * being checked at once, so an address gets at most about 8 guesses a second.
   */
  readonly authFailureDelayMs?: number;
  readonly maxLoginsInProgressPerAddress?: number;
  /**
   * Serve TLS instead of plain TCP: at least `cert` and `key` (PEM), as for `tls.createServer`.
   * Clients connect with `{ tls: true, ca }` (TS), `tls=True, ca=...` (Python) or `--tls --ca`.
   */
  readonly tls?: TlsOptions;
  /** A connection that sends no HELLO within this time is closed (default 10 s). */
  readonly helloTimeoutMs?: number;
  /** After an ERROR frame, how long the peer has to read it before the socket is destroyed (default 2 s). */
  readonly lingerMs?: number;
  readonly logger?: Logger;
  /**
   * Where last values and persistent sessions are kept (`openLmdbStore(dir)` for durable state;
   * default `memoryStore()`: nothing outlives the process). The broker closes it on `close()`.
   */
  readonly store?: BrokerStore;
  /** Bounds of acknowledged delivery and persistent sessions (see `SessionOptions`). */
  readonly sessions?: Omit<SessionOptions, 'store' | 'log'>;
}

/** What the broker knows about one client (events and `clients()`). */
export interface ClientInfo {
  readonly id: number;
  readonly remote: string;
  /** The codec name, once HELLO is resolved. */
  readonly codec: string | undefined;
  readonly role: 'producer' | 'consumer' | 'both' | undefined;
  readonly subscriptions: readonly string[];
  /** Output bytes waiting to be sent to this client. */
  readonly pendingBytes: number;
}

export interface PublishEvent {
  readonly topic: string;
  readonly value: Value;
  readonly codec: string;
  readonly clientId: number;
  /** How many connections it was delivered to. */
  readonly deliveries: number;
}

export interface BrokerStats {
  readonly listening: boolean;
  readonly address: { host: string; port: number } | null;
  readonly uptimeMs: number;
  readonly connections: number;
  readonly producers: number;
  readonly consumers: number;
  /** Topics holding a value (what LIST_TOPICS returns). */
  readonly topics: number;
  /** Nodes of the topic tree (topics, subscribed paths and their parents). */
  readonly nodes: number;
  readonly subscriptions: number;
  /** Payload bytes of the last values kept. */
  readonly retainedBytes: number;
  readonly messagesIn: number;
  /** Deliveries: one per message per receiving connection (retained values included). */
  readonly messagesOut: number;
  readonly acks: number;
  readonly bytesIn: number;
  readonly protocolErrors: number;
  readonly slowConsumers: number;
  /** Messages per second over the last second. */
  readonly rates: { readonly in: number; readonly out: number };
  /** Encodings performed per codec name: one per message per target codec, never per subscriber. */
  readonly encodes: Readonly<Record<string, number>>;
  /** Acknowledged delivery and persistent sessions. */
  readonly delivery: SessionStats;
  /** `memory` or where the durable store is. */
  readonly store: string;
}

/** Hears of every publish and clear a broker accepts from its own clients (cluster-redis.ts). */
export interface BrokerRelay {
  /** `payload` is in codec `wire` (the producer's); `expiresAt` is 0 or ms since the epoch. */
  published(topic: string, wire: number, payload: Buffer, expiresAt: number): Promise<unknown> | void;
  cleared(topic: string): void;
}

/** One node of `topicTree()`. */
export interface TopicSnapshot {
  readonly path: string;
  readonly name: string;
  readonly hasValue: boolean;
  readonly value?: Value;
  readonly subscribers: number;
  readonly children: readonly TopicSnapshot[];
}

/** What `reloadAccess()` did. */
export interface AccessReloadResult {
  /** Users the provider knows after the reload (undefined if it does not count them). */
  readonly users: number | undefined;
  /** Grants (ACL lines) in force after the reload (undefined if the provider does not count them). */
  readonly rules: number | undefined;
  /** Connected clients checked against the new rules (those disconnected included). */
  readonly clients: number;
  /** Clients disconnected with AUTH_FAILED: user removed, password changed, or anonymous access turned off. */
  readonly disconnected: number;
  /**
   * Subscriptions removed because the new rules no longer grant them to their client (plain and
   * acknowledged ones, of connected clients and of persistent sessions whose client is away).
   */
  readonly subscriptionsDropped: number;
}

export interface BrokerEvents {
  listening: [address: { host: string; port: number }];
  connection: [client: ClientInfo];
  disconnect: [client: ClientInfo, reason: string];
  /** Emitted only when someone listens (the value is already decoded). */
  publish: [event: PublishEvent];
  subscribe: [client: ClientInfo, topic: string];
  unsubscribe: [client: ClientInfo, topic: string];
  /** A client's output passed `maxBufferBytes`; it is being disconnected. */
  'slow-consumer': [client: ClientInfo, pendingBytes: number];
  /** A client broke the protocol (or its payload did not decode); it is being disconnected. */
  'client-error': [client: ClientInfo, error: BrokerError];
  /** Once a second while listening, when someone listens. */
  stats: [stats: BrokerStats];
  /** `reloadAccess()` put new access rules in force. */
  'access-reloaded': [result: AccessReloadResult];
  error: [error: Error];
}

/** A topic's last value and its encodings, made at most once per codec. */
interface Retained {
  readonly value: Value;
  /** Bytes kept: the producer's payload and every cached encoding (counted against the budgets). */
  size: number;
  /** Payload bytes by codec wire id. */
  readonly payloads: (Buffer | undefined)[];
  /** Whose budget the bytes count against: the publishing client (its user, else its address). */
  readonly owner: string;
  /** Topic segments charged to the owner while the value is kept. */
  readonly segments: number;
}

/** Topic-tree nodes a path holds below the root: `/a/b` → 3 (with the empty first segment), `qwerty` → 1, `/` → 0. */
function segmentsOf(path: string): number {
  return path === '/' ? 0 : path.split('/').length;
}

type Node = TopicNode<Session, Retained>;
type State = 'hello' | 'resolving' | 'open' | 'closing';

const ROLE_NAMES = { 1: 'producer', 2: 'consumer', 3: 'both' } as const;

/** One client connection. */
class Session {
  state: State = 'hello';
  codec: Codec | undefined;
  wire = -1;
  role = 0;
  /** The topic of the last PUBLISH, as received and as text (a producer usually repeats it). */
  topicBytes: Buffer | undefined;
  topic = '';
  /** The publish sequence this session last received, to deliver once under overlapping subscriptions. */
  seen = 0;
  readonly subs = new Set<Node>();
  /** Wildcard subscriptions (`+`, `#`) by filter. */
  readonly wilds = new Map<string, FilterNode<Session>>();
  backlog: Buffer[] = [];
  helloTimer: NodeJS.Timeout | undefined;
  lingerTimer: NodeJS.Timeout | undefined;
  closeReason = 'client closed the connection';
  readonly queue: FrameQueue;
  reader!: FrameReader;
  readonly remote: string;
  /** Whose budgets this connection's last values count against (its address; later its user). */
  owner: string;
  /** This connection as the session engine sees it, once it uses acknowledged delivery. */
  link: Link | undefined;
  /** Who this client is, once authenticated (only with an access provider). */
  identity: AccessIdentity | undefined;
  /** Authorization answers by action and topic (bounded). */
  readonly allowed = new Map<string, boolean>();
  /** When the last bytes arrived (ms), and whether a PING is out. */
  lastIn = Date.now();
  pinged = false;

  constructor(
    readonly id: number,
    readonly socket: Socket,
  ) {
    this.queue = new FrameQueue(socket);
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.owner = socket.remoteAddress ?? 'unknown';
  }

  info(): ClientInfo {
    return {
      id: this.id,
      remote: this.remote,
      codec: this.codec?.name,
      role: this.role ? ROLE_NAMES[this.role as 1 | 2 | 3] : undefined,
      subscriptions: [...[...this.subs].map((n) => n.path), ...this.wilds.keys()],
      pendingBytes: this.socket.destroyed ? 0 : this.queue.pending,
    };
  }
}

export class Broker extends SafeEmitter<BrokerEvents> {
  readonly log: Logger;
  readonly #host: PluginHost;
  readonly #maxFrame: number;
  readonly #maxBuffer: number;
  readonly #maxTopics: number;
  readonly #maxSubs: number;
  readonly #maxRetained: number;
  readonly #maxRetainedPerClient: number;
  readonly #maxEncoded: number;
  readonly #budget: ValueBudget;
  #retainedBytes = 0;
  /** Bytes of last values kept per owner (client address). */
  readonly #retainedBy = new Map<string, number>();
  readonly #helloTimeoutMs: number;
  readonly #maxConnections: number;
  readonly #maxPerAddress: number;
  readonly #maxTopicsPerClient: number;
  readonly #maxNodesPerClient: number;
  /** Segments charged per owner for its subscriptions and last values. */
  readonly #nodesBy = new Map<string, number>();
  readonly #idleMs: number;
  readonly #pingMs: number;
  readonly #perAddress = new Map<string, number>();
  /** Last values kept per owner (topics per client). */
  readonly #topicsBy = new Map<string, number>();
  /** Last values with an expiry, and when (ms since epoch). */
  readonly #expiring = new Map<Node, number>();
  #liveTimer: NodeJS.Timeout | undefined;
  readonly #limitedLog: LineLimiter;
  #accessOption: BrokerOptions['access'];
  #tls: TlsOptions | undefined;
  readonly #authDelayMs: number;
  readonly #maxLogins: number;
  /** Logins being checked, per address. */
  readonly #logins = new Map<string, number>();
  #access: Promise<AccessProvider> | undefined;
  /** The provider once created (the hot path reads it without awaiting). */
  #accessResolved: AccessProvider | undefined;
  /** Incremented by every access reload that took effect (a login in progress across one is checked again). */
  #accessEpoch = 0;
  /** Access reloads run one at a time, in the order asked. */
  #accessReloading: Promise<unknown> = Promise.resolve();
  readonly #lingerMs: number;
  readonly #tree = new TopicTree<Session, Retained>();
  readonly #wild = new FilterTrie<Session>();
  readonly #sessions = new Set<Session>();
  /** Codec resolutions by wire id: one plugin lookup per format, shared by every connection. */
  readonly #codecs = new Map<number, Promise<Codec>>();
  #server: Server | undefined;
  #address: { host: string; port: number } | null = null;
  #nextId = 1;
  #seq = 0;
  #started = Date.now();
  #closing: Promise<void> | undefined;
  #rateTimer: NodeJS.Timeout | undefined;
  /** Per-publish scratch: MESSAGE frames by wire id, and which ids are set. */
  readonly #frames: (Buffer | null | undefined)[] = new Array(256).fill(undefined);
  readonly #used: number[] = [];
  #usedCount = 0;
  /** The targets of the publish being delivered (the first `#targetCount`; the rest are cleared). */
  readonly #targets: (Session | undefined)[] = [];
  #targetCount = 0;
  /** The message and node `#encodeFor` is collecting targets for. */
  #current: Retained | undefined;
  #currentNode: Node | undefined;
  readonly #counters = { messagesIn: 0, messagesOut: 0, acks: 0, bytesIn: 0, protocolErrors: 0, slowConsumers: 0 };
  readonly #encodes = new Map<string, number>();
  #rates = { in: 0, out: 0 };
  #last = { in: 0, out: 0, at: 0 };
  readonly #store: BrokerStore;
  readonly #acked: SessionEngine;
  #relay: BrokerRelay | undefined;
  #restored = false;

  constructor(options: BrokerOptions) {
    super();
    if (!options?.host) throw new InvalidArgumentError('createBroker needs { host }: the plugin host that provides codecs');
    this.#host = options.host;
    this.log = options.logger ?? options.host.log.child('broker');
    this.#maxFrame = options.maxFrameBytes ?? 1024 * 1024;
    this.#maxBuffer = options.maxBufferBytes ?? 8 * 1024 * 1024;
    this.#maxTopics = options.maxTopics ?? 100_000;
    this.#maxSubs = options.maxSubscriptionsPerClient ?? 10_000;
    this.#maxRetained = options.maxRetainedBytes ?? 256 * 1024 * 1024;
    this.#maxRetainedPerClient = options.maxRetainedBytesPerClient ?? 32 * 1024 * 1024;
    this.#budget = { maxValueBytes: options.maxValueBytes ?? this.#maxFrame };
    this.#maxEncoded = options.maxEncodedBytes ?? Math.max(16 * 1024 * 1024, 4 * this.#maxFrame);
    this.#helloTimeoutMs = options.helloTimeoutMs ?? 10_000;
    this.#accessOption = options.access;
    this.#tls = options.tls;
    this.#authDelayMs = options.authFailureDelayMs ?? 1000;
    this.#maxLogins = options.maxLoginsInProgressPerAddress ?? 8;
    this.#maxConnections = options.maxConnections ?? 10_000;
    this.#maxPerAddress = options.maxConnectionsPerAddress ?? 1_000;
    this.#maxTopicsPerClient = options.maxTopicsPerClient ?? 10_000;
    this.#maxNodesPerClient = options.maxTopicNodesPerClient ?? 25_000;
    this.#idleMs = options.idleTimeoutMs ?? 120_000;
    this.#pingMs = options.pingTimeoutMs ?? 30_000;
    this.#limitedLog = new LineLimiter(options.logLinesPerSecond ?? 10, (line, level) => (level === 'debug' ? this.log.debug(line) : this.log.warn(line)));
    this.#lingerMs = options.lingerMs ?? 2_000;
    this.#store = options.store ?? memoryStore();
    this.#acked = new SessionEngine({ maxSubscriptions: this.#maxSubs, maxSessionBytes: this.#maxBuffer, resumeWindowBytes: this.#maxBuffer / 2, charge: (owner, filter) => this.#charge(owner, segmentsOf(filter)), refund: (owner, filter) => this.#refund(owner, segmentsOf(filter)), ...options.sessions, store: this.#store, log: this.log });
    this.#host.on('provider-removed', this.#onProviderRemoved);
    this.#host.on('provider-replaced', this.#onProviderReplaced);
  }

  // ------------------------------------------------------------ plugin lifecycle (issue 10)

  /**
   * A codec's plugin was deactivated, failed or is being reloaded: its clients are told with an
   * UNKNOWN_CODEC error frame and closed (they may reconnect once the codec is back); clients of
   * other codecs keep being served. The next HELLO resolves the codec afresh.
   */
  readonly #onProviderRemoved = (area: string, name: string, plugin: string): void => {
    if (area !== 'serializers') return;
    for (const wire of [...this.#codecs.keys()]) if (this.#host.serialization.nameOf(wire) === name) this.#codecs.delete(wire);
    let told = 0;
    for (const s of this.#sessions) {
      if (s.codec?.name !== name || s.state === 'closing') continue;
      this.#drop(s, BrokerErrorCode.UNKNOWN_CODEC, `the ${name} codec is gone (plugin "${plugin}" was deactivated or failed); reconnect when it is back`);
      told++;
    }
    if (told > 0) this.log.warn(`codec ${name} was unregistered by plugin "${plugin}": ${told} client(s) using it were told and closed`);
  };

  /** A codec's plugin was reloaded: its connections keep going on the new code. */
  readonly #onProviderReplaced = (area: string, name: string): void => {
    if (area !== 'serializers') return;
    for (const wire of [...this.#codecs.keys()]) if (this.#host.serialization.nameOf(wire) === name) this.#codecs.delete(wire);
    this.#host.serialization.codec(name).then(
      (codec) => {
        for (const s of this.#sessions) if (s.codec?.name === name && s.state !== 'closing') s.codec = codec;
      },
      (err) => this.log.warn(`codec ${name} could not be resolved after a reload`, err),
    );
  };

  protected override onListenerError(event: string | symbol, err: unknown): void {
    this.log.error(`a listener of broker event "${String(event)}" threw`, err);
  }

  // ------------------------------------------------------------------ lifecycle

  /** Starts accepting connections (port 0 picks a free one). Resolves with the bound address. */
  listen(port = 0, host = '127.0.0.1'): Promise<{ host: string; port: number }> {
    // the access provider is created first: a bad password file fails here, not at the first client
    if (this.#accessOption && !this.#accessResolved) return this.#accessProvider().then(() => this.#listen(port, host));
    return this.#listen(port, host);
  }

  async #listen(port: number, host: string): Promise<{ host: string; port: number }> {
    if (this.#server) throw new StateError('the broker is already listening');
    if (this.#closing) throw new StateError('the broker is closed');
    if (!this.#restored) {
      this.#restored = true;
      await this.#restore();
      // sessions kept from before a restart hold only what the rules in force now grant
      if (this.#accessOption) {
        const dropped = this.#acked.revoke(this.#mayReadFilter);
        if (dropped > 0) this.log.warn(`${dropped} subscription(s) of restored persistent sessions removed: the access rules no longer grant them`);
      }
    }
    const server: Server = this.#tls
      ? createTlsServer({ ...this.#tls, noDelay: true }, (socket) => this.#accept(socket))
      : createServer({ noDelay: true }, (socket) => this.#accept(socket));
    if (this.#tls) {
      // a failed handshake is that client's problem only; counted, rate-limited in the log
      server.on('tlsClientError', (err, socket) => {
        this.#counters.protocolErrors++;
        this.#limitedLog.line('tls', `TLS handshake with ${socket.remoteAddress} failed: ${err.message}`, 'debug');
      });
    }
    this.#server = server;
    server.on('error', (err) => this.emit('error', err));
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        this.#server = undefined;
        reject(err);
      };
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        const a = server.address() as AddressInfo;
        this.#address = { host: a.address, port: a.port };
        this.#started = Date.now();
        this.#rateTimer = setInterval(() => this.#tick(), 1000).unref();
        const sweep = Math.max(10, Math.min(1000, this.#idleMs > 0 ? Math.min(this.#idleMs, this.#pingMs) / 2 : 1000));
        this.#liveTimer = setInterval(() => this.#liveness(), sweep).unref();
        this.emit('listening', this.#address);
        resolve(this.#address);
      });
    });
  }

  /** The bound address, once listening. */
  get address(): { host: string; port: number } | null {
    return this.#address;
  }

  /**
   * Stops accepting, tells every client the broker is shutting down, lets queued output drain,
   * and destroys whatever is still open after `timeoutMs`.
   */
  close({ timeoutMs = 5_000 }: { timeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= this.#close(timeoutMs);
    return this.#closing;
  }

  async #close(timeoutMs: number): Promise<void> {
    this.#host.off('provider-removed', this.#onProviderRemoved);
    this.#host.off('provider-replaced', this.#onProviderReplaced);
    clearInterval(this.#rateTimer);
    clearInterval(this.#liveTimer);
    this.#limitedLog.flush();
    const server = this.#server;
    const stopped = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    const closed = [...this.#sessions].map((s) => new Promise<void>((r) => (s.socket.destroyed ? r() : s.socket.once('close', () => r()))));
    for (const s of this.#sessions) this.#drop(s, BrokerErrorCode.SHUTDOWN, 'the broker is shutting down', timeoutMs);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(closed), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    for (const s of this.#sessions) s.socket.destroy();
    await stopped;
    this.#address = null;
    if (this.#accessOption && !('authenticate' in this.#accessOption)) await this.#accessResolved?.dispose?.(); // made here, so released here
    this.#acked.checkpoint();
    await this.#store.close();
  }

  /** Brings back the last values and sessions a durable store kept. */
  async #restore(): Promise<void> {
    const { retained, sessions } = await this.#store.load();
    const codecs = new Map<number, Codec | undefined>();
    for (const wire of new Set([...retained.map((r) => r.wire), ...sessions.map((s) => s.wire)])) {
      codecs.set(wire, await this.#host.serialization.codec(wire).catch(() => undefined));
    }
    let kept = 0;
    for (const r of retained) {
      const codec = codecs.get(r.wire);
      try {
        if (!codec) throw new Error(`no serializer plugin provides codec ${r.wire}`);
        const value = codec.decode(r.payload);
        const payloads: (Buffer | undefined)[] = [];
        payloads[r.wire] = r.payload;
        if (r.expiresAt !== undefined && r.expiresAt <= Date.now()) {
          this.#store.deleteRetained(r.topic);
          continue;
        }
        const node = this.#tree.ensure(r.topic);
        this.#keep(node, { value, size: r.payload.length, payloads, owner: r.owner, segments: segmentsOf(r.topic) });
        if (r.expiresAt !== undefined) this.#expiring.set(node, r.expiresAt);
        kept++;
      } catch (err) {
        this.log.warn(`stored last value of ${r.topic} not restored: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    this.#acked.restore(sessions, (wire) => codecs.get(wire));
    if (this.#store.durable) this.log.info(`restored ${kept} last values and ${sessions.length} sessions from ${this.#store.where}`);
  }

  // ------------------------------------------------------------------ reloading access rules and certificates

  /**
   * Reads the access rules again (for the `file` provider: the password and ACL files) and puts
   * them in force for everyone at once, like mosquitto on SIGHUP. `options`, when given, are laid
   * over the provider's current options (e.g. `{ allowAnonymous: false }`).
   *
   * - A file that cannot be read or parsed changes nothing: the previous rules stay in force,
   *   all of them, and an `AccessReloadError` (TRELLIS_ERR_ACCESS_RELOAD, with `file` and `line`)
   *   is thrown and logged.
   * - A connected client whose user was removed, whose password changed, or that is anonymous
   *   when anonymous access is now off, gets ERROR AUTH_FAILED and is disconnected.
   * - Every other client keeps its connection; each of its subscriptions the new ACL no longer
   *   grants is removed (the client is not told: the protocol has no frame for it; it stops
   *   receiving, and subscribing again is refused with NOT_ALLOWED). Persistent sessions of absent
   *   clients lose those subscriptions too, with what they held.
   * - Publishes, clears and subscriptions are checked against the new rules from this moment.
   *
   * Reloads run one at a time. Throws `StateError` without access control, and
   * `AccessReloadError` when the provider cannot reload.
   */
  reloadAccess(options?: Readonly<Record<string, unknown>>): Promise<AccessReloadResult> {
    const run = this.#accessReloading.then(() => this.#reloadAccess(options));
    this.#accessReloading = run.catch(() => undefined);
    return run;
  }

  async #reloadAccess(options: Readonly<Record<string, unknown>> | undefined): Promise<AccessReloadResult> {
    const option = this.#accessOption;
    if (!option) throw new StateError('this broker has no access control to reload (start it with the access option)');
    if (this.#closing) throw new StateError('the broker is closed');
    const provider = await this.#accessProvider();
    if (!provider.reload) throw new AccessReloadError('the access provider cannot reload its rules (it has no reload method); restart the broker to change them');
    // the provider's own options, with `options` laid over them; an in-process provider gets `options` as given
    const next = 'authenticate' in option ? options : { ...(option.options ?? {}), ...(options ?? {}) };
    let read: Awaited<ReturnType<NonNullable<AccessProvider['reload']>>>;
    try {
      read = await provider.reload(next);
    } catch (err) {
      const cause = err as { message?: unknown; file?: unknown; line?: unknown; cause?: unknown };
      const inner = cause?.cause as { file?: unknown; line?: unknown } | undefined; // a PluginError wraps the provider's error
      const file = typeof cause?.file === 'string' ? cause.file : typeof inner?.file === 'string' ? inner.file : undefined;
      const line = typeof cause?.line === 'number' ? cause.line : typeof inner?.line === 'number' ? inner.line : undefined;
      const error = new AccessReloadError(`access reload refused, the previous rules stay in force: ${err instanceof Error ? err.message : String(err)}`, file, line, { cause: err });
      this.log.warn(error.message);
      throw error;
    }
    if (next !== undefined && !('authenticate' in option)) this.#accessOption = { ...option, options: { ...next } };
    // from here on nothing awaits: every client is checked against the rules the provider now holds
    this.#accessEpoch++;
    let clients = 0;
    let disconnected = 0;
    let dropped = 0;
    for (const s of this.#sessions) {
      s.allowed.clear();
      if (s.state !== 'open') continue; // a login in progress is checked again when it completes
      clients++;
      const identity = s.identity ?? { username: undefined };
      if (provider.admits && !provider.admits(identity)) {
        const reason = identity.username === undefined ? 'anonymous access was turned off (the access rules were reloaded)' : `user ${JSON.stringify(identity.username)} is no longer accepted with the password it logged in with (the access rules were reloaded)`;
        this.#host.access.hooks.denied.call(s.remote, identity.username, reason);
        this.#limitedLog.line('auth', `client ${s.id} (${s.remote}) disconnected: ${reason}`);
        this.#drop(s, BrokerErrorCode.AUTH_FAILED, reason);
        disconnected++;
        continue;
      }
      dropped += this.#revokeSubscriptions(s);
    }
    // acknowledged subscriptions: of the connected clients still here and of absent persistent sessions
    dropped += this.#acked.revoke(this.#mayReadFilter);
    const result: AccessReloadResult = { users: read?.users, rules: read?.rules, clients, disconnected, subscriptionsDropped: dropped };
    this.log.info(`access reloaded: ${result.users ?? '?'} users, ${result.rules ?? '?'} rules; ${disconnected} of ${clients} clients disconnected, ${dropped} subscriptions dropped`);
    this.emit('access-reloaded', result);
    return result;
  }

  /** Removes the client's plain subscriptions the rules in force no longer grant; returns how many. */
  #revokeSubscriptions(s: Session): number {
    let n = 0;
    for (const node of [...s.subs]) {
      if (this.#may(s, 'subscribe', node.path)) continue;
      s.subs.delete(node);
      node.subscribers.delete(s);
      this.#refund(s.owner, node.segments);
      this.#tree.prune(node);
      this.emit('unsubscribe', s.info(), node.path);
      n++;
    }
    for (const [filter, w] of [...s.wilds]) {
      if (this.#may(s, 'subscribe', filter)) continue;
      s.wilds.delete(filter);
      this.#wild.remove(w, s);
      this.#refund(s.owner, segmentsOf(filter));
      this.emit('unsubscribe', s.info(), filter);
      n++;
    }
    return n;
  }

  /** Whether `user` may read subscription `filter` as given (for acknowledged subscriptions); fails closed. */
  readonly #mayReadFilter = (user: string | undefined, filter: string): boolean => {
    const provider = this.#accessResolved;
    if (!provider) return false;
    try {
      return provider.authorize({ username: user }, 'subscribe', trieFilter(filter)) === true;
    } catch (err) {
      this.log.error('the access provider failed to authorize', err);
      return false;
    }
  };

  /**
   * Serves new TLS connections with another certificate and key (PEM, as in `options.tls`),
   * laid over the current TLS options; connections already open keep theirs. An unusable pair
   * throws `InvalidArgumentError` and changes nothing.
   */
  reloadTls(tls: TlsOptions): void {
    if (!this.#tls) throw new StateError('this broker does not serve TLS (start it with the tls option)');
    const next: TlsOptions = { ...this.#tls, ...tls };
    try {
      createSecureContext(next); // checked first: a bad key must not touch the serving context
    } catch (err) {
      throw new InvalidArgumentError(`TLS reload refused, the current certificate stays: ${(err as Error).message}`);
    }
    this.#tls = next;
    (this.#server as TlsServer | undefined)?.setSecureContext(next);
  }

  // ------------------------------------------------------------------ inspection

  stats(): BrokerStats {
    let producers = 0;
    let consumers = 0;
    let subscriptions = 0;
    for (const s of this.#sessions) {
      if (s.role & Role.PRODUCER) producers++;
      if (s.role & Role.CONSUMER) consumers++;
      subscriptions += s.subs.size + s.wilds.size;
    }
    return {
      listening: this.#server?.listening ?? false,
      address: this.#address,
      uptimeMs: Date.now() - this.#started,
      connections: this.#sessions.size,
      producers,
      consumers,
      topics: this.#tree.retainedCount,
      nodes: this.#tree.size,
      subscriptions,
      retainedBytes: this.#retainedBytes,
      ...this.#counters,
      rates: { ...this.#rates },
      encodes: Object.fromEntries(this.#encodes),
      delivery: this.#acked.stats(),
      store: this.#store.where,
    };
  }

  /** Topics holding a value, sorted (what LIST_TOPICS answers). */
  topics(): string[] {
    return this.#tree.topics();
  }

  /** The last value of `topic`, if it holds one. */
  lastValue(topic: string): Value | undefined {
    return this.#tree.get(topic)?.retained?.value;
  }

  /** The topic tree with last values and subscriber counts (for dashboards). */
  topicTree(): TopicSnapshot {
    // the node of the empty first segment (parent of every slashed topic) is shown as the root itself
    const kids = (n: Node): Node[] => [...n.children.values()].flatMap((c) => (c.path === '' ? [...c.children.values()] : [c]));
    const snap = (n: Node): TopicSnapshot => ({
      path: n.path,
      name: n.path === '/' ? '/' : n.path.slice(n.path.lastIndexOf('/') + 1),
      hasValue: n.retained !== undefined,
      ...(n.retained !== undefined ? { value: n.retained.value } : {}),
      subscribers: n.subscribers.size,
      children: kids(n).map(snap),
    });
    return snap(this.#tree.root);
  }

  /** Connected clients. */
  clients(): ClientInfo[] {
    return [...this.#sessions].map((s) => s.info());
  }

  #tick(): void {
    const now = performance.now();
    const c = this.#counters;
    if (this.#last.at > 0) {
      const secs = (now - this.#last.at) / 1000;
      this.#rates = { in: Math.round((c.messagesIn - this.#last.in) / secs), out: Math.round((c.messagesOut - this.#last.out) / secs) };
    }
    this.#last = { in: c.messagesIn, out: c.messagesOut, at: now };
    this.#acked.expire();
    if (this.listenerCount('stats') > 0) this.emit('stats', this.stats());
  }

  /** Pings idle clients, closes those that did not answer, and drops expired last values. */
  #liveness(): void {
    const now = Date.now();
    if (this.#idleMs > 0) {
      for (const s of this.#sessions) {
        if (s.state !== 'open' && s.state !== 'resolving') continue;
        const idle = now - s.lastIn;
        if (s.pinged) {
          if (idle >= this.#idleMs + this.#pingMs) this.#drop(s, BrokerErrorCode.IDLE_TIMEOUT, `nothing received for ${idle} ms and no answer to PING`);
        } else if (idle >= this.#idleMs) {
          s.pinged = true;
          s.queue.write(pingFrame(FrameType.PING));
        }
      }
    }
    for (const [node, at] of this.#expiring) if (at <= now) this.#clear(node);
  }

  /** Drops a topic's last value (and its bytes from the budgets); the topic is no longer listed. */
  #clear(node: Node): boolean {
    this.#expiring.delete(node);
    const old = node.retained;
    if (!old) return false;
    this.#uncount(old);
    this.#tree.retain(node, undefined);
    if (this.#store.durable) this.#store.deleteRetained(node.path);
    return true;
  }

  /** Clears the last value of `topic`; true if it held one. */
  clearLastValue(topic: string): boolean {
    const node = this.#tree.get(topic);
    return node ? this.#clear(node) : false;
  }

  // ------------------------------------------------------------------ connections

  /**
   * Serves a connection that arrived another way than the broker's TCP listener — a WebSocket
   * stream (ws-transport.ts) — with the same frames, limits and access control.
   */
  acceptStream(stream: Duplex & { remoteAddress?: string | undefined; remotePort?: number | undefined }): void {
    this.#accept(stream as unknown as Socket);
  }

  #accept(socket: Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    const address = socket.remoteAddress ?? 'unknown';
    const fromAddress = this.#perAddress.get(address) ?? 0;
    if (this.#sessions.size >= this.#maxConnections || fromAddress >= this.#maxPerAddress) {
      const why = this.#sessions.size >= this.#maxConnections ? `the broker holds its maximum of ${this.#maxConnections} connections` : `at most ${this.#maxPerAddress} connections from one address`;
      this.#limitedLog.line('refused', `refused a connection from ${address}: ${why}`);
      socket.on('error', () => undefined);
      socket.resume(); // read (and discard) until the peer's FIN, so the socket can finish closing
      socket.end(errorFrame(BrokerErrorCode.LIMIT, why));
      setTimeout(() => socket.destroy(), this.#lingerMs).unref();
      return;
    }
    this.#perAddress.set(address, fromAddress + 1);
    const s = new Session(this.#nextId++, socket);
    s.reader = new FrameReader({
      maxFrameBytes: this.#maxFrame,
      // a PUBLISH on an open connection is read in place; every other frame gets its view
      onFrameAt: (buf, start, end) => {
        if (buf[start] === FrameType.PUBLISH && s.state === 'open') this.#publish(s, buf, start, end);
        else this.#onFrame(s, buf.subarray(start, end));
      },
    });
    this.#sessions.add(s);
    s.helloTimer = setTimeout(() => this.#drop(s, BrokerErrorCode.OUT_OF_ORDER, `no HELLO within ${this.#helloTimeoutMs} ms`), this.#helloTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      this.#counters.bytesIn += chunk.length;
      s.lastIn = Date.now();
      s.pinged = false;
      try {
        s.reader.push(chunk);
      } catch (err) {
        this.#fail(s, err);
      }
    });
    socket.on('error', (err) => {
      s.closeReason = `socket error: ${(err as NodeJS.ErrnoException).code ?? err.message}`;
    });
    socket.on('close', () => this.#cleanup(s));
    this.emit('connection', s.info());
  }

  /** Turns anything thrown while handling a client's bytes into an ERROR frame and a close. */
  #fail(s: Session, err: unknown): void {
    if (err instanceof FrameSizeError) {
      this.#drop(s, BrokerErrorCode.FRAME_TOO_LARGE, err.message);
    } else if (err instanceof BrokerError) {
      this.#drop(s, err.wireCode, err.detail);
    } else {
      this.log.error(`internal error on client ${s.id}`, err);
      this.#drop(s, BrokerErrorCode.INTERNAL, 'internal broker error');
    }
  }

  /** Sends an ERROR frame, stops reading, ends the socket, and destroys it after the linger time. */
  #drop(s: Session, code: number, message: string, lingerMs = this.#lingerMs): void {
    if (s.state === 'closing') return;
    s.state = 'closing';
    clearTimeout(s.helloTimer);
    s.closeReason = `${errorCodeName(code)}: ${message}`;
    if (code !== BrokerErrorCode.SHUTDOWN) {
      this.#counters.protocolErrors += code === BrokerErrorCode.SLOW_CONSUMER ? 0 : 1;
      if (code !== BrokerErrorCode.SLOW_CONSUMER) this.emit('client-error', s.info(), new BrokerError(code, message));
      this.#limitedLog.line('dropped', `client ${s.id} (${s.remote}) dropped: ${s.closeReason}`, 'debug');
    }
    s.reader.stop(new BrokerError(code, message));
    s.backlog = [];
    this.#unsubscribeAll(s);
    s.queue.write(errorFrame(code, message));
    s.queue.flush();
    s.socket.end();
    s.lingerTimer = setTimeout(() => s.socket.destroy(), lingerMs).unref();
  }

  #cleanup(s: Session): void {
    if (!this.#sessions.delete(s)) return;
    const address = s.socket.remoteAddress ?? 'unknown';
    const left = (this.#perAddress.get(address) ?? 1) - 1;
    if (left > 0) this.#perAddress.set(address, left);
    else this.#perAddress.delete(address);
    clearTimeout(s.helloTimer);
    clearTimeout(s.lingerTimer);
    s.reader.stop(new Error('closed'));
    const info = s.info();
    this.#unsubscribeAll(s);
    s.state = 'closing';
    this.emit('disconnect', info, s.closeReason);
  }

  #unsubscribeAll(s: Session): void {
    if (s.link) this.#acked.detach(s.link);
    for (const node of s.subs) {
      node.subscribers.delete(s);
      this.#refund(s.owner, node.segments);
      this.#tree.prune(node);
    }
    s.subs.clear();
    for (const [filter, w] of s.wilds) {
      this.#wild.remove(w, s);
      this.#refund(s.owner, segmentsOf(filter));
    }
    s.wilds.clear();
  }

  /** Charges `n` topic-tree nodes to `owner`, or throws LIMIT past its share. */
  #charge(owner: string, n: number): void {
    const now = (this.#nodesBy.get(owner) ?? 0) + n;
    if (now > this.#maxNodesPerClient) {
      throw new BrokerError(BrokerErrorCode.LIMIT, `a client (${owner}) may hold at most ${this.#maxNodesPerClient} topic segments through its subscriptions and last values`);
    }
    this.#nodesBy.set(owner, now);
  }

  #refund(owner: string, n: number): void {
    const left = (this.#nodesBy.get(owner) ?? 0) - n;
    if (left > 0) this.#nodesBy.set(owner, left);
    else this.#nodesBy.delete(owner);
  }

  // ------------------------------------------------------------------ frames

  #onFrame(s: Session, body: Buffer): void {
    const type = body[0]!;
    if (s.state === 'open') {
      if (type === FrameType.PUBLISH) this.#publish(s, body, 0, body.length);
      else this.#control(s, type, body);
      return;
    }
    if (s.state === 'resolving') {
      s.backlog.push(Buffer.from(body)); // the view dies with this chunk
      return;
    }
    if (s.state === 'closing') return;
    if (type !== FrameType.HELLO) throw new BrokerError(BrokerErrorCode.OUT_OF_ORDER, `the first frame must be HELLO (0x01), got 0x${type.toString(16)}`);
    this.#hello(s, body);
  }

  #hello(s: Session, body: Buffer): void {
    clearTimeout(s.helloTimer);
    const hello = readHello(body);
    if (hello.version !== PROTOCOL_VERSION) {
      throw new BrokerError(BrokerErrorCode.UNSUPPORTED_VERSION, `protocol version ${hello.version} is not supported; this broker speaks ${PROTOCOL_VERSION}`);
    }
    if (hello.role < Role.PRODUCER || hello.role > Role.BOTH) throw new BrokerError(BrokerErrorCode.MALFORMED, `role ${hello.role} is not 1 (producer), 2 (consumer) or 3 (both)`);
    s.role = hello.role;
    s.state = 'resolving';
    s.socket.pause();
    let pending = this.#codecs.get(hello.codec);
    if (!pending) {
      pending = this.#host.serialization.codec(hello.codec);
      this.#codecs.set(hello.codec, pending);
      pending.catch(() => this.#codecs.delete(hello.codec));
    }
    pending.then(
      (codec) => void this.#admit(s, hello, codec),
      (err: unknown) => {
        if (s.state !== 'resolving') return;
        const known = this.#host.serialization.serializers().map((n) => `${n} (${this.#wireOf(n)})`).join(', ');
        this.log.debug(`client ${s.id}: codec ${hello.codec} unavailable`, err);
        this.#drop(s, BrokerErrorCode.UNKNOWN_CODEC, `no serializer plugin provides codec ${hello.codec}${known ? `; available: ${known}` : ''}`);
      },
    );
  }

  /** Authenticates the client (when an access provider is set), then opens the session. */
  async #admit(s: Session, hello: Hello, codec: Codec): Promise<void> {
    if (s.state !== 'resolving') return;
    if (this.#accessOption) {
      const address = s.socket.remoteAddress ?? 'unknown';
      const inProgress = this.#logins.get(address) ?? 0;
      if (inProgress >= this.#maxLogins) {
        this.#limitedLog.line('auth', `client ${s.id} (${s.remote}) refused: ${inProgress} logins from this address are being checked`);
        this.#drop(s, BrokerErrorCode.AUTH_FAILED, `too many logins in progress from ${address}; try again later`);
        return;
      }
      this.#logins.set(address, inProgress + 1);
      let identity: AccessIdentity | undefined;
      try {
        try {
          const provider = await this.#accessProvider();
          const epoch = this.#accessEpoch;
          identity = await provider.authenticate({ ...(hello.username !== undefined ? { username: hello.username, password: hello.password ?? '' } : {}), remote: address });
          // the rules were reloaded while this login was being checked: it must hold under the new ones
          if (identity && epoch !== this.#accessEpoch && provider.admits && !provider.admits(identity)) identity = undefined;
        } catch (err) {
          this.log.error(`client ${s.id}: the access provider failed`, err);
          identity = undefined;
        }
        // a refusal takes a while, so guessing passwords is slow (the slot stays taken meanwhile)
        if (!identity && this.#authDelayMs > 0 && s.state === 'resolving') await new Promise((r) => setTimeout(r, this.#authDelayMs).unref());
      } finally {
        const left = (this.#logins.get(address) ?? 1) - 1;
        if (left > 0) this.#logins.set(address, left);
        else this.#logins.delete(address);
      }
      if (s.state !== 'resolving') return;
      if (!identity) {
        const reason = hello.username === undefined ? 'this broker needs a user name and password (anonymous access is off)' : `user ${JSON.stringify(hello.username)} and this password are not accepted`;
        this.#host.access.hooks.denied.call(s.remote, hello.username, reason);
        this.#limitedLog.line('auth', `client ${s.id} (${s.remote}) refused: ${reason}`);
        this.#drop(s, BrokerErrorCode.AUTH_FAILED, reason);
        return;
      }
      s.identity = identity;
      if (identity.username !== undefined) s.owner = `user:${identity.username}`;
      this.#host.access.hooks.authenticated.call(s.remote, identity.username);
    }
    s.codec = codec;
    s.wire = hello.codec;
    s.state = 'open';
    s.queue.write(welcomeFrame(this.#maxFrame));
    const backlog = s.backlog;
    s.backlog = [];
    try {
      for (const frame of backlog) {
        if (s.state !== 'open') break;
        this.#onFrame(s, frame);
      }
    } catch (err) {
      this.#fail(s, err);
    }
    if (s.state === 'open') s.socket.resume();
  }

  /** Whether the client may read exactly `topic` (for LIST_TOPICS; not cached: listing is rare). */
  #mayRead(s: Session, topic: string): boolean {
    try {
      return this.#accessResolved?.authorize(s.identity ?? { username: undefined }, 'subscribe', topic) === true;
    } catch (err) {
      this.log.error('the access provider failed to authorize', err);
      return false;
    }
  }

  /** The NOT_ALLOWED error for a refused operation (and a rate-limited log line). */
  #denied(s: Session, what: string, topic: string): BrokerError {
    const who = s.identity?.username === undefined ? 'anonymous clients' : `user ${JSON.stringify(s.identity.username)}`;
    const reason = `${who} may not ${what} ${JSON.stringify(topic.slice(0, 100))}`;
    this.#host.access.hooks.denied.call(s.remote, s.identity?.username, reason);
    this.#limitedLog.line('denied', `client ${s.id} (${s.remote}): ${reason}`, 'debug');
    return new BrokerError(BrokerErrorCode.NOT_ALLOWED, reason);
  }

  /** The access provider, created once from `options.access`. */
  #accessProvider(): Promise<AccessProvider> {
    const option = this.#accessOption!;
    this.#access ??= ('authenticate' in option ? Promise.resolve(option) : this.#host.access.create(option.provider, option.options ?? {})).then((p) => (this.#accessResolved = p));
    this.#access.catch(() => (this.#access = undefined)); // a later listen() may try again
    return this.#access;
  }

  /**
   * Whether the client may publish to `topic` or subscribe to it (a topic with everything under
   * it, `/` for all, or a wildcard filter). Asked once per topic and connection, then cached.
   */
  #may(s: Session, action: 'publish' | 'subscribe', topic: string): boolean {
    if (!this.#accessOption) return true;
    const provider = this.#accessResolved;
    if (!provider) return false; // never open before the provider exists; fail closed all the same
    const key = action === 'publish' ? `p${topic}` : `s${topic}`;
    let ok = s.allowed.get(key);
    if (ok === undefined) {
      const filter = action === 'publish' || isWildcard(topic) ? topic : topic === '/' ? '#' : `${topic}/#`;
      try {
        ok = provider.authorize(s.identity ?? { username: undefined }, action, filter) === true;
      } catch (err) {
        this.log.error('the access provider failed to authorize', err);
        ok = false;
      }
      if (s.allowed.size >= 1024) s.allowed.clear();
      s.allowed.set(key, ok);
    }
    return ok;
  }

  /** The id of the plugin that contributes codec `name` (for PluginError reports). */
  #pluginOf(codec: Codec): string {
    const owner = this.#host.plugins().find((p) => p.manifest?.contributes.serializers.some((s) => s.id === codec.name));
    return owner?.id ?? codec.name;
  }

  #wireOf(name: string): string {
    for (let id = 0; id < 256; id++) if (this.#host.serialization.nameOf(id) === name) return String(id);
    return '?';
  }

  #control(s: Session, type: number, body: Buffer): void {
    switch (type) {
      case FrameType.SUBSCRIBE:
        return this.#subscribe(s, body);
      case FrameType.UNSUBSCRIBE:
        return this.#unsubscribe(s, body);
      case FrameType.LIST_TOPICS: {
        const id = readId(body, 'LIST_TOPICS');
        const all = this.#tree.topics();
        // with access control, a client sees only the topics it may read
        const visible = this.#accessOption ? all.filter((t) => this.#mayRead(s, t)) : all;
        this.#reply(s, topicsFrame(id, visible));
        return;
      }
      case FrameType.STATS: {
        const id = readId(body, 'STATS');
        this.#reply(s, statsReplyFrame(id, JSON.stringify(this.stats())));
        return;
      }
      case FrameType.PING:
        if (body.length !== 1) throw new BrokerError(BrokerErrorCode.MALFORMED, 'PING carries no body');
        this.#reply(s, pingFrame(FrameType.PONG));
        return;
      case FrameType.PONG:
        return; // its arrival already counted as activity
      case FrameType.HELLO:
        throw new BrokerError(BrokerErrorCode.OUT_OF_ORDER, 'HELLO was already received on this connection');
      case FrameType.WELCOME:
      case FrameType.PUBACK:
      case FrameType.SUBACK:
      case FrameType.UNSUBACK:
      case FrameType.TOPICS:
      case FrameType.STATS_REPLY:
      case FrameType.MESSAGE:
      case FrameType.ERROR:
        throw new BrokerError(BrokerErrorCode.OUT_OF_ORDER, `frame type 0x${type.toString(16)} is sent by the broker, not to it`);
      default:
        if (this.#acked.handles(type)) return this.#acked.frame(this.#linkOf(s), type, body, (filter, codec) => this.#lastValues(filter, codec, s));
        throw new BrokerError(BrokerErrorCode.MALFORMED, `unknown frame type 0x${type.toString(16)}`);
    }
  }

  /** The node for a topic from the wire, validated and created if new. */
  #node(topic: string, root: boolean): Node {
    const found = this.#tree.get(topic);
    if (found && (root || found !== this.#tree.root)) return found;
    const problem = checkTopic(topic, { root });
    if (problem) throw new BrokerError(BrokerErrorCode.BAD_TOPIC, `${JSON.stringify(topic.slice(0, 100))}: ${problem}`);
    const segments = topic === '/' ? 0 : topic.split('/').length;
    if (this.#tree.size + segments > this.#maxTopics && !this.#tree.get(topic)) {
      throw new BrokerError(BrokerErrorCode.LIMIT, `the broker holds its maximum of ${this.#maxTopics} topics`);
    }
    return this.#tree.ensure(topic);
  }

  /**
   * The PUBLISH topic at `body[8..tend)` as text, checked to be UTF-8. A producer usually repeats
   * its topic: the bytes of the last one it sent (already checked) are kept, and an equal topic
   * reuses its string.
   */
  #topicOf(s: Session, buf: Buffer, from: number, to: number): string {
    const last = s.topicBytes;
    const n = to - from;
    if (last !== undefined && last.length === n) {
      let i = 0;
      while (i < n && last[i] === buf[from + i]) i++;
      if (i === n) return s.topic;
    }
    const raw = buf.subarray(from, to);
    if (!isUtf8(raw)) throw new BrokerError(BrokerErrorCode.MALFORMED, 'PUBLISH topic is not valid UTF-8');
    const topic = raw.toString('utf8');
    if (n <= MAX_TOPIC_BYTES) {
      s.topicBytes = Buffer.from(raw);
      s.topic = topic;
    }
    return topic;
  }

  /** A PUBLISH frame: its body is `buf[at..end)` (no view is made of it: this runs per message). */
  #publish(s: Session, buf: Buffer, at: number, end: number): void {
    if (!(s.role & Role.PRODUCER)) throw new BrokerError(BrokerErrorCode.NOT_ALLOWED, 'this connection announced itself as a consumer; it may not publish');
    if (end - at < 8) throw new BrokerError(BrokerErrorCode.MALFORMED, `PUBLISH frame is truncated (${end - at} bytes)`);
    const flags = buf[at + 1]!;
    const tend = at + 8 + buf.readUInt16BE(at + 6);
    if (end < tend) throw new BrokerError(BrokerErrorCode.MALFORMED, 'PUBLISH topic runs past the end of the frame');
    const topic = this.#topicOf(s, buf, at + 8, tend);
    let start = tend;
    let expiresAt = 0;
    if (flags & PublishFlag.EXPIRY) {
      if (end < tend + 4) throw new BrokerError(BrokerErrorCode.MALFORMED, 'PUBLISH expiry runs past the end of the frame');
      const secs = buf.readUInt32BE(tend);
      if (secs === 0) throw new BrokerError(BrokerErrorCode.MALFORMED, 'PUBLISH expiry must be at least 1 second');
      expiresAt = Date.now() + secs * 1000;
      start += 4;
    }
    if (flags & ~(PublishFlag.ACK | PublishFlag.CLEAR | PublishFlag.EXPIRY)) throw new BrokerError(BrokerErrorCode.MALFORMED, `PUBLISH flags 0x${flags.toString(16)} has unknown bits`);
    if (flags & PublishFlag.CLEAR) {
      if (end !== start || expiresAt) throw new BrokerError(BrokerErrorCode.MALFORMED, 'a PUBLISH that clears a last value carries no payload and no expiry');
      const problem = checkTopic(topic);
      if (problem) throw new BrokerError(BrokerErrorCode.BAD_TOPIC, `${JSON.stringify(topic.slice(0, 100))}: ${problem}`);
      if (!this.#may(s, 'publish', topic)) throw this.#denied(s, 'clear the last value of', topic);
      const node = this.#tree.get(topic);
      if (node) this.#clear(node);
      this.#relay?.cleared(topic);
      if (flags & PublishFlag.ACK) {
        const puback = idFrame(FrameType.PUBACK, buf.readUInt32BE(at + 2));
        if (this.#store.durable) this.#store.flushed().then(() => s.state === 'open' && this.#reply(s, puback), (err) => this.#storeFailed(s, err));
        else this.#reply(s, puback);
      }
      return;
    }
    if (this.#accessOption && !this.#may(s, 'publish', topic)) {
      const problem = checkTopic(topic);
      if (problem) throw new BrokerError(BrokerErrorCode.BAD_TOPIC, `${JSON.stringify(topic.slice(0, 100))}: ${problem}`);
      throw this.#denied(s, 'publish to', topic);
    }
    const node = this.#node(topic, false);
    const payload = buf.subarray(start, end);
    const codec = s.codec!;
    let value: Value;
    try {
      value = codec.decode(payload);
    } catch (err) {
      this.#tree.prune(node); // a refused publish must not leave an empty node behind
      if (!(err instanceof CodecError)) this.#host.pluginError(this.#pluginOf(codec), `serializer:${codec.name}.decode`, err);
      throw new BrokerError(BrokerErrorCode.BAD_PAYLOAD, `payload does not decode as ${codec.name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    try {
      measureValue(value, this.#budget);
    } catch (err) {
      this.#tree.prune(node);
      throw err;
    }
    const payloads: (Buffer | undefined)[] = [];
    payloads[s.wire] = payload; // a view of the input until #encodeFor gives it bytes of its own
    const retained: Retained = { value, size: payload.length, payloads, owner: s.owner, segments: node.segments };
    const deliveries = this.#distribute(node, retained, expiresAt, s.wire);
    this.#counters.messagesIn++;
    const relayed = this.#relay?.published(node.path, s.wire, payloads[s.wire]!, expiresAt);
    if (flags & PublishFlag.ACK) {
      const puback = idFrame(FrameType.PUBACK, buf.readUInt32BE(at + 2));
      this.#counters.acks++;
      // durable: acknowledged only once the last value and every session's copy are on disk,
      // and in a cluster once Redis has it (then it reaches every node even if this one dies)
      if (this.#store.durable || relayed) Promise.all([this.#store.flushed(), relayed]).then(() => s.state === 'open' && this.#reply(s, puback), (err) => this.#storeFailed(s, err));
      else this.#reply(s, puback);
    }
    if (this.listenerCount('publish') > 0) this.emit('publish', { topic: node.path, value, codec: codec.name, clientId: s.id, deliveries });
  }

  /** Keeps a decoded message as the topic's last value and delivers it to every subscriber here; returns the deliveries. */
  #distribute(node: Node, retained: Retained, expiresAt: number, borrowed = -1, remote: boolean | ReadonlySet<string> = false): number {
    let deliveries: number;
    try {
      // every target codec encodes first: a value one cannot carry is refused before anyone gets it
      this.#encodeFor(node, retained, borrowed);
      if (this.#acked.active) this.#acked.route(node.path.split('/'), (c) => this.#encodedFor(retained, c));
      // kept before delivering, so a subscriber dropped while it is written to cannot prune the node
      this.#keep(node, retained);
      if (expiresAt) this.#expiring.set(node, expiresAt);
      else if (this.#expiring.size > 0) this.#expiring.delete(node);
      if (this.#store.durable) this.#storeRetained(node, retained, expiresAt || undefined);
      deliveries = this.#send(node);
      if (this.#acked.active) {
        const acked = this.#acked.commit(node.pathBytes, remote);
        deliveries += acked;
        this.#counters.messagesOut += acked;
      }
    } catch (err) {
      this.#tree.prune(node);
      throw err;
    } finally {
      this.#release();
      this.#acked.release();
    }
    return deliveries;
  }

  // ------------------------------------------------------------------ cluster hooks (cluster-redis.ts)

  /** Sets who hears of every publish and clear accepted here (a cluster relay), or none. */
  setRelay(relay: BrokerRelay | undefined): void {
    this.#relay = relay;
  }

  /**
   * Delivers a message another node accepted: kept as the last value and sent to every
   * subscriber here, as if published locally (never relayed back). Resolves with the deliveries.
   */
  async deliverRemote(topic: string, wire: number, payload: Buffer, expiresAt = 0, routed?: ReadonlySet<string>): Promise<number> {
    const codec = await this.codecFor(wire);
    if (expiresAt && expiresAt <= Date.now()) return 0;
    const node = this.#node(topic, false);
    let value: Value;
    try {
      value = codec.decode(payload);
      measureValue(value, this.#budget);
    } catch (err) {
      this.#tree.prune(node);
      throw err;
    }
    const payloads: (Buffer | undefined)[] = [];
    payloads[wire] = payload;
    const deliveries = this.#distribute(node, { value, size: payload.length, payloads, owner: 'cluster', segments: node.segments }, expiresAt, -1, routed ?? true);
    this.#counters.messagesIn++;
    return deliveries;
  }

  /** The codec with wire id `wire`, resolved through the plugin host once. */
  codecFor(wire: number): Promise<Codec> {
    let pending = this.#codecs.get(wire);
    if (!pending) {
      pending = this.#host.serialization.codec(wire);
      this.#codecs.set(wire, pending);
      pending.catch(() => this.#codecs.delete(wire));
    }
    return pending;
  }

  /** The acknowledged-delivery engine (cluster-redis.ts keeps persistent sessions in Redis through it). */
  get sessionEngine(): SessionEngine {
    return this.#acked;
  }

  /** Clears a last value another node cleared. */
  clearRemote(topic: string): void {
    const node = this.#tree.get(topic);
    if (node) this.#clear(node);
  }

  /**
   * Stores `retained` as the node's last value if the budgets allow it (in total and for the
   * client that published it), releasing what the value it replaces held.
   */
  #keep(node: Node, retained: Retained): void {
    const old = node.retained;
    if (old !== undefined && old.owner === retained.owner) {
      // the common case, a client replacing its own value: only the bytes change (the same checks)
      const delta = retained.size - old.size;
      if (delta === 0) {
        // nothing to count or check: the totals stay what they were
        this.#tree.retain(node, retained);
        return;
      }
      if (this.#retainedBytes + delta > this.#maxRetained) throw new BrokerError(BrokerErrorCode.LIMIT, `the broker keeps at most ${this.#maxRetained} bytes of last values`);
      const mine = (this.#retainedBy.get(retained.owner) ?? 0) + delta;
      if (mine > this.#maxRetainedPerClient) {
        throw new BrokerError(BrokerErrorCode.LIMIT, `a client (${retained.owner}) may keep at most ${this.#maxRetainedPerClient} bytes of last values per client; clear some or publish smaller values`);
      }
      this.#retainedBytes += delta;
      this.#retainedBy.set(retained.owner, mine);
      this.#tree.retain(node, retained);
      return;
    }
    const total = this.#retainedBytes - (old?.size ?? 0) + retained.size;
    if (total > this.#maxRetained) throw new BrokerError(BrokerErrorCode.LIMIT, `the broker keeps at most ${this.#maxRetained} bytes of last values`);
    const mine = (this.#retainedBy.get(retained.owner) ?? 0) - (old?.owner === retained.owner ? old.size : 0) + retained.size;
    if (mine > this.#maxRetainedPerClient) {
      throw new BrokerError(BrokerErrorCode.LIMIT, `a client (${retained.owner}) may keep at most ${this.#maxRetainedPerClient} bytes of last values per client; clear some or publish smaller values`);
    }
    if (!old || old.owner !== retained.owner) {
      const topics = this.#topicsBy.get(retained.owner) ?? 0;
      if (topics >= this.#maxTopicsPerClient) throw new BrokerError(BrokerErrorCode.LIMIT, `a client (${retained.owner}) may hold last values on at most ${this.#maxTopicsPerClient} topics`);
    }
    // checked before anything changes; replacing one's own value costs nothing more
    const extra = old?.owner === retained.owner ? 0 : retained.segments;
    if ((this.#nodesBy.get(retained.owner) ?? 0) + extra > this.#maxNodesPerClient) this.#charge(retained.owner, extra);
    if (old) this.#uncount(old);
    this.#charge(retained.owner, retained.segments); // refunded by #uncount with the value
    this.#count(retained, retained.size);
    this.#topicsBy.set(retained.owner, (this.#topicsBy.get(retained.owner) ?? 0) + 1);
    this.#tree.retain(node, retained);
  }

  // ------------------------------------------------------------------ acknowledged delivery hooks

  #storeRetained(node: Node, retained: Retained, expiresAt: number | undefined): void {
    const wire = retained.payloads.findIndex((p) => p !== undefined);
    this.#store.putRetained({ topic: node.path, wire, payload: retained.payloads[wire]!, owner: retained.owner, ...(expiresAt !== undefined ? { expiresAt } : {}) });
  }

  #storeFailed(s: Session, err: unknown): void {
    this.log.error('the broker store (or the cluster relay) failed to commit', err);
    this.#drop(s, BrokerErrorCode.INTERNAL, 'the broker could not store or relay the message');
  }

  #linkOf(s: Session): Link {
    if (s.link) return s.link;
    const link: Link = {
      id: s.id,
      get owner() {
        return s.owner;
      },
      codec: s.codec!,
      wire: s.wire,
      consumer: (s.role & Role.CONSUMER) !== 0,
      user: s.identity?.username,
      authorizeSubscribe: (filter) => {
        if (this.#accessOption && !this.#may(s, 'subscribe', filter)) throw this.#denied(s, 'subscribe to', filter);
      },
      send: (frame) => {
        if (s.state === 'open') this.#reply(s, frame);
      },
      pending: () => (s.socket.destroyed ? 0 : s.queue.pending),
      isOpen: () => s.state === 'open',
      drop: (code, message) => this.#drop(s, code, message),
    };
    s.link = link;
    return link;
  }

  /** A message's payload in `codec` for an acknowledged subscriber; throws when it cannot be carried. */
  #encodedFor(retained: Retained, codec: Codec): Buffer {
    const payload = this.#payload(retained, codec, false);
    if (payload instanceof CodecError) throw new BrokerError(BrokerErrorCode.BAD_PAYLOAD, `the value cannot be sent to subscribers using ${codec.name}: ${payload.message}`, { cause: payload });
    if (payload === null) throw new BrokerError(BrokerErrorCode.BAD_PAYLOAD, `the ${codec.name} codec plugin failed to encode the value`);
    if (payload.length > this.#maxEncoded) throw new BrokerError(BrokerErrorCode.LIMIT, `the value's ${codec.name} encoding is ${payload.length} bytes, over the broker's ${this.#maxEncoded}-byte limit for a translated message`);
    return payload;
  }

  /** Last values matching a (trie-form) filter, encoded in `codec`; ones it cannot carry are skipped. */
  #lastValues(filter: string, codec: Codec, s: Session): { pathBytes: Buffer; payload: Buffer }[] {
    const out: { pathBytes: Buffer; payload: Buffer }[] = [];
    for (const n of retainedMatching(this.#tree, filter)) {
      const payload = this.#payload(n.retained!, codec, true);
      if (payload === null || payload instanceof CodecError || payload.length > this.#maxEncoded) {
        this.log.debug(`last value of ${n.path} not sent to client ${s.id} (acknowledged subscription): cannot be carried in ${codec.name}`);
        continue;
      }
      out.push({ pathBytes: n.pathBytes, payload });
    }
    return out;
  }

  #count(retained: Retained, bytes: number): void {
    this.#retainedBytes += bytes;
    this.#retainedBy.set(retained.owner, (this.#retainedBy.get(retained.owner) ?? 0) + bytes);
  }

  #uncount(retained: Retained): void {
    this.#refund(retained.owner, retained.segments);
    this.#retainedBytes -= retained.size;
    const left = (this.#retainedBy.get(retained.owner) ?? 0) - retained.size;
    if (left > 0) this.#retainedBy.set(retained.owner, left);
    else this.#retainedBy.delete(retained.owner);
    const topics = (this.#topicsBy.get(retained.owner) ?? 1) - 1;
    if (topics > 0) this.#topicsBy.set(retained.owner, topics);
    else this.#topicsBy.delete(retained.owner);
  }

  /**
   * Collects every connection subscribed to the message's topic or an ancestor, once each, and
   * builds one MESSAGE frame per target codec (never per subscriber). The encodings are cached on
   * `retained` and counted in its size.
   */
  #encodeFor(node: Node, retained: Retained, borrowed: number): void {
    ++this.#seq;
    this.#current = retained;
    this.#currentNode = node;
    for (let n: Node | undefined = node; n !== undefined; n = n.parent) if (n.subscribers.size > 0) this.#addTargets(n.subscribers);
    if (this.#wild.size > 0) this.#wild.match(node.path.split('/'), this.#addWildTargets);
    if (borrowed >= 0) {
      // the producer's payload is still a view of the socket's input: keep a copy of its own, or the
      // copy its MESSAGE frame already made (the frame is never written to after it is built)
      const frame = this.#frames[borrowed];
      retained.payloads[borrowed] = frame ? frame.subarray(MESSAGE_HEADER_BYTES + node.pathBytes.length) : Buffer.from(retained.payloads[borrowed]!);
    }
  }

  readonly #addWildTargets = (subscribers: Set<Session>): void => this.#addTargets(subscribers);

  /** `#encodeFor`'s step: adds the open subscribers not yet reached, encoding for each new codec. */
  #addTargets(subscribers: Set<Session>): void {
    const seq = this.#seq;
    const frames = this.#frames;
    for (const sub of subscribers) {
      if (sub.seen === seq || sub.state !== 'open') continue;
      sub.seen = seq;
      this.#targets[this.#targetCount++] = sub;
      const w = sub.wire;
      if (frames[w] !== undefined) continue;
      const payload = this.#payload(this.#current!, sub.codec!, false);
      if (payload instanceof CodecError) {
        throw new BrokerError(BrokerErrorCode.BAD_PAYLOAD, `the value cannot be sent to subscribers using ${sub.codec!.name}: ${payload.message}`, { cause: payload });
      }
      if (payload && payload.length > this.#maxEncoded) {
        throw new BrokerError(BrokerErrorCode.LIMIT, `the value's ${sub.codec!.name} encoding is ${payload.length} bytes, over the broker's ${this.#maxEncoded}-byte limit for a translated message`);
      }
      frames[w] = payload ? messageFrame(this.#currentNode!.pathBytes, payload, false) : null;
      this.#used[this.#usedCount++] = w;
    }
  }

  /** Writes the frames built by `#encodeFor` to its targets; returns the number of deliveries. */
  #send(node: Node): number {
    const frames = this.#frames;
    const targets = this.#targets;
    const n = this.#targetCount;
    let count = 0;
    for (let i = 0; i < n; i++) {
      const sub = targets[i]!;
      const frame = frames[sub.wire];
      if (!frame) {
        // its codec plugin is broken: losing messages silently would break the stream
        this.#drop(sub, BrokerErrorCode.INTERNAL, `the ${sub.codec!.name} codec plugin failed to encode a message on ${node.path}`);
        continue;
      }
      if (sub.state !== 'open') continue;
      sub.queue.write(frame);
      count++;
      if (sub.queue.pending > this.#maxBuffer) this.#slowConsumer(sub);
    }
    this.#counters.messagesOut += count;
    return count;
  }

  /** Clears the per-publish scratch. */
  #release(): void {
    for (let i = 0; i < this.#usedCount; i++) this.#frames[this.#used[i]!] = undefined;
    this.#usedCount = 0;
    for (let i = 0; i < this.#targetCount; i++) this.#targets[i] = undefined;
    this.#targetCount = 0;
    this.#current = undefined;
    this.#currentNode = undefined;
  }

  /**
   * The value's bytes in `codec`, encoded at most once per message and cached with it. A
   * `CodecError` means the value is outside what that codec carries; null means the plugin itself
   * failed (reported).
   */
  #payload(retained: Retained, codec: Codec, kept: boolean): Buffer | CodecError | null {
    const cached = retained.payloads[codec.wireId];
    if (cached) return cached;
    try {
      const bytes = codec.encode(retained.value);
      const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      this.#encodes.set(codec.name, (this.#encodes.get(codec.name) ?? 0) + 1);
      if (buf.length > this.#maxEncoded) return buf; // refused by the caller; never kept
      if (!kept) {
        // not counted yet: #keep counts the whole size when the value is stored
        retained.payloads[codec.wireId] = buf;
        retained.size += buf.length;
      } else if (this.#retainedBytes + buf.length <= this.#maxRetained && (this.#retainedBy.get(retained.owner) ?? 0) + buf.length <= this.#maxRetainedPerClient) {
        retained.payloads[codec.wireId] = buf;
        retained.size += buf.length;
        this.#count(retained, buf.length);
      } // else: sent this once, not kept (the budget is full)
      return buf;
    } catch (err) {
      if (err instanceof CodecError) return err;
      this.#host.pluginError(this.#pluginOf(codec), `serializer:${codec.name}.encode`, err);
      return null;
    }
  }

  /** Queues a reply; a client that never reads its replies is bounded like a slow consumer. */
  #reply(s: Session, frame: Buffer): void {
    s.queue.write(frame);
    if (s.queue.pending > this.#maxBuffer) this.#slowConsumer(s);
  }

  #slowConsumer(s: Session): void {
    const pending = s.queue.pending;
    this.#counters.slowConsumers++;
    this.#limitedLog.line('slow', `client ${s.id} (${s.remote}) is a slow consumer: ${pending} bytes waiting > ${this.#maxBuffer}; disconnecting`);
    this.emit('slow-consumer', s.info(), pending);
    this.#drop(s, BrokerErrorCode.SLOW_CONSUMER, `${pending} bytes waiting for this consumer exceed the broker's limit of ${this.#maxBuffer}`);
  }

  #subscribe(s: Session, body: Buffer): void {
    if (!(s.role & Role.CONSUMER)) throw new BrokerError(BrokerErrorCode.NOT_ALLOWED, 'this connection announced itself as a producer; it may not subscribe');
    const { id, topic } = readTopicRequest(body, 'SUBSCRIBE');
    if (this.#accessOption && !this.#may(s, 'subscribe', topic)) {
      const problem = isWildcard(topic) ? checkFilter(topic) : checkTopic(topic, { root: true });
      if (problem) throw new BrokerError(BrokerErrorCode.BAD_TOPIC, `${JSON.stringify(topic.slice(0, 100))}: ${problem}`);
      throw this.#denied(s, 'subscribe to', topic);
    }
    let matching: Iterable<Node>;
    if (isWildcard(topic)) {
      const problem = checkFilter(topic);
      if (problem) throw new BrokerError(BrokerErrorCode.BAD_TOPIC, `${JSON.stringify(topic.slice(0, 100))}: ${problem}`);
      if (!s.wilds.has(topic)) {
        if (s.subs.size + s.wilds.size >= this.#maxSubs) throw new BrokerError(BrokerErrorCode.LIMIT, `a connection may hold at most ${this.#maxSubs} subscriptions`);
        this.#charge(s.owner, segmentsOf(topic));
        s.wilds.set(topic, this.#wild.add(topic, s));
      }
      matching = retainedMatching(this.#tree, topic);
    } else {
      const node = this.#node(topic, true);
      if (!node.subscribers.has(s) && s.subs.size + s.wilds.size >= this.#maxSubs) {
        this.#tree.prune(node);
        throw new BrokerError(BrokerErrorCode.LIMIT, `a connection may hold at most ${this.#maxSubs} subscriptions`);
      }
      if (!node.subscribers.has(s)) {
        try {
          this.#charge(s.owner, node.segments);
        } catch (err) {
          this.#tree.prune(node);
          throw err;
        }
      }
      node.subscribers.add(s);
      s.subs.add(node);
      matching = this.#tree.retainedUnder(node);
    }
    const frames: Buffer[] = [];
    for (const n of matching) {
      const payload = this.#payload(n.retained!, s.codec!, true);
      if (payload !== null && !(payload instanceof CodecError) && payload.length > this.#maxEncoded) {
        this.log.debug(`last value of ${n.path} not sent to client ${s.id}: its ${s.codec!.name} encoding is over ${this.#maxEncoded} bytes`);
        continue;
      }
      if (payload === null) {
        this.#drop(s, BrokerErrorCode.INTERNAL, `the ${s.codec!.name} codec plugin failed to encode the last value of ${n.path}`);
        return;
      }
      // a last value this codec cannot carry (NaN for JSON) is skipped, not fatal to the subscriber
      if (payload instanceof CodecError) this.log.debug(`last value of ${n.path} not sent to client ${s.id}: ${payload.message}`);
      else frames.push(messageFrame(n.pathBytes, payload, true));
    }
    s.queue.write(subackFrame(id, frames.length));
    for (const f of frames) s.queue.write(f);
    this.#counters.messagesOut += frames.length;
    this.emit('subscribe', s.info(), topic);
    if (s.queue.pending > this.#maxBuffer) this.#slowConsumer(s);
  }

  #unsubscribe(s: Session, body: Buffer): void {
    if (!(s.role & Role.CONSUMER)) throw new BrokerError(BrokerErrorCode.NOT_ALLOWED, 'this connection announced itself as a producer; it has no subscriptions');
    const { id, topic } = readTopicRequest(body, 'UNSUBSCRIBE');
    const problem = isWildcard(topic) ? checkFilter(topic) : checkTopic(topic, { root: true });
    if (problem) throw new BrokerError(BrokerErrorCode.BAD_TOPIC, `${JSON.stringify(topic.slice(0, 100))}: ${problem}`);
    const wild = s.wilds.get(topic);
    if (wild) {
      s.wilds.delete(topic);
      this.#wild.remove(wild, s);
      this.#refund(s.owner, segmentsOf(topic));
      this.emit('unsubscribe', s.info(), topic);
    }
    const node = this.#tree.get(topic);
    if (node && s.subs.delete(node)) {
      this.#refund(s.owner, node.segments);
      node.subscribers.delete(s);
      this.#tree.prune(node);
      this.emit('unsubscribe', s.info(), topic);
    }
    this.#reply(s, idFrame(FrameType.UNSUBACK, id));
  }
}

/** Creates a broker that takes its codecs from `options.host`'s serializer plugins. */
export function createBroker(options: BrokerOptions): Broker {
  return new Broker(options);
}
