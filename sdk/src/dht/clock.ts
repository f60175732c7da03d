/**
 * Time for the DHT node: real timers for network nodes, and a virtual clock that runs thousands
 * of in-process nodes as a deterministic discrete-event simulation (no real waiting).
 */

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds (real or virtual). */
  now(): number;
  /** Runs `fn` once after `ms`. */
  schedule(ms: number, fn: () => void): TimerHandle;
}

/** The process clock: `performance.now()` and `setTimeout`. */
export const realClock: Clock = Object.freeze({
  now: () => performance.now(),
  schedule(ms: number, fn: () => void): TimerHandle {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
});

interface Event {
  at: number;
  seq: number;
  fn: (() => void) | undefined;
}

/** A binary min-heap of events ordered by (time, insertion order). */
class EventHeap {
  readonly #items: Event[] = [];
  get size(): number {
    return this.#items.length;
  }
  push(e: Event): void {
    const a = this.#items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (before(a[p]!, a[i]!)) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  peek(): Event | undefined {
    return this.#items[0];
  }
  pop(): Event | undefined {
    const a = this.#items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l]!, a[m]!)) m = l;
        if (r < a.length && before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * A virtual clock: `schedule` queues an event, `run*` executes events in time order. Between
 * batches it yields to the microtask and immediate queues so `await` continuations in node code
 * run before virtual time moves on.
 */
export class VirtualClock implements Clock {
  readonly #heap = new EventHeap();
  #now = 0;
  #seq = 0;
  #executed = 0;

  now(): number {
    return this.#now;
  }

  /** Events executed so far (a cost measure for simulations). */
  get executed(): number {
    return this.#executed;
  }

  get pending(): number {
    return this.#heap.size;
  }

  schedule(ms: number, fn: () => void): TimerHandle {
    const event: Event = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn };
    this.#heap.push(event);
    return { cancel: () => void (event.fn = undefined) };
  }

  /** Runs every event due up to virtual time `until`, then sets the clock to `until`. */
  async runUntil(until: number, { yieldEvery = 64 } = {}): Promise<void> {
    let n = 0;
    for (;;) {
      const next = this.#heap.peek();
      if (!next || next.at > until) {
        await settle();
        const again = this.#heap.peek();
        if (!again || again.at > until) break;
        continue;
      }
      this.#heap.pop();
      this.#now = next.at;
      const fn = next.fn;
      if (fn) {
        this.#executed++;
        fn();
        if (++n % yieldEvery === 0) await settle();
      }
    }
    this.#now = Math.max(this.#now, until);
  }

  /** Runs for `ms` of virtual time. */
  advance(ms: number): Promise<void> {
    return this.runUntil(this.#now + ms);
  }

  /** Runs until `done()` is true or `limitMs` of virtual time passes; returns whether it became true. */
  async runWhile(pending: () => boolean, limitMs: number, stepMs = 10): Promise<boolean> {
    const end = this.#now + limitMs;
    while (pending()) {
      if (this.#now >= end) return false;
      await this.runUntil(Math.min(end, this.#now + stepMs));
    }
    return true;
  }
}

function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
