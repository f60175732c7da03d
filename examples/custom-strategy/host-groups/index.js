// @ts-check
/** The plugin entry: registers the `host-groups` strategy its manifest declares. */
import { createHostGroups } from './host-groups.js';

/** @param {import('@trellis/sdk').PluginContext} ctx */
export function activate(ctx) {
  ctx.subscriptions.push(ctx.routing.registerStrategy('host-groups', (init) => createHostGroups(init, ctx.errors)));
}
