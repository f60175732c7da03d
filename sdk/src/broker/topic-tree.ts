/**
 * The broker's topic tree: one node per path segment, so `/weather` and `/weather2` are
 * different branches and a subscription on `/weather` matches `/weather/...` but never
 * `/weather2/...`. A node holds the subscribers of that exact path and the topic's last value.
 * Nodes that hold nothing are pruned, so memory follows live topics and subscriptions.
 *
 * The root (path `/`) holds every topic: bare topics (`qwerty`, `a/b`) are its children, and
 * slashed ones (`/a/b`) live under its child for the empty first segment (path `''`, never a
 * topic itself), so a subscription on `/` covers both forms.
 */

export interface TopicNode<S, R> {
  /** The full path, e.g. `/weather/temperature` (`/` for the root). */
  readonly path: string;
  /** The path as UTF-8, reused in every MESSAGE frame. */
  readonly pathBytes: Buffer;
  /** Nodes the path holds below the root (its `/`-separated segments; 0 for the root), counted once. */
  readonly segments: number;
  readonly parent: TopicNode<S, R> | undefined;
  readonly children: Map<string, TopicNode<S, R>>;
  /** Subscribers of exactly this path. */
  readonly subscribers: Set<S>;
  /** The last value published on exactly this path. */
  retained: R | undefined;
}

export class TopicTree<S, R> {
  readonly root: TopicNode<S, R> = TopicTree.#node('/', undefined);
  /** Every node by full path: a publish finds its node with one lookup. */
  readonly #byPath = new Map<string, TopicNode<S, R>>([['/', this.root]]);
  #retainedCount = 0;

  static #node<S, R>(path: string, parent: TopicNode<S, R> | undefined): TopicNode<S, R> {
    const segments = parent === undefined ? 0 : path.split('/').length;
    return { path, pathBytes: Buffer.from(path, 'utf8'), segments, parent, children: new Map(), subscribers: new Set(), retained: undefined };
  }

  /** Number of nodes, the root included. */
  get size(): number {
    return this.#byPath.size;
  }

  /** Number of topics holding a value. */
  get retainedCount(): number {
    return this.#retainedCount;
  }

  get(path: string): TopicNode<S, R> | undefined {
    return this.#byPath.get(path);
  }

  /** The node for a valid path (see `checkTopic`), created with its missing ancestors. */
  ensure(path: string): TopicNode<S, R> {
    const found = this.#byPath.get(path);
    if (found) return found;
    const cut = path.lastIndexOf('/');
    const parent = cut < 0 ? this.root : this.ensure(path.slice(0, cut));
    const node = TopicTree.#node<S, R>(path, parent);
    parent.children.set(path.slice(cut + 1), node);
    this.#byPath.set(path, node);
    return node;
  }

  /** Sets or clears a node's last value. */
  retain(node: TopicNode<S, R>, value: R | undefined): void {
    if (node.retained === undefined && value !== undefined) this.#retainedCount++;
    else if (node.retained !== undefined && value === undefined) this.#retainedCount--;
    node.retained = value;
    if (value === undefined) this.prune(node);
  }

  /** Removes `node` and its ancestors while they hold no subscriber, value or child. */
  prune(node: TopicNode<S, R>): void {
    let n: TopicNode<S, R> | undefined = node;
    while (n && n.parent && n.subscribers.size === 0 && n.retained === undefined && n.children.size === 0) {
      n.parent.children.delete(n.path.slice(n.path.lastIndexOf('/') + 1));
      this.#byPath.delete(n.path);
      n = n.parent;
    }
  }

  /** Every node holding a value in the subtree of `node` (itself first), depth first. */
  *retainedUnder(node: TopicNode<S, R>): Generator<TopicNode<S, R>> {
    const stack: TopicNode<S, R>[] = [node];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (n.retained !== undefined) yield n;
      const kids = [...n.children.values()];
      for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]!);
    }
  }

  /** Paths of every topic holding a value, sorted. */
  topics(): string[] {
    const out: string[] = [];
    for (const n of this.retainedUnder(this.root)) out.push(n.path);
    return out.sort();
  }
}

/** One node of a `FilterTrie`: a filter segment (`+`, `#` or a literal). */
export interface FilterNode<S> {
  readonly filter: string;
  readonly segment: string;
  readonly parent: FilterNode<S> | undefined;
  readonly children: Map<string, FilterNode<S>>;
  readonly subscribers: Set<S>;
}

/**
 * The wildcard subscriptions (MQTT semantics on `/`-separated segments: `+` one segment, `#` the
 * rest, zero segments included), kept apart from the topic tree so a publish pays for them only
 * when some exist. Matching walks the trie along the topic's segments: its cost follows the
 * number of distinct filters that can match, not the number of subscriptions.
 */
export class FilterTrie<S> {
  readonly #root: FilterNode<S> = { filter: '', segment: '', parent: undefined, children: new Map(), subscribers: new Set() };
  #filters = 0;

  /** Number of distinct filters with a subscriber. */
  get size(): number {
    return this.#filters;
  }

  add(filter: string, subscriber: S): FilterNode<S> {
    let n = this.#root;
    for (const seg of filter.split('/')) {
      let next = n.children.get(seg);
      if (!next) {
        next = { filter: n === this.#root ? seg : `${n.filter}/${seg}`, segment: seg, parent: n, children: new Map(), subscribers: new Set() };
        n.children.set(seg, next);
      }
      n = next;
    }
    if (n.subscribers.size === 0) this.#filters++;
    n.subscribers.add(subscriber);
    return n;
  }

  remove(node: FilterNode<S>, subscriber: S): void {
    if (!node.subscribers.delete(subscriber)) return;
    if (node.subscribers.size === 0) this.#filters--;
    let n: FilterNode<S> | undefined = node;
    while (n && n.parent && n.subscribers.size === 0 && n.children.size === 0) {
      n.parent.children.delete(n.segment);
      n = n.parent;
    }
  }

  /** Calls `visit` with the subscribers of every filter matching the topic's `segments`. */
  match(segments: readonly string[], visit: (subscribers: Set<S>) => void): void {
    const walk = (n: FilterNode<S>, i: number): void => {
      const hash = n.children.get('#');
      if (hash && hash.subscribers.size > 0) visit(hash.subscribers);
      if (i === segments.length) {
        if (n !== this.#root && n.subscribers.size > 0) visit(n.subscribers);
        return;
      }
      const plus = n.children.get('+');
      if (plus) walk(plus, i + 1);
      const exact = n.children.get(segments[i]!);
      if (exact) walk(exact, i + 1);
    };
    walk(this.#root, 0);
  }
}

/** Every node holding a value whose path matches a wildcard `filter`, in tree order. */
export function* retainedMatching<S, R>(tree: TopicTree<S, R>, filter: string): Generator<TopicNode<S, R>> {
  const segments = filter.split('/');
  const stack: [TopicNode<S, R>, number][] = [[tree.root, 0]];
  while (stack.length > 0) {
    const [n, i] = stack.pop()!;
    if (i === segments.length) {
      if (n.retained !== undefined) yield n;
      continue;
    }
    const seg = segments[i]!;
    if (seg === '#') {
      yield* tree.retainedUnder(n);
    } else if (seg === '+') {
      const kids = [...n.children.values()];
      for (let k = kids.length - 1; k >= 0; k--) stack.push([kids[k]!, i + 1]);
    } else {
      const child = n.children.get(seg);
      if (child) stack.push([child, i + 1]);
    }
  }
}
