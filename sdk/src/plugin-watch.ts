/**
 * `--watch` for plugin folders: a change under a plugin's folder reloads that plugin
 * (`host.reload(id)`), debounced so an editor's save (often several writes) reloads once.
 */
import { watch, type FSWatcher } from 'node:fs';
import { resolve, sep } from 'node:path';
import type { PluginHost, PluginInfo } from './plugin-host.js';
import { toDisposable, type Disposable } from './disposable.js';

export interface WatchPluginsOptions {
  /** Quiet time after the last change before reloading, in ms (default 150). */
  readonly debounceMs?: number;
  /** Called after each reload attempt: the new info, or the error (the old code keeps serving when it failed to load). */
  readonly onReload?: (id: string, result: { info?: PluginInfo; error?: Error }) => void;
}

/** Watches `dirs` (the folders given with `--plugin-dir`) and reloads the plugin whose files change. */
export function watchPlugins(host: PluginHost, dirs: readonly string[], options: WatchPluginsOptions = {}): Disposable {
  const debounceMs = options.debounceMs ?? 150;
  const timers = new Map<string, NodeJS.Timeout>();
  const watchers: FSWatcher[] = [];
  const pluginAt = (file: string): string | undefined => {
    // the deepest folder plugin that holds the changed file
    let best: PluginInfo | undefined;
    for (const p of host.plugins()) {
      if (p.dir === undefined || p.state === 'invalid') continue;
      const d = resolve(p.dir);
      if ((file === d || file.startsWith(d + sep)) && (best === undefined || d.length > resolve(best.dir!).length)) best = p;
    }
    return best?.id;
  };
  let chain: Promise<unknown> = Promise.resolve();
  const schedule = (id: string) => {
    clearTimeout(timers.get(id));
    timers.set(
      id,
      setTimeout(() => {
        timers.delete(id);
        // one reload at a time
        chain = chain.then(() =>
          host.reload(id).then(
            (info) => options.onReload?.(id, { info }),
            (error: Error) => options.onReload?.(id, { error }),
          ),
        );
      }, debounceMs),
    );
  };
  for (const dir of dirs) {
    const root = resolve(dir);
    const w = watch(root, { recursive: true }, (_event, name) => {
      if (name === null) return;
      const file = resolve(root, name.toString());
      if (file.split(sep).includes('node_modules')) return;
      const id = pluginAt(file);
      if (id !== undefined) schedule(id);
    });
    w.on('error', () => undefined);
    watchers.push(w);
  }
  return toDisposable(() => {
    for (const w of watchers) w.close();
    for (const t of timers.values()) clearTimeout(t);
    timers.clear();
  });
}
