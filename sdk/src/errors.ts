/**
 * Trellis errors: one base class, a stable `code` per kind, and a `Symbol.for` brand so that
 * `instanceof` works across duplicate copies of the SDK (undici's pattern). Codes are the
 * contract; messages say what was wrong and what to do.
 */

export const ErrorCodes = Object.freeze({
  MANIFEST: 'TRELLIS_ERR_MANIFEST',
  ENGINE_MISMATCH: 'TRELLIS_ERR_ENGINE_MISMATCH',
  PLUGIN_NOT_FOUND: 'TRELLIS_ERR_PLUGIN_NOT_FOUND',
  DUPLICATE_PLUGIN: 'TRELLIS_ERR_DUPLICATE_PLUGIN',
  DEPENDENCY: 'TRELLIS_ERR_DEPENDENCY',
  DEPENDENCY_CYCLE: 'TRELLIS_ERR_DEPENDENCY_CYCLE',
  ACTIVATION: 'TRELLIS_ERR_ACTIVATION',
  ACTIVATION_TIMEOUT: 'TRELLIS_ERR_ACTIVATION_TIMEOUT',
  UNDECLARED_CONTRIBUTION: 'TRELLIS_ERR_UNDECLARED_CONTRIBUTION',
  DUPLICATE_CONTRIBUTION: 'TRELLIS_ERR_DUPLICATE_CONTRIBUTION',
  NO_PROVIDER: 'TRELLIS_ERR_NO_PROVIDER',
  PLUGIN: 'TRELLIS_ERR_PLUGIN',
  DISPOSED: 'TRELLIS_ERR_DISPOSED',
  TIMEOUT: 'TRELLIS_ERR_TIMEOUT',
  CODEC: 'TRELLIS_ERR_CODEC',
  PROTOCOL: 'TRELLIS_ERR_PROTOCOL',
  INVALID_ARGUMENT: 'TRELLIS_ERR_INVALID_ARGUMENT',
  USAGE: 'TRELLIS_ERR_USAGE',
  NO_BACKEND: 'TRELLIS_ERR_NO_BACKEND',
  STATE: 'TRELLIS_ERR_STATE',
  SEND_FAILED: 'TRELLIS_ERR_SEND_FAILED',
  JOIN_FAILED: 'TRELLIS_ERR_JOIN_FAILED',
  ACCESS_RELOAD: 'TRELLIS_ERR_ACCESS_RELOAD',
} as const);

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

const kTrellisError = Symbol.for('trellis.error');

/** Base of every error the SDK throws. Check `err.code`, or `instanceof` any subclass. */
export class TrellisError extends Error {
  readonly code: ErrorCode | (string & {});
  override readonly name: string = 'TrellisError';

  constructor(code: ErrorCode | (string & {}), message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** Branded check: survives two copies of the SDK in one process. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (value === null || typeof value !== 'object') return false;
    const brands = (value as Record<symbol, unknown>)[kTrellisError];
    if (!Array.isArray(brands)) return false;
    const self = (this as unknown as { brand?: symbol }).brand;
    return self === undefined || brands.includes(self);
  }

  get [kTrellisError](): symbol[] {
    const out: symbol[] = [];
    let proto: unknown = Object.getPrototypeOf(this);
    while (proto && proto !== Error.prototype) {
      const brand = (proto.constructor as { brand?: symbol }).brand;
      if (brand && !out.includes(brand)) out.push(brand);
      proto = Object.getPrototypeOf(proto);
    }
    return out;
  }

  static readonly brand: symbol = Symbol.for('trellis.error.TrellisError');
}

function brandFor(name: string): symbol {
  return Symbol.for(`trellis.error.${name}`);
}

/** A plugin manifest (its package.json) is missing a field or has a wrong one. */
export class ManifestError extends TrellisError {
  static override readonly brand = brandFor('ManifestError');
  override readonly name: string = 'ManifestError';
  constructor(
    readonly file: string,
    readonly field: string,
    message: string,
  ) {
    super(ErrorCodes.MANIFEST, `${file}: "${field}" ${message}`);
  }
}

/** The plugin's `engines.trellis` range does not include this SDK's version. */
export class EngineMismatchError extends TrellisError {
  static override readonly brand = brandFor('EngineMismatchError');
  override readonly name: string = 'EngineMismatchError';
  constructor(
    readonly plugin: string,
    readonly range: string,
    readonly sdkVersion: string,
  ) {
    super(
      ErrorCodes.ENGINE_MISMATCH,
      `plugin "${plugin}" requires trellis ${range}, but this SDK is ${sdkVersion}; install a matching plugin version`,
    );
  }
}

/** Activating a plugin failed: it threw, its dependency failed, or it took too long. */
export class ActivationError extends TrellisError {
  static override readonly brand = brandFor('ActivationError');
  override readonly name: string = 'ActivationError';
  constructor(
    readonly plugin: string,
    message: string,
    options?: { cause?: unknown; code?: ErrorCode },
  ) {
    super(options?.code ?? ErrorCodes.ACTIVATION, `plugin "${plugin}": ${message}`, options);
  }
}

/** `activate` did not settle within the host's activation timeout. */
export class ActivationTimeoutError extends ActivationError {
  static override readonly brand = brandFor('ActivationTimeoutError');
  override readonly name: string = 'ActivationTimeoutError';
  constructor(
    plugin: string,
    readonly timeoutMs: number,
  ) {
    super(plugin, `activate() did not finish within ${timeoutMs} ms`, { code: ErrorCodes.ACTIVATION_TIMEOUT });
  }
}

