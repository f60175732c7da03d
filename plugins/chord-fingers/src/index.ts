/**
 * The `chord-fingers` plugin: contributes the Chord finger table to the DHT routing hook, so a
 * node's lookups take O(log N) hops instead of walking successors.
 */
import type { PluginContext } from '@trellis/sdk';
import { createFingerTable } from './finger-table.js';

export function activate(ctx: PluginContext): void {
  ctx.subscriptions.push(ctx.dhtRouting.registerRouting('chord-fingers', createFingerTable));
}
