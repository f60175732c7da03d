// @ts-check
/**
 * The power-of-two-choices least-request strategy (Envoy's LEAST_REQUEST with choice_count 2):
 * sample `choiceCount` distinct back-ends uniformly at random and pick the one with the fewest
 * active requests. It spreads load almost as well as a global least-request scan while touching
 * only two counters per request, and it never herds every new request onto one just-freed server.
 *
 * Plain ESM JavaScript with JSDoc types: no build step, and the SDK is imported for types only.
 */

/** @typedef {import('@trellis/sdk').Backend} Backend */
/** @typedef {import('@trellis/sdk').Outcome} Outcome */
/** @typedef {import('@trellis/sdk').Strategy} Strategy */
/** @typedef {import('@trellis/sdk').StrategyInit} StrategyInit */
/** @typedef {import('@trellis/sdk').ErrorClasses} ErrorClasses */

/**
 * A small seedable PRNG (mulberry32): the same seed gives the same picks, so tests can assert them.
 * @param {number} seed a 32-bit integer
 * @returns {() => number} uniform floats in [0, 1)
 */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Reads and checks the strategy options.
 * @param {Readonly<Record<string, unknown>>} options
 * @param {ErrorClasses} errors the SDK error classes (from `ctx.errors`)
 * @returns {{ random: () => number, choiceCount: number }}
 */
export function parseOptions(options, errors) {
  const { seed, choiceCount = 2 } = options;
  if (typeof choiceCount !== 'number' || !Number.isInteger(choiceCount) || choiceCount < 2) {
    throw new errors.InvalidArgumentError(`p2c-least-request: option "choiceCount" must be an integer >= 2, got ${String(choiceCount)}`);
  }
  if (seed === undefined) return { random: Math.random, choiceCount };
  if (typeof seed !== 'number' || !Number.isInteger(seed)) {
    throw new errors.InvalidArgumentError(`p2c-least-request: option "seed" must be an integer, got ${String(seed)}`);
  }
  return { random: mulberry32(seed), choiceCount };
}

/**
 * Creates one strategy instance for one balancer.
 * @param {StrategyInit} init the usable back-ends (list order) and the options
 * @param {ErrorClasses} errors the SDK error classes (from `ctx.errors`)
 * @returns {Strategy & { active(id: string): number }}
 */
export function createP2cStrategy(init, errors) {
  const { random, choiceCount } = parseOptions(init.options, errors);
  /** @type {readonly Backend[]} */
  let backends = [...init.backends];
  /** Active requests per back-end id; kept across `setBackends` for back-ends that stay. */
  const active = new Map(backends.map((b) => [b.id, 0]));
  /** Scratch array for the partial Fisher-Yates shuffle, reused to keep select() allocation-free. */
  let order = backends.map((_, i) => i);

  return {
    select() {
      const n = backends.length;
      if (n === 0) return undefined;
      let best = backends[0];
      if (n > 1) {
        // Sample `k` distinct indexes: the first k steps of a Fisher-Yates shuffle.
        const k = Math.min(choiceCount, n);
        let bestActive = Infinity;
        for (let i = 0; i < k; i++) {
          const j = i + Math.floor(random() * (n - i));
          const pick = order[j];
          order[j] = order[i];
          order[i] = pick;
          const candidate = backends[pick];
          const load = active.get(candidate.id) ?? 0;
          // Strictly fewer wins, so a tie goes to the first sampled back-end (Envoy's rule).
          if (load < bestActive) {
            best = candidate;
            bestActive = load;
          }
        }
      }
      active.set(best.id, (active.get(best.id) ?? 0) + 1);
      return best;
    },

    update(backend) {
      const count = active.get(backend.id);
      // A back-end removed meanwhile, or an unmatched update: nothing to end.
      if (count !== undefined && count > 0) active.set(backend.id, count - 1);
    },

    setBackends(next) {
      backends = [...next];
      order = backends.map((_, i) => i);
      const keep = new Set(backends.map((b) => b.id));
      for (const id of active.keys()) if (!keep.has(id)) active.delete(id);
      for (const b of backends) if (!active.has(b.id)) active.set(b.id, 0);
    },

    active(id) {
      return active.get(id) ?? 0;
    },
  };
}
