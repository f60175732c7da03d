// @ts-check
/**
 * Host-based routing to tagged back-end groups: `routes` maps a host name (or `*.suffix`) to a
 * tag; a request goes to the usable back-ends carrying that tag, round robin inside the group.
 * Hosts that match no route go to the `fallback` tag (or, without one, get a 503). Plain ESM
 * JavaScript with JSDoc types; the SDK is imported for types only.
 */

/** @typedef {import('@trellis/sdk').Backend} Backend */
/** @typedef {import('@trellis/sdk').RoutingContext} RoutingContext */
/** @typedef {import('@trellis/sdk').Strategy} Strategy */
/** @typedef {import('@trellis/sdk').StrategyInit} StrategyInit */
/** @typedef {import('@trellis/sdk').ErrorClasses} ErrorClasses */

/**
 * `Shop.Example:8080` → `shop.example`; `[::1]:80` → `::1`.
 * @param {string | undefined} host
 */
export function hostName(host) {
  if (host === undefined) return '';
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']'));
  const colon = h.indexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}

/**
 * @param {StrategyInit} init `options.routes`: `{ "api.example.com": "api", "*.cdn.example.com": "static" }`;
 *   `options.fallback`: the tag for every other host (and for TCP mode).
 * @param {ErrorClasses} errors
 * @returns {Strategy}
 */
export function createHostGroups(init, errors) {
  const { routes = {}, fallback } = /** @type {{ routes?: Record<string, unknown>, fallback?: unknown }} */ (init.options);
  if (typeof routes !== 'object' || routes === null) throw new errors.InvalidArgumentError('host-groups: routes must be an object of host → tag');
  /** @type {Map<string, string>} exact host → tag */
  const exact = new Map();
  /** @type {[string, string][]} `.suffix` → tag, longest first */
  const wildcards = [];
  for (const [host, tag] of Object.entries(routes)) {
    if (typeof tag !== 'string' || tag === '') throw new errors.InvalidArgumentError(`host-groups: the tag for "${host}" must be a non-empty string`);
    if (host.startsWith('*.')) wildcards.push([host.slice(1).toLowerCase(), tag]);
    else exact.set(host.toLowerCase(), tag);
  }
  wildcards.sort((a, b) => b[0].length - a[0].length);
  if (fallback !== undefined && typeof fallback !== 'string') throw new errors.InvalidArgumentError('host-groups: fallback must be a tag');

  /** @type {Map<string, Backend[]>} tag → usable back-ends carrying it, in list order */
  let groups = new Map();
  /** @type {Map<string, number>} tag → next index (round robin inside the group) */
  const next = new Map();

  /** @param {string} name */
  const tagFor = (name) => {
    const tag = exact.get(name);
    if (tag !== undefined) return tag;
    for (const [suffix, t] of wildcards) if (name.endsWith(suffix)) return t;
    return fallback;
  };

  const strategy = {
    /** @param {RoutingContext} [ctx] */
    select(ctx) {
      const tag = tagFor(hostName(ctx?.host));
      const group = tag === undefined ? undefined : groups.get(tag);
      if (group === undefined || group.length === 0) return undefined; // the balancer answers 503
      const i = (next.get(/** @type {string} */ (tag)) ?? 0) % group.length;
      next.set(/** @type {string} */ (tag), i + 1);
      return group[i];
    },
    update() {},
    /** @param {readonly Backend[]} backends */
    setBackends(backends) {
      /** @type {Map<string, Backend[]>} */
      const g = new Map();
      for (const b of backends) for (const tag of b.tags ?? []) (g.get(tag) ?? g.set(tag, []).get(tag))?.push(b);
      groups = g;
    },
  };
  strategy.setBackends(init.backends);
  return strategy;
}
