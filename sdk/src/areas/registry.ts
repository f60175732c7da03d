/**
 * The one shape every hook area shares: plugins register providers under ids their manifest
 * declares, and the host looks them up after activating the contributing plugin. Each entry
 * remembers its plugin so failures are attributed.
 */
import { ContributionError, ErrorCodes } from '../errors.js';
import { toDisposable, type Disposable } from '../disposable.js';

export interface Registered<T> {
  readonly plugin: string;
  readonly id: string;
  readonly value: T;
}

export class ContributionRegistry<T> {
  readonly #area: string;
  readonly #entries = new Map<string, Registered<T>>();

  constructor(area: string) {
    this.#area = area;
  }

  /**
   * Registers `value` under `id` for `plugin`. `declared` is the set of ids the plugin's
   * manifest declares for this area; anything else is a `ContributionError`.
   */
  register(plugin: string, declared: ReadonlySet<string>, id: string, value: T): Disposable {
    if (!declared.has(id)) {
      throw new ContributionError(plugin, this.#area, id, `is not declared in the manifest's contributes.${this.#area}; add it there first`);
    }
    const existing = this.#entries.get(id);
    if (existing) {
      throw new ContributionError(plugin, this.#area, id, `is already registered by plugin "${existing.plugin}"`, ErrorCodes.DUPLICATE_CONTRIBUTION);
    }
    const entry: Registered<T> = Object.freeze({ plugin, id, value });
    this.#entries.set(id, entry);
    return toDisposable(() => {
      if (this.#entries.get(id) === entry) this.#entries.delete(id);
    });
  }

  /**
   * Replaces `plugin`'s own entry under `id` in one step (a reload): lookups never see the id
   * missing. The old registration's disposal then leaves the new entry alone.
   */
  replace(plugin: string, declared: ReadonlySet<string>, id: string, value: T): Disposable {
    const existing = this.#entries.get(id);
    if (existing?.plugin !== plugin) return this.register(plugin, declared, id, value);
    if (!declared.has(id)) {
      throw new ContributionError(plugin, this.#area, id, `is not declared in the manifest's contributes.${this.#area}; add it there first`);
    }
    const entry: Registered<T> = Object.freeze({ plugin, id, value });
    this.#entries.set(id, entry);
    return toDisposable(() => {
      if (this.#entries.get(id) === entry) this.#entries.delete(id);
    });
  }

  get(id: string): Registered<T> | undefined {
    return this.#entries.get(id);
  }

  ids(): string[] {
    return [...this.#entries.keys()];
  }
}

const registries = new WeakMap<object, ContributionRegistry<unknown>>();

/**
 * Binds an area to its registry. The registry is reachable only through `registryOf`, which the
 * package does not export: app code cannot register or replace providers behind the host's back.
 */
export function bindRegistry<T>(area: object, registry: ContributionRegistry<T>): ContributionRegistry<T> {
  registries.set(area, registry as ContributionRegistry<unknown>);
  return registry;
}

/** @internal The registry of an area (plugin host and areas only). */
export function registryOf<T>(area: object): ContributionRegistry<T> {
  const registry = registries.get(area);
  if (!registry) throw new TypeError('not a Trellis hook area');
  return registry as ContributionRegistry<T>;
}

/** What an area needs from the host: lazy activation and a place to report plugin failures. */
export interface AreaHost {
  /** Resolves once the plugin folders are scanned and every manifest is indexed. */
  ready(): Promise<void>;
  /** Activates the plugin that contributes `id` to `area` and returns its id. */
  activateContributor(area: AreaName, id: string): Promise<string>;
  /** Declared contributions of `area`: id → contributing plugin id, in discovery order. */
  contributors(area: AreaName): ReadonlyMap<string, string>;
  reportPluginError(error: import('../errors.js').PluginError): void;
}

export type AreaName = 'strategies' | 'serializers' | 'dhtRouting' | 'access';
