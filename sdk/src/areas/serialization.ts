/**
 * The serialization hook area: codecs. A codec has a numeric wire id, a name, and turns values
 * into bytes and back. Wire ids follow the reference: 0 = JSON, 1 = XML, 2 = Pickle.
 */
import { SyncHook } from 'tapable';
import { ContributionRegistry, bindRegistry, type AreaHost } from './registry.js';
import { guardHooks } from '../taps.js';
import { CodecError, NoProviderError, PluginError } from '../errors.js';
import { PluginDriver, guardCodec } from '../plugin-driver.js';

/**
 * The value model every codec round-trips: null, booleans, numbers (integers beyond 2^53 as
 * bigint), strings, arrays, plain objects with string keys, and bytes.
 *
 * Normal form, so a value published in one format arrives equal in the others: decoders return
 * integers within ±(2^53 − 1) as numbers and beyond as bigint (a small bigint comes back as a
 * number), bytes as plain `Uint8Array`s, objects with `Object.prototype`; the key `__proto__`
 * is refused by every shipped codec. Python tuples and sets arrive as arrays.
 */
export type Value =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | readonly Value[]
  | { readonly [key: string]: Value };

export interface Codec {
  /** The number announced on the wire (0 = JSON, 1 = XML, 2 = Pickle, others free). */
  readonly wireId: number;
  /** The contribution id, e.g. "json". */
  readonly name: string;
  /** Throws `CodecError` for a value outside the model (or one this format cannot carry). */
  encode(value: Value): Uint8Array;
  /**
   * Throws `CodecError` for bytes that are malformed, truncated, forbidden or over a limit;
   * never any other error, whatever the input (the shipped codecs are fuzzed for it).
   */
  decode(bytes: Uint8Array, limits?: DecodeLimits): Value;
}

/**
 * Per-call decode limits a caller may pass to tighten a codec's defaults (a codec that has no such
 * limit ignores them). The DHT bounds each datagram's decoded size this way.
 */
export interface DecodeLimits {
  /** Most values the decoded result may expand to, shared references counted each time. */
  readonly maxNodes?: number;
}

/** Well-known wire ids. */
export const WireId = Object.freeze({ JSON: 0, XML: 1, PICKLE: 2 } as const);

/** Observer hooks for the serialization area. */
export function createSerializationHooks() {
  return Object.freeze({
    /** SyncHook<[Codec, unknown]>: a codec rejected input (for logging and metrics). */
    codecError: new SyncHook<[Codec, unknown]>(['codec', 'error']),
  });
}
export type SerializationHooks = ReturnType<typeof createSerializationHooks>;

/** The host side of the serialization area: codecs by name or wire id, resolved lazily. */
export class SerializationArea {
  readonly hooks: SerializationHooks = createSerializationHooks();
  readonly #registry = new ContributionRegistry<Codec>('serializers');
  readonly #host: AreaHost;
  readonly #wireIds: () => ReadonlyMap<number, string>;
  /** One guarded stand-in per registration, so every engine shares its counters. */
  readonly #guarded = new WeakMap<object, Codec>();

  constructor(host: AreaHost, wireIds: () => ReadonlyMap<number, string>) {
    this.#host = host;
    bindRegistry(this, this.#registry);
    // every tap on the public hooks, the app's included, goes through the guarded path
    guardHooks(this.hooks, 'serialization', (err) => host.reportPluginError(err));
    this.#wireIds = wireIds;
  }

  /** Names of every declared codec. */
  serializers(): string[] {
    return [...this.#host.contributors('serializers').keys()];
  }

  /** The name declared for a wire id, if any. */
  nameOf(wireId: number): string | undefined {
    return this.#wireIds().get(wireId);
  }

  /** The codec called `name` or numbered `wireId`, activating its plugin on first use. */
  async codec(nameOrWireId: string | number): Promise<Codec> {
    let name = typeof nameOrWireId === 'number' ? this.nameOf(nameOrWireId) : nameOrWireId;
    if (name === undefined) {
      // wire ids are indexed by the scan, which may not have run yet
      await this.#host.ready();
      name = this.nameOf(nameOrWireId as number);
    }
    if (name === undefined) {
      throw new NoProviderError('serializer', `wire id ${nameOrWireId}`, [...this.#wireIds()].map(([id, n]) => `${n} (${id})`));
    }
    const plugin = await this.#host.activateContributor('serializers', name);
    const entry = this.#registry.get(name);
    if (!entry) throw new PluginError(plugin, `serializer:${name}`, new Error('the plugin activated but did not register this codec'));
    let guarded = this.#guarded.get(entry);
    if (!guarded) {
      // the guarded path: a CodecError (bad input, the codec's contract) goes to the codecError
      // hook and on to the caller; any other throw is a reported PluginError
      const codec = entry.value;
      const hook = this.hooks.codecError;
      const driver = new PluginDriver(entry.plugin, `serializer:${name}`, (err) => this.#host.reportPluginError(err), {
        expected: (err) => err instanceof CodecError,
        onExpected: (err) => {
          if (hook.taps.length > 0) hook.call(codec, err);
        },
      });
      guarded = guardCodec(codec, driver);
      this.#guarded.set(entry, guarded);
    }
    return guarded;
  }
}
