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
    return { path, pathBytes: Buffer.from(path, 'utf8'), parent, children: new Map(), subscribers: new Set(), retained: undefined };
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