/** Plugin dependencies form a cycle or name a plugin that is not installed. */
export class DependencyError extends TrellisError {
  static override readonly brand = brandFor('DependencyError');
  override readonly name: string = 'DependencyError';
  constructor(
    readonly plugin: string,
    message: string,
    code: ErrorCode = ErrorCodes.DEPENDENCY,
  ) {
    super(code, `plugin "${plugin}": ${message}`);
  }
}

/** A plugin registered an id its manifest does not declare, or one already registered. */
export class ContributionError extends TrellisError {
  static override readonly brand = brandFor('ContributionError');
  override readonly name: string = 'ContributionError';
  constructor(
    readonly plugin: string,
    readonly area: string,
    readonly id: string,
    message: string,
    code: ErrorCode = ErrorCodes.UNDECLARED_CONTRIBUTION,
  ) {
    super(code, `plugin "${plugin}" ${area} "${id}": ${message}`);
  }
}

/** No installed plugin contributes the requested strategy, serializer or DHT routing. */
export class NoProviderError extends TrellisError {
  static override readonly brand = brandFor('NoProviderError');
  override readonly name: string = 'NoProviderError';
  constructor(
    readonly area: string,
    readonly id: string,
    available: readonly string[],
  ) {
    super(
      ErrorCodes.NO_PROVIDER,
      `no plugin contributes ${area} "${id}"` +
        (available.length ? `; available: ${available.join(', ')}` : '; no plugin contributes any'),
    );
  }
}

/** A plugin's code threw inside a hook: carries the plugin id and the hook name (rollup's shape). */
export class PluginError extends TrellisError {
  static override readonly brand = brandFor('PluginError');
  override readonly name: string = 'PluginError';
  constructor(
    readonly plugin: string,
    readonly hook: string,
    cause: unknown,
  ) {
    super(
      ErrorCodes.PLUGIN,
      `plugin "${plugin}" failed in hook "${hook}": ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
  }
}

/** Bytes that a codec cannot encode or decode (truncated, malformed, forbidden, too deep). */
export class CodecError extends TrellisError {
  static override readonly brand = brandFor('CodecError');
  override readonly name: string = 'CodecError';
  constructor(
    readonly codec: string,
    message: string,
    options?: { cause?: unknown; offset?: number },
  ) {
    super(ErrorCodes.CODEC, `${codec}: ${message}`, options);
    this.offset = options?.offset;
  }
  readonly offset: number | undefined;
}

/** A peer broke a wire protocol: a malformed, oversized or out-of-order frame or datagram. */
export class ProtocolError extends TrellisError {
  static override readonly brand = brandFor('ProtocolError');
  override readonly name: string = 'ProtocolError';
  constructor(
    message: string,
    options?: { cause?: unknown },
  ) {
    super(ErrorCodes.PROTOCOL, message, options);
  }
}

/** Something took longer than its deadline. */
export class TimeoutError extends TrellisError {
  static override readonly brand = brandFor('TimeoutError');
  override readonly name: string = 'TimeoutError';
  constructor(message: string) {
    super(ErrorCodes.TIMEOUT, message);
  }
}

/** An object was used after `dispose()`. */
export class DisposedError extends TrellisError {
  static override readonly brand = brandFor('DisposedError');
  override readonly name: string = 'DisposedError';
  constructor(what: string) {
    super(ErrorCodes.DISPOSED, `${what} is disposed`);
  }
}

/** An engine was called in a state that does not allow it: `listen()` twice, or after `close()`. */
export class StateError extends TrellisError {
  static override readonly brand = brandFor('StateError');
  override readonly name: string = 'StateError';
  constructor(message: string) {
    super(ErrorCodes.STATE, message);
  }
}

/** An API or command was called with a bad argument. */
export class InvalidArgumentError extends TrellisError {
  static override readonly brand = brandFor('InvalidArgumentError');
  override readonly name: string = 'InvalidArgumentError';
  constructor(message: string) {
    super(ErrorCodes.INVALID_ARGUMENT, message);
  }
}

/** A message could not leave this process (encoding, size, a local socket error): not a sign the peer is dead. */
export class SendError extends TrellisError {
  static override readonly brand = brandFor('SendError');
  override readonly name: string = 'SendError';
  /** The encoded size, when the message was too large to send. */
  readonly bytes: number | undefined;
  constructor(message: string, options?: { cause?: unknown; bytes?: number }) {
    super(ErrorCodes.SEND_FAILED, message, options);
    this.bytes = options?.bytes;
  }
}

/** A DHT node could not join a ring: no answer, a refusal (id taken) or a reply that failed verification. */
export class JoinError extends TrellisError {
  static override readonly brand = brandFor('JoinError');
  override readonly name: string = 'JoinError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCodes.JOIN_FAILED, message, options);
  }
}

/**
 * Reloading a broker's access rules was refused: a password or ACL file that could not be read
 * or parsed (`file` and `line` say where, when the provider knows), or a provider that cannot
 * reload. The rules in force before the reload stay in force, all of them.
 */
export class AccessReloadError extends TrellisError {
  static override readonly brand = brandFor('AccessReloadError');
  override readonly name: string = 'AccessReloadError';
  constructor(
    message: string,
    readonly file?: string,
    readonly line?: number,
    options?: { cause?: unknown },
  ) {
    super(ErrorCodes.ACCESS_RELOAD, message, options);
  }
}

/** The error classes, handed to plugins on their context so they never import the SDK at run time. */
export const errors = Object.freeze({
  TrellisError,
  ManifestError,
  EngineMismatchError,
  ActivationError,
  ActivationTimeoutError,
  DependencyError,
  ContributionError,
  NoProviderError,
  PluginError,
  CodecError,
  ProtocolError,
  TimeoutError,
  DisposedError,
  InvalidArgumentError,
  StateError,
  AccessReloadError,
});
export type ErrorClasses = typeof errors;
