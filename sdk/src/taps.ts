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

/** Marks a listener that already turns its throws into `PluginError`s; holds the listener it wraps. */
const kGuarded = Symbol('trellis.guarded');
type Guarded = { [kGuarded]?: unknown };

/** Removes a tap by identity and forces recompilation. Returns whether it was found. */
export function untap(hook: Hook<any, any>, fn: unknown): boolean {
  const h = hook as unknown as ResettableHook;
  const i = h.taps.findIndex((t) => t.fn === fn || (t.fn as Guarded | undefined)?.[kGuarded] === fn);
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
  (fn as Guarded)[kGuarded] = listener;
  (hook as unknown as { tap(name: string, fn: (...args: A) => void): void }).tap(plugin, fn);
  return toDisposable(() => {
    untap(hook, fn);
  });
}

/**
 * The guarded path for every tap on `hooks`: a tapable `register` interceptor wraps each sync
 * listener — taps made on the public hook objects by app code included — so a throw becomes a
 * `PluginError` (the tap's name as plugin id, `area.hook` as hook name) reported to `sink`, and the
 * engine that called the hook goes on. Listeners tapped through a plugin context are already
 * guarded and are left as they are; `untap` finds wrapped listeners by the function given.
 */
export function guardHooks(hooks: Readonly<Record<string, Hook<any, any>>>, area: string, sink: PluginErrorSink): void {
  for (const [name, hook] of Object.entries(hooks)) {
    const hookName = `${area}.${name}`;
    hook.intercept({
      register(tap) {
        const original = tap.fn as ((...args: unknown[]) => unknown) & Guarded;
        if (tap.type !== 'sync' || typeof original !== 'function' || original[kGuarded] !== undefined) return tap;
        const fn = (...args: unknown[]): unknown => {
          try {
            return original(...args);
          } catch (err) {
            sink(new PluginError(tap.name, hookName, err));
            return undefined;
          }
        };
        (fn as Guarded)[kGuarded] = original;
        return { ...tap, fn };
      },
    });
  }
}
