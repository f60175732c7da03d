/** Errors of the balancer engine, on the SDK's `TrellisError` pattern (stable code, branded). */
import { ErrorCodes, TrellisError } from '../errors.js';

/** No back-end is usable: all are marked down, or the strategy has none to offer. */
export class NoBackendError extends TrellisError {
  static override readonly brand = Symbol.for('trellis.error.NoBackendError');
  override readonly name: string = 'NoBackendError';
  constructor(
    readonly configured: number,
    readonly down: number,
  ) {
    super(
      ErrorCodes.NO_BACKEND,
      configured === 0
        ? 'no back-end is configured (the balancer was given an empty backends list)'
        : `no healthy back-end: ${down} of ${configured} are marked down; retry shortly`,
    );
  }
}
