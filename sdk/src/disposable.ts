/**
 * Disposables, as in VS Code's `lifecycle.ts`: anything that holds a resource returns one, and a
 * plugin's `context.subscriptions` are disposed when it deactivates.
 */

export interface Disposable {
  dispose(): void;
}

/** Wraps a callback so that it runs at most once. */
export function toDisposable(fn: () => void): Disposable {
  let done = false;
  return {
    dispose() {
      if (done) return;
      done = true;
      fn();
    },
  };
}

/**
 * Disposes every item, in reverse order of registration, even when some throw; the errors are
 * returned so the caller can report them instead of losing the rest of the clean-up.
 */
export function disposeAll(items: Iterable<Disposable>): unknown[] {
  const list = [...items].reverse();
  const failures: unknown[] = [];
  for (const item of list) {
    try {
      item.dispose();
    } catch (err) {
      failures.push(err);
    }
  }
  return failures;
}
