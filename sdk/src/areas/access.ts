/**
 * The access hook area: who a client is (authenticate) and what it may do (authorize). A plugin
 * contributes an access provider under an id (`contributes.access`); the broker creates one from
 * it with its options, authenticates every connection once (HELLO's credentials) and authorizes
 * every publish, clear and subscription. An app plugs in its own identity source the same way
 * it plugs in a strategy or a codec.
 */
import { SyncHook } from 'tapable';
import { ContributionRegistry, type AreaHost } from './registry.js';
import { PluginError } from '../errors.js';

/** What a client presented: nothing (anonymous) or a user name and password. */
export interface AccessCredentials {
  readonly username?: string;
  readonly password?: string;
  /** The client's address, e.g. `127.0.0.1`. */
  readonly remote: string;
}

/** An authenticated client. `username` is undefined for an anonymous one. */
export interface AccessIdentity {
  readonly username: string | undefined;
}

/** What a client asks to do: publish (or clear) a topic, or subscribe to a topic or filter. */
export type AccessAction = 'publish' | 'subscribe';

export interface AccessProvider {
  /**
   * The identity of a client, or undefined to refuse it. Without credentials the provider
   * decides whether anonymous clients are welcome. May be async (a password hash, a directory).
   */
  authenticate(credentials: AccessCredentials): AccessIdentity | undefined | Promise<AccessIdentity | undefined>;
  /**
   * Whether `identity` may do `action` on `topic`. For subscribe, `topic` is the filter as
   * subscribed (`/a` means `/a` and everything under it; `+` and `#` are wildcards). Synchronous:
   * it runs on the hot path (the broker caches answers per connection).
   */
  authorize(identity: AccessIdentity, action: AccessAction, topic: string): boolean;
  /** Releases what the provider holds (file watchers, connections). */
  dispose?(): void | Promise<void>;
}

export interface AccessInit {
  readonly options: Readonly<Record<string, unknown>>;
}

export type AccessFactory = (init: AccessInit) => AccessProvider | Promise<AccessProvider>;

/** Observer hooks for the access area. */
export function createAccessHooks() {
  return Object.freeze({
    /** SyncHook<[string, string | undefined]>: a client was authenticated (remote, username). */
    authenticated: new SyncHook<[string, string | undefined]>(['remote', 'username']),
    /** SyncHook<[string, string | undefined, string]>: a client was refused (remote, username, reason). */
    denied: new SyncHook<[string, string | undefined, string]>(['remote', 'username', 'reason']),
  });
}
export type AccessHooks = ReturnType<typeof createAccessHooks>;

/** The host side of the access area. */
export class AccessArea {
  readonly hooks: AccessHooks = createAccessHooks();
  /** @internal */
  readonly registry = new ContributionRegistry<AccessFactory>('access');
  readonly #host: AreaHost;

  constructor(host: AreaHost) {
    this.#host = host;
  }

  /** Ids of every declared access provider. */
  providers(): string[] {
    return [...this.#host.contributors('access').keys()];
  }

  /**
   * Creates access provider `id` with `options`, activating its plugin on first use. The
   * provider's calls are guarded: a throw is reported with the plugin id and counts as a refusal.
   */
  async create(id: string, options: Record<string, unknown> = {}): Promise<AccessProvider> {
    const plugin = await this.#host.activateContributor('access', id);
    const entry = this.registry.get(id);
    if (!entry) throw new PluginError(plugin, `access:${id}`, new Error('the plugin activated but did not register this access provider'));
    let provider: AccessProvider;
    try {
      provider = await entry.value({ options: Object.freeze({ ...options }) });
    } catch (err) {
      throw new PluginError(entry.plugin, `access:${id}`, err);
    }
    const report = (hook: string, err: unknown) => this.#host.reportPluginError(err instanceof PluginError ? err : new PluginError(entry.plugin, `access:${id}.${hook}`, err));
    return Object.freeze({
      authenticate: async (credentials: AccessCredentials) => {
        try {
          return await provider.authenticate(credentials);
        } catch (err) {
          report('authenticate', err);
          return undefined;
        }
      },
      authorize: (identity: AccessIdentity, action: AccessAction, topic: string) => {
        try {
          return provider.authorize(identity, action, topic) === true;
        } catch (err) {
          report('authorize', err);
          return false;
        }
      },
      dispose: async () => {
        try {
          await provider.dispose?.();
        } catch (err) {
          report('dispose', err);
        }
      },
    });
  }
}
