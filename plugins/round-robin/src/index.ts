/** The `round-robin` strategy plugin: registers the strategy with the routing area. */
import type { PluginContext } from '@trellis/sdk';
import { createRoundRobin } from './strategy.js';

export function activate(ctx: PluginContext): void {
  ctx.subscriptions.push(ctx.routing.registerStrategy('round-robin', createRoundRobin));
}
