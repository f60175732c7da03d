/**
 * @packageDocumentation
 * Trellis SDK core: a plugin host in the style of VS Code extensions, three hook areas (routing,
 * serialization, DHT routing) built on tapable, manifests and errors. The embeddable engines that
 * call the areas are subpath exports: `@trellis/sdk/balancer`, `@trellis/sdk/broker`,
 * `@trellis/sdk/dht` (and `@trellis/sdk/framing`, `@trellis/sdk/cli`).
 *
 * @example
 * ```ts
 * import { createHost } from '@trellis/sdk';
 * const host = createHost(); // discovers the plugin packages in the app's package.json
 * const strategy = await host.routing.createStrategy('round-robin', { backends, options: {} });
 * ```
 */
export * from './errors.js';
export * from './disposable.js';
export * from './logger.js';
export * from './manifest.js';
export * from './plugin-host.js';
export { watchPlugins, type WatchPluginsOptions } from './plugin-watch.js';
export type * from './context.js';
export { SafeEmitter } from './safe-emitter.js';
export { tapSync, untap, type PluginErrorSink } from './taps.js';
export { driverOf, SLOW_CALL_MS, type PluginDriver, type PluginCallStats } from './plugin-driver.js';
export {
  RoutingArea,
  createRoutingHooks,
  type Backend,
  type Outcome,
  type Strategy,
  type StrategyInit,
  type StrategyFactory,
  type RouteInfo,
  type RoutingContext,
  type RoutingContextInit,
  cookieValue,
  createRoutingContext,
  type RoutingHooks,
  type RoutingHookName,
} from './areas/routing.js';
export { SerializationArea, createSerializationHooks, WireId, type Value, type Codec, type DecodeLimits, type SerializationHooks } from './areas/serialization.js';
export {
  DhtRoutingArea,
  createDhtRoutingHooks,
  type DhtNode,
  type DhtRoutingTable,
  type DhtRoutingInit,
  type DhtRoutingFactory,
  type RefreshEntry,
  type DhtRoutingHooks,
} from './areas/dht-routing.js';
export {
  AccessArea,
  createAccessHooks,
  type AccessAction,
  type AccessCredentials,
  type AccessFactory,
  type AccessHooks,
  type AccessIdentity,
  type AccessInit,
  type AccessProvider,
  type AccessReloaded,
} from './areas/access.js';
export { SDK_VERSION } from './version.js';
// The engines are subpath exports (`@trellis/sdk/balancer`, `/broker`, `/dht`, `/framing`) so that
// importing the plugin host loads neither undici nor any engine.
