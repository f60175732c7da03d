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
  /**
   * Reads the provider's rules again (its files, its directory) and puts them in force at once;
   * `options`, when given, replace the ones it was created with. On any error it throws and the
   * rules in force stay exactly as they were: never half of the new rules, never none. The broker
   * calls it from `reloadAccess()` (the CLI on SIGHUP), then asks `admits` about every client.
   */
  reload?(options?: Readonly<Record<string, unknown>>): AccessReloaded | Promise<AccessReloaded>;
  /**
   * Whether a client authenticated earlier as `identity` (an object `authenticate` returned) is
   * still admitted by the rules in force: false once its user was removed or its password
   * changed, or for an anonymous client once anonymous access is off. Without it, a reload keeps
   * every connected client and only re-checks what they may publish and read.
   */
  admits?(identity: AccessIdentity): boolean;
}

/** What a provider's `reload()` read (for the broker's result and log line). */
export interface AccessReloaded {
  /** Users known after the reload (undefined when the provider does not count them). */
  readonly users?: number;
  /** Grants (ACL lines) in force after the reload (undefined when the provider has no rule list, e.g. no ACL file). */
  readonly rules?: number;
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
    // reload and admits are passed on only when the provider has them (the broker checks for them)
    const reload = provider.reload?.bind(provider);
    const admits = provider.admits?.bind(provider);
    return Object.freeze({
      // a refused reload is an answer (a bad file), not a plugin crash: its error goes to the caller
      ...(reload ? { reload: async (next?: Readonly<Record<string, unknown>>) => reload(next === undefined ? undefined : Object.freeze({ ...next })) } : {}),
      ...(admits
        ? {
            admits: (identity: AccessIdentity) => {
              try {
                return admits(identity) === true;
              } catch (err) {
                report('admits', err);
                return false; // fail closed: a client the provider cannot vouch for goes
              }
            },
          }
        : {}),
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
