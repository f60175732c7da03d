/** The `n-to-1` strategy plugin: registers the strategy with the routing area. */
import type { PluginContext } from '@trellis/sdk';
import { createNToOne } from './strategy.js';

export function activate(ctx: PluginContext): void {
  ctx.subscriptions.push(ctx.routing.registerStrategy('n-to-1', createNToOne));
}
