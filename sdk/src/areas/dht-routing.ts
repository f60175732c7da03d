/**
 * The DHT routing hook area. The node asks the routing plugin for the next hop toward an id and
 * feeds it membership changes; the plugin keeps its own table and says which entries need to be
 * looked up again. Without a routing plugin a node routes by successor only (O(N) hops).
 */
import { SyncHook } from 'tapable';
import { ContributionRegistry, bindRegistry, type AreaHost } from './registry.js';
import { guardHooks } from '../taps.js';
import { PluginError } from '../errors.js';
import { PluginDriver, guardTable } from '../plugin-driver.js';

/** A ring member. Ids are bigints so rings larger than 2^53 (e.g. 160-bit SHA-1) work. */
export interface DhtNode {
  readonly id: bigint;
  readonly host: string;
  readonly port: number;
}

/** One table entry that should be looked up again: `successor(start)` goes into entry `index`. */
export interface RefreshEntry {
  /** 1-based entry index. */
  readonly index: number;
  readonly start: bigint;
  /** The node the entry holds now, if any. */
  readonly node: DhtNode | undefined;
}

export interface DhtRoutingTable {
  /** The closest node preceding `id` that this table knows, or `undefined` to use the successor. */
  closestPrecedingNode(id: bigint): DhtNode | undefined;
  /** The node's successor changed (join, stabilize or failure). */
  successorChanged(successor: DhtNode): void;
  /** A node was found dead: drop it from every entry. */
  nodeFailed(node: DhtNode): void;
  /** The entries to look up again (fix-fingers). */
  refresh(): readonly RefreshEntry[];
  /** Stores the result of looking up entry `index`'s start. */
  update(index: number, node: DhtNode): void;
  /** Every entry, 1-based order, for INFO and visualisation. */
  entries(): readonly (DhtNode | undefined)[];
}

export interface DhtRoutingInit {
  readonly self: DhtNode;
  /** Identifier bits m: ids live in [0, 2^m). */
  readonly bits: number;
  readonly options: Readonly<Record<string, unknown>>;
}

export type DhtRoutingFactory = (init: DhtRoutingInit) => DhtRoutingTable;

/** Observer hooks for the DHT routing area. */
export function createDhtRoutingHooks() {
  return Object.freeze({
    /** SyncHook<[DhtNode, DhtNode]>: a node's successor changed (node, successor). */
    successorChanged: new SyncHook<[DhtNode, DhtNode]>(['node', 'successor']),
    /** SyncHook<[DhtNode, bigint, number]>: a lookup finished (origin, key id, hops). */
    lookup: new SyncHook<[DhtNode, bigint, number]>(['node', 'id', 'hops']),
  });
}
export type DhtRoutingHooks = ReturnType<typeof createDhtRoutingHooks>;

/** The host side of the DHT routing area. */
export class DhtRoutingArea {
  readonly hooks: DhtRoutingHooks = createDhtRoutingHooks();
  readonly #registry = new ContributionRegistry<DhtRoutingFactory>('dhtRouting');
  readonly #host: AreaHost;

  constructor(host: AreaHost) {
    this.#host = host;
    bindRegistry(this, this.#registry);
    // every tap on the public hooks, the app's included, goes through the guarded path
    guardHooks(this.hooks, 'dhtRouting', (err) => host.reportPluginError(err));
  }

  policies(): string[] {
    return [...this.#host.contributors('dhtRouting').keys()];
  }

  /** Creates a routing table from policy `id` for one node. */
  async createRouting(id: string, init: DhtRoutingInit): Promise<DhtRoutingTable> {
    const plugin = await this.#host.activateContributor('dhtRouting', id);
    const entry = this.#registry.get(id);
    if (!entry) throw new PluginError(plugin, `dhtRouting:${id}`, new Error('the plugin activated but did not register this routing policy'));
    let table: DhtRoutingTable;
    try {
      table = entry.value({ ...init, options: Object.freeze({ ...init.options }) });
    } catch (err) {
      throw new PluginError(entry.plugin, `dhtRouting:${id}`, err);
    }
    return this.#guard(entry.plugin, id, table);
  }

  /** The table's calls go through the guarded path: a throw is a reported PluginError. */
  #guard(plugin: string, id: string, table: DhtRoutingTable): DhtRoutingTable {
    return guardTable(table, new PluginDriver(plugin, `dhtRouting:${id}`, (err) => this.#host.reportPluginError(err)));
  }

  /** Resolves policy `id` to its factory once, for engines that create many tables (simulation). */
  async factory(id: string): Promise<DhtRoutingFactory> {
    await this.#host.activateContributor('dhtRouting', id);
    const entry = this.#registry.get(id)!;
    return (init) => {
      let table: DhtRoutingTable;
      try {
        table = entry.value(init);
      } catch (err) {
        throw new PluginError(entry.plugin, `dhtRouting:${id}`, err);
      }
      return this.#guard(entry.plugin, id, table);
    };
  }
}
