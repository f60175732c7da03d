/**
 * The xml plugin: contributes the `xml` codec (wire id 1). The codec itself lives in
 * `xml.ts` so other code can use it without a host.
 */
import type { PluginContext, Codec, Value } from '@trellis/sdk';
import { decode, encode, type XmlOptions } from './xml.js';

/** Builds the codec with the SDK's `CodecError` (taken from the context, never imported). */
export function createXmlCodec(errors: PluginContext['errors'], limits: Omit<XmlOptions, 'error'> = {}): Codec {
  const error = (message: string, offset?: number) => new errors.CodecError('xml', message, { offset });
  const options = { ...limits, error };
  return Object.freeze({
    wireId: 1,
    name: 'xml',
    encode: (value: Value) => encode(value, options),
    decode: (bytes: Uint8Array) => decode(bytes, options),
  });
}

export function activate(ctx: PluginContext): void {
  ctx.subscriptions.push(ctx.serialization.registerCodec(createXmlCodec(ctx.errors)));
}
