/**
 * The pickle plugin: contributes the `pickle` codec (wire id 2), a safe subset of CPython's
 * pickle. The codec itself lives in `pickle.ts` so other code can use it without a host.
 */
import type { PluginContext, Codec, DecodeLimits, Value } from '@trellis/sdk';
import { decode, encode, type PickleLimits } from './pickle.js';

/** Builds the codec with the SDK's `CodecError` (taken from the context, never imported). */
export function createPickleCodec(errors: PluginContext['errors'], limits: PickleLimits = {}): Codec {
  const error = (message: string, offset?: number) => new errors.CodecError('pickle', message, { offset });
  const options = { ...limits, error };
  return Object.freeze({
    wireId: 2,
    name: 'pickle',
    encode: (value: Value) => encode(value, options),
    // per-call limits (the DHT's maxNodes per datagram) tighten the defaults, never loosen them;
    // passed apart from `options` (a spread per call tripled the cost of a small datagram's decode)
    decode: (bytes: Uint8Array, limits?: DecodeLimits) => decode(bytes, options, limits?.maxNodes),
  });
}

export function activate(ctx: PluginContext): void {
  ctx.subscriptions.push(ctx.serialization.registerCodec(createPickleCodec(ctx.errors)));
}
