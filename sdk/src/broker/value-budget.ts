/**
 * The limits of the value model that every codec can deliver, checked once at ingress on the
 * decoded value, whatever codec it came in: a value the broker accepts must reach a JSON, XML or
 * Python (pickle) subscriber intact, and its translations must cost a bounded amount.
 *
 * - **Integers** have at most 4,300 decimal digits (CPython's int/str conversion limit: Python's
 *   `json.loads` and `int()` refuse longer ones, so an XML or JSON Python consumer could not read it).
 * - **Strings** are well-formed Unicode (no lone surrogate: pickle's UTF-8 cannot carry one).
 * - **Size**: the value's produced size — about its compact JSON length (string and key bytes,
 *   bytes' length, digits, one or two bytes of punctuation per item) — is at most `maxValueBytes`,
 *   counting every shared reference each time it is reached (a pickle memo alias or DUP expands in
 *   every translation). The walk stops as soon as the budget is spent, so the check itself is
 *   bounded by the limit, not by the input.
 * - **Depth** at most 512 (what every shipped codec nests).
 */
import { BrokerError, BrokerErrorCode } from './protocol.js';

/** CPython's default `sys.get_int_max_str_digits()`. */
export const MAX_INTEGER_DIGITS = 4300;
/** Deepest nesting every shipped codec accepts. */
export const MAX_VALUE_DEPTH = 512;

export interface ValueBudget {
  /** Most produced bytes (see above), shared references counted each time. */
  readonly maxValueBytes: number;
  readonly maxIntegerDigits?: number;
  readonly maxDepth?: number;
}

/** 10^15: numbers below it in magnitude have at most 15 digits (fast path, no string). */
const SMALL = 1e15;
/** The longest text of a double (`-2.2250738585072014e-308`): a bound, without making the string. */
const FLOAT_CHARS = 24;

/** The walk's state: module-level, so a check allocates nothing (the broker is single-threaded). */
let size = 0;
let max = 0;
let maxDigits = 0;
let maxDepth = 0;

/**
 * The produced size of `value`; throws `BrokerError` (BAD_PAYLOAD for what no codec can carry,
 * LIMIT past the size budget) as soon as a limit is passed.
 */
export function measureValue(value: unknown, budget: ValueBudget): number {
  size = 0;
  max = budget.maxValueBytes;
  maxDigits = budget.maxIntegerDigits ?? MAX_INTEGER_DIGITS;
  maxDepth = budget.maxDepth ?? MAX_VALUE_DEPTH;
  walk(value, 0);
  return size;
}

function over(): never {
  throw new BrokerError(BrokerErrorCode.LIMIT, `the value expands to more than ${max} bytes (shared references count each time they are used)`);
}

function str(s: string): void {
  // UTF-16 length is a lower bound of UTF-8 bytes; good enough for a budget, exact for ASCII
  size += s.length + 2;
  if (size > max) over();
  if (s.length > 0 && !(s as unknown as { isWellFormed(): boolean }).isWellFormed()) {
    throw new BrokerError(BrokerErrorCode.BAD_PAYLOAD, 'a string holds a lone surrogate (not Unicode text; pickle and XML consumers cannot carry it)');
  }
}

function walk(v: unknown, depth: number): void {
  size += 1; // a separator
  switch (typeof v) {
    case 'string':
      return str(v);
    case 'number':
      size += Number.isInteger(v) && v > -SMALL && v < SMALL ? digitsOf(v) : FLOAT_CHARS;
      break;
    case 'boolean':
      size += 5;
      break;
    case 'bigint': {
      const digits = digitsOfBig(v < 0n ? -v : v);
      if (digits > maxDigits) {
        throw new BrokerError(BrokerErrorCode.BAD_PAYLOAD, `an integer of ${digits > 2 * maxDigits ? 'at least ' : ''}${digits} digits exceeds the value model's ${maxDigits}-digit limit (Python consumers could not read it)`);
      }
      size += digits;
      break;
    }
    case 'object': {
      if (v === null) {
        size += 4;
        break;
      }
      if (v instanceof Uint8Array) {
        size += v.length + 2;
        break;
      }
      if (depth >= maxDepth) throw new BrokerError(BrokerErrorCode.BAD_PAYLOAD, `the value nests deeper than ${maxDepth}`);
      size += 2;
      if (size > max) over();
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) walk(v[i], depth + 1);
      } else {
        const o = v as Record<string, unknown>;
        for (const k in o) {
          str(k);
          walk(o[k], depth + 1);
        }
      }
      return;
    }
    default:
      break;
  }
  if (size > max) over();
}

/** log10(16): decimal digits per hex digit. */
const DIGITS_PER_HEX = Math.log10(16);

/**
 * Decimal digits of a non-negative bigint. Hex conversion is linear, decimal is not (a codec
 * without a digit cap could hand over a million-digit integer), so far past the limit the count
 * is the lower bound the hex length gives, and the decimal form is never made.
 */
function digitsOfBig(a: bigint): number {
  const hex = a.toString(16).length;
  const low = Math.floor((hex - 1) * DIGITS_PER_HEX) + 1; // a ≥ 16^(hex-1)
  return low > 2 * maxDigits ? low : a.toString().length;
}

/** Decimal digits (and sign) of an integer below 10^15 in magnitude, without making a string. */
function digitsOf(v: number): number {
  let n = v < 0 ? 2 : 1;
  const a = v < 0 ? -v : v;
  // powers of ten below 10^16 are exact doubles: compare, no division
  for (let p = 10; a >= p; p *= 10) n++;
  return n;
}
