/**
 * Disposable taps for tapable hooks. tapable has no untap: disposing a tap splices it out of
 * `hook.taps` and resets the hook's compiled call so the next call recompiles without it.
 * Every tapped listener is wrapped so a throw becomes a `PluginError` (plugin id + hook name)
 * reported to the host instead of escaping into the engine that called the hook.
 */
import type { Hook } from 'tapable';
import { PluginError } from './errors.js';
import { toDisposable, type Disposable } from './disposable.js';

/** Where a listener's failure goes: the host turns it into a `plugin-error` event. */
export type PluginErrorSink = (error: PluginError) => void;

interface ResettableHook {
  taps: { fn: unknown }[];
  _resetCompilation?: () => void;
}

/** Removes a tap by identity and forces recompilation. Returns whether it was found. */
export function untap(hook: Hook<any, any>, fn: unknown): boolean {
  const h = hook as unknown as ResettableHook;
  const i = h.taps.findIndex((t) => t.fn === fn);
  if (i < 0) return false;
  h.taps.splice(i, 1);
  h._resetCompilation?.();
  return true;
}

/**
 * Taps `hook` as `plugin` (sync listener). The listener's exceptions are reported to `sink` as
 * `PluginError`s and the hook call goes on with the other listeners.
 */
export function tapSync<A extends unknown[]>(
  hook: Hook<A, any>,
  hookName: string,
  plugin: string,
  listener: (...args: A) => void,
  sink: PluginErrorSink,
): Disposable {
  const fn = (...args: A): undefined => {
    try {
      listener(...args);
    } catch (err) {
      sink(new PluginError(plugin, hookName, err));
    }
    return undefined;
  };
  (hook as unknown as { tap(name: string, fn: (...args: A) => void): void }).tap(plugin, fn);
  return toDisposable(() => {
    untap(hook, fn);
  });
}
