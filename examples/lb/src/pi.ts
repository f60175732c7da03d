/**
 * π to any number of decimal digits, for real: Machin's formula π = 16·atan(1/5) − 4·atan(1/239)
 * in BigInt fixed point with guard digits, so the cost grows with the precision asked for.
 */

/** atan(1/x) scaled by `one`, by its Taylor series. */
function arctanInverse(x: bigint, one: bigint): bigint {
  const x2 = x * x;
  let power = one / x; // one / x^(2k+1)
  let sum = power;
  let k = 1n;
  let sign = -1n;
  while (power !== 0n) {
    power /= x2;
    sum += (sign * power) / (2n * k + 1n);
    sign = -sign;
    k++;
  }
  return sum;
}

/** π truncated to `digits` decimals, as text: `"3.14159…"` (`"3"` for 0 digits). */
export function computePi(digits: number): string {
  if (!Number.isInteger(digits) || digits < 0) throw new RangeError(`digits must be a whole number >= 0, got ${digits}`);
  const guard = 10n;
  const one = 10n ** (BigInt(digits) + guard);
  const pi = 16n * arctanInverse(5n, one) - 4n * arctanInverse(239n, one);
  const text = (pi / 10n ** guard).toString();
  return digits === 0 ? text : `${text[0]}.${text.slice(1)}`;
}
