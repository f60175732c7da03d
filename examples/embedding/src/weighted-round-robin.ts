/**
 * An in-process strategy plugin: smooth weighted round robin (nginx's algorithm). The embedding
 * app defines it in code and hands it to `createHost({ plugins: [...] })` — no folder, no build.
 * Each back-end's weight comes from `options.weights` (`{ "host:port": n }`, default 1).
 */
import type { Backend, InProcessPlugin, Strategy, StrategyInit, ErrorClasses } from '@trellis/sdk';

export const WEIGHTED_ROUND_ROBIN = 'weighted-round-robin';

function weightsOf(init: StrategyInit, errors: ErrorClasses): ReadonlyMap<string, number> {
  const raw = init.options.weights ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new errors.InvalidArgumentError('option "weights" must be an object of back-end id → weight');
  const weights = new Map<string, number>();
  for (const [id, w] of Object.entries(raw)) {
    if (typeof w !== 'number' || !Number.isInteger(w) || w < 1) throw new errors.InvalidArgumentError(`weight of "${id}" must be an integer >= 1, got ${String(w)}`);
    weights.set(id, w);
  }
  return weights;
}

/** Smooth WRR: every pick adds each weight to its current score, takes the highest, subtracts the total. */
export function createWeightedRoundRobin(init: StrategyInit, errors: ErrorClasses): Strategy {
  const weights = weightsOf(init, errors);
  let backends: readonly Backend[] = init.backends;
  const current = new Map<string, number>();
  return {
    select() {
      let best: Backend | undefined;
      let bestScore = -Infinity;
      let total = 0;
      for (const b of backends) {
        const w = weights.get(b.id) ?? 1;
        const score = (current.get(b.id) ?? 0) + w;
        current.set(b.id, score);
        total += w;
        if (score > bestScore) {
          best = b;
          bestScore = score;
        }
      }
      if (best) current.set(best.id, bestScore - total);
      return best;
    },
    update() {
      // Round robin ignores outcomes.
    },
    setBackends(next) {
      backends = next;
      const keep = new Set(next.map((b) => b.id));
      for (const id of current.keys()) if (!keep.has(id)) current.delete(id);
    },
  };
}

/** The plugin, as the embedding app registers it. */
export const weightedRoundRobinPlugin: InProcessPlugin = {
  manifest: {
    name: 'embedded-weighted-round-robin',
    version: '0.1.0',
    engines: { trellis: '^0.1.0' },
    contributes: { strategies: [{ id: WEIGHTED_ROUND_ROBIN, title: 'Smooth weighted round robin (in-process)' }] },
  },
  activate(ctx) {
    ctx.routing.registerStrategy(WEIGHTED_ROUND_ROBIN, (init) => createWeightedRoundRobin(init, ctx.errors));
  },
};
