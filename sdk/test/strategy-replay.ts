/**
 * Shared by the strategy plugins' tests: a seeded replay of selects, completions and list changes,
 * and a helper that gives a back-end list weights (the equal-weights checks compare the two).
 */
import type { Backend, Strategy } from '@trellis/sdk';

/**
 * Replays one seeded script of selects, completions (on a fake clock) and list changes against
 * `make(list)`, returning every pick: the equal-weights check runs it with and without weights.
 */
export function replay(make: (list: Backend[], now: () => number) => Strategy, list: Backend[], seed: number, steps = 2000): (string | undefined)[] {
  let x = seed;
  const rnd = (n: number) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 8) % n;
  const clock = { t: 0 };
  const s = make(list, () => clock.t);
  const inFlight: Backend[] = [];
  const out: (string | undefined)[] = [];
  for (let i = 0; i < steps; i++) {
    const op = rnd(10);
    if (op < 5) {
      const b = s.select();
      out.push(b?.id);
      if (b !== undefined) inFlight.push(b);
    } else if (op < 9) {
      if (inFlight.length === 0) continue;
      clock.t += rnd(50);
      const [b] = inFlight.splice(rnd(inFlight.length), 1);
      s.update(b!, { durationMs: 0, ok: true });
    } else {
      s.setBackends(list.filter(() => rnd(4) !== 0));
    }
  }
  return out;
}

export const weighted = (list: Backend[], w: number | ((i: number) => number)) => list.map((b, i) => ({ ...b, weight: typeof w === 'number' ? w : w(i) }));
