/**
 * @packageDocumentation
 * Trellis SDK: a plugin host in the style of VS Code extensions, three hook areas (routing,
 * serialization, DHT routing) built on tapable, and the embeddable engines that call them.
 *
 * @example
 * ```ts
 * import { createHost } from '@trellis/sdk';
 * const host = createHost({ dirs: ['./my-plugins'] });
 * const strategy = await host.routing.createStrategy('round-robin', { backends, options: {} });
 * ```
 */
export * from './errors.js';
export * from './disposable.js';
export * from './logger.js';
export * from './manifest.js';
export * from './plugin-host.js';
export type * from './context.js';
export { SafeEmitter } from './safe-emitter.js';
export { tapSync, untap, type PluginErrorSink } from './taps.js';
export {
  RoutingArea,
  createRoutingHooks,
  type Backend,
  type Outcome,
  type Strategy,
  type StrategyInit,
  type StrategyFactory,
  type RouteInfo,
  type RoutingHooks,
  type RoutingHookName,
} from './areas/routing.js';
export { SerializationArea, createSerializationHooks, WireId, type Value, type Codec, type SerializationHooks } from './areas/serialization.js';
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
} from './areas/access.js';
export { SDK_VERSION } from './version.js';
export * from './balancer/index.js';
export * from './broker/index.js';
export * from './dht/index.js';
