/**
 * The plugin context: one frozen object per plugin, handed to `activate`. It holds the plugin's
 * subscriptions, a logger, the error classes, and the registries of the three hook areas. Every
 * registration is tied to the plugin and undone when it deactivates.
 */
import type { Disposable } from './disposable.js';
import type { Logger } from './logger.js';
import type { PluginManifest } from './manifest.js';
import type { ErrorClasses } from './errors.js';
import type { StrategyFactory, RoutingHooks, RouteInfo, Outcome, Backend } from './areas/routing.js';
import type { Codec, SerializationHooks } from './areas/serialization.js';
import type { DhtRoutingFactory, DhtRoutingHooks, DhtNode } from './areas/dht-routing.js';
import type { AccessFactory, AccessHooks } from './areas/access.js';

/** Listener signatures of each area's observer hooks. */
type HookListener<H> = H extends { tap(name: string, fn: infer F): void } ? F : never;
type Listeners<Hooks> = { [K in keyof Hooks]: HookListener<Hooks[K]> };

export interface RoutingRegistry {
  /** Provides strategy `id` (declared in `contributes.strategies`). */
  registerStrategy(id: string, factory: StrategyFactory): Disposable;
  /** Observes a routing hook; the listener's errors are reported, never thrown into the engine. */
  tap<K extends keyof RoutingHooks>(hook: K, listener: Listeners<RoutingHooks>[K]): Disposable;
}

export interface SerializationRegistry {
  /** Provides a codec; `codec.name` and `codec.wireId` must match a `contributes.serializers` entry. */
  registerCodec(codec: Codec): Disposable;
  tap<K extends keyof SerializationHooks>(hook: K, listener: Listeners<SerializationHooks>[K]): Disposable;
}

export interface DhtRoutingRegistry {
  /** Provides DHT routing policy `id` (declared in `contributes.dhtRouting`). */
  registerRouting(id: string, factory: DhtRoutingFactory): Disposable;
  tap<K extends keyof DhtRoutingHooks>(hook: K, listener: Listeners<DhtRoutingHooks>[K]): Disposable;
}

export interface AccessRegistry {
  /** Provides access provider `id` (declared in `contributes.access`). */
  registerAccess(id: string, factory: AccessFactory): Disposable;
  tap<K extends keyof AccessHooks>(hook: K, listener: Listeners<AccessHooks>[K]): Disposable;
}

export interface PluginContext {
  /** The plugin id (its package name). */
  readonly pluginId: string;
  readonly manifest: PluginManifest;
  /** The plugin's folder, absent for in-process plugins. */
  readonly pluginDir: string | undefined;
  /** Disposed, in reverse order, after `deactivate()`. Push anything that holds a resource. */
  readonly subscriptions: Disposable[];
  readonly log: Logger;
  /** The SDK's error classes, so a plugin never imports the SDK at run time. */
  readonly errors: ErrorClasses;
  readonly routing: RoutingRegistry;
  readonly serialization: SerializationRegistry;
  readonly dhtRouting: DhtRoutingRegistry;
  readonly access: AccessRegistry;
}

/** What a plugin module exports. */
export interface PluginModule {
  activate(context: PluginContext): void | Promise<void>;
  deactivate?(): void | Promise<void>;
}

export type { RouteInfo, Outcome, Backend, DhtNode };
