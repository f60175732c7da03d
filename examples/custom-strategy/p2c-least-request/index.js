// @ts-check
/**
 * The plugin entry: `activate(ctx)` registers the strategy its manifest declares. The host calls
 * it lazily, the first time a balancer asks for `p2c-least-request`.
 */
import { createP2cStrategy } from './p2c.js';

/** @param {import('@trellis/sdk').PluginContext} ctx */
export function activate(ctx) {
  // The registration is owned by the plugin: the host undoes it when the plugin deactivates.
  ctx.routing.registerStrategy('p2c-least-request', (init) => createP2cStrategy(init, ctx.errors));
  ctx.log.debug('p2c-least-request strategy registered');
}
