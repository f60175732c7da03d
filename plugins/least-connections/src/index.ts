/** The `least-connections` strategy plugin: registers the strategy with the routing area. */
import type { PluginContext } from '@trellis/sdk';
import { createLeastConnections } from './strategy.js';

export function activate(ctx: PluginContext): void {
  ctx.subscriptions.push(ctx.routing.registerStrategy('least-connections', createLeastConnections));
}
