/**
 * The json plugin: contributes the `json` codec (wire id 0). The codec itself lives in
 * `json.ts` so other code can use it without a host.
 */
import type { PluginContext, Codec, Value } from '@trellis/sdk';
import { decode, encode, type JsonOptions } from './json.js';

/** Builds the codec with the SDK's `CodecError` (taken from the context, never imported). */
export function createJsonCodec(errors: PluginContext['errors'], limits: Omit<JsonOptions, 'error'> = {}): Codec {
  const error = (message: string, offset?: number) => new errors.CodecError('json', message, { offset });
  const options = { ...limits, error };
  return Object.freeze({
    wireId: 0,
    name: 'json',
    encode: (value: Value) => encode(value, options),
    decode: (bytes: Uint8Array) => decode(bytes, options),
  });
}

export function activate(ctx: PluginContext): void {
  ctx.subscriptions.push(ctx.serialization.registerCodec(createJsonCodec(ctx.errors)));
}
