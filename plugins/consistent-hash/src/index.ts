/** The `consistent-hash` strategy plugin: registers the strategy with the routing area. */
import type { PluginContext } from '@trellis/sdk';
import { createConsistentHash } from './strategy.js';

export function activate(ctx: PluginContext): void {
  ctx.subscriptions.push(ctx.routing.registerStrategy('consistent-hash', createConsistentHash));
}
