/**
 * Ring arithmetic on identifiers in [0, 2^m): the reference's `contains` (a half-open interval
 * that wraps past 0) and the open interval the finger table and stabilize use.
 */

/** x ∈ (begin, end] on the ring; wraps when begin ≥ end (begin = end is the whole ring). */
export function inHalfOpen(begin: bigint, end: bigint, x: bigint): boolean {
  return begin < end ? begin < x && x <= end : x > begin || x <= end;
}

/** x ∈ (begin, end) on the ring; begin = end is every id except begin. */
export function inOpen(begin: bigint, end: bigint, x: bigint): boolean {
  return begin < end ? begin < x && x < end : x > begin || x < end;
}

/** Clockwise distance from `from` to `to` on a ring of 2^bits ids. */
export function ringDistance(from: bigint, to: bigint, bits: number): bigint {
  const size = 1n << BigInt(bits);
  return (((to - from) % size) + size) % size;
}
