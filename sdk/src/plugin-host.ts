/**
 * The plugin host, after VS Code's extension host: it scans plugin folders, validates manifests
 * without running plugin code, indexes contributions, and activates a plugin lazily the first
 * time one of its activation events fires. Concurrent activations share one promise, dependencies
 * activate first, `activate` runs under a timeout, and a failing plugin is recorded as failed
 * while the host and every other plugin keep going.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { createRequire, register as registerHooks } from 'node:module';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SafeEmitter } from './safe-emitter.js';
import { createLogger, type Logger } from './logger.js';
import { disposeAll, toDisposable, type Disposable } from './disposable.js';
import { readManifest, validateManifest, activationEvent, type ManifestInput, type PluginManifest } from './manifest.js';
import {
  ActivationError,
  ActivationTimeoutError,
  ContributionError,
  DependencyError,
  DisposedError,
  ErrorCodes,
  ManifestError,
  NoProviderError,
  PluginError,
  StateError,
  TimeoutError,
  TrellisError,
  errors,
} from './errors.js';
import { SDK_VERSION } from './version.js';
import { RoutingArea } from './areas/routing.js';
import { SerializationArea } from './areas/serialization.js';
import { DhtRoutingArea } from './areas/dht-routing.js';
import { AccessArea } from './areas/access.js';
import { registryOf, type AreaHost, type AreaName } from './areas/registry.js';
import type { StrategyFactory } from './areas/routing.js';
import type { Codec } from './areas/serialization.js';
import type { DhtRoutingFactory } from './areas/dht-routing.js';
import { tapSync } from './taps.js';
import type { PluginContext, PluginModule } from './context.js';

export type PluginState = 'discovered' | 'activating' | 'active' | 'failed' | 'deactivating' | 'deactivated' | 'invalid';

/** A snapshot of one plugin, as `trellis plugins` shows it. */
export interface PluginInfo {
  readonly id: string;
  readonly version: string;
  /** The plugin folder, or undefined for in-process plugins. */
  readonly dir: string | undefined;
  readonly state: PluginState;
  readonly manifest: PluginManifest | undefined;
  /** Why the plugin is `failed` or `invalid`. */
  readonly error: TrellisError | undefined;
  /** How long `activate` took, once active. */
  readonly activationMs: number | undefined;
}

/** A plugin defined inside the embedding app: a manifest plus the module's functions. */
export interface InProcessPlugin extends PluginModule {
  readonly manifest: ManifestInput;
}

/**
 * One entry of `createHost({ plugins })`: a package name (resolved from the app like `import`
 * resolves it), a folder path (starting with `.`, `..` or `/`; a plugin folder or a folder of
 * plugin folders), or a plugin defined in-process.
 */
export type PluginSpec = string | InProcessPlugin;

export interface PluginHostOptions {
  /**
   * Plugins to load: package names (`'@trellis/plugin-round-robin'`), folders (`'./my-plugins/p2c'`)
   * and in-process plugin objects. A name or folder that cannot be found throws at `createHost`.
   */
  plugins?: readonly PluginSpec[];
  /** Plugin folders to scan (the `--plugin-dir` flag): single plugin folders or folders of them. Each must exist. */
  dirs?: readonly string[];
  /**
   * Discover the plugin packages the app has installed (default true): every package listed in
   * the `dependencies`, `optionalDependencies` or `devDependencies` of the app's package.json
   * whose own package.json has an `engines.trellis` range (the Trellis plugin marker).
   */
  discover?: boolean;
  /**
   * The app's folder (default `process.cwd()`; the nearest package.json at or above it is the
   * app's). Package names are resolved from the first one; discovery reads each in order.
   */
  appRoot?: string | readonly string[];
  /** @deprecated The old name of `discover`; `builtins: false` turns discovery off. */
  builtins?: boolean;
  /** How long `activate` and `deactivate` may take (default 10 s). */
  activationTimeoutMs?: number;
  logger?: Logger;
  /** Overrides the SDK version checked against `engines.trellis` (tests). */
  sdkVersion?: string;
}

export interface HostEvents {
  /** A plugin finished `activate`. */
  activated: [info: PluginInfo];
  /** A plugin failed to activate: it threw, timed out, or a dependency failed. */
  'activation-failed': [info: PluginInfo, error: TrellisError];
  /** A plugin's code threw inside a hook or a provider call. */
  'plugin-error': [error: PluginError];
  /** A plugin was deactivated and its subscriptions disposed. */
  deactivated: [info: PluginInfo];
  /** A plugin registered a provider (strategy, codec, DHT routing) under `id`. */
  'provider-added': [area: AreaName, id: string, plugin: string];
  /** A provider was unregistered (its plugin deactivated or failed): engines must stop using it. */
  'provider-removed': [area: AreaName, id: string, plugin: string];
  /**
   * A provider was swapped for the same plugin's new code (`reload`): engines take a new instance
   * for new work; in-flight work finishes on the old one.
   */
  'provider-replaced': [area: AreaName, id: string, plugin: string];
  /** `reload(id)` swapped the plugin's code in (`version`: the reload count, from 1). */
  reloaded: [info: PluginInfo, version: number];
  /** `reload(id)` failed; `kept` says whether the previous code is still serving. */
  'reload-failed': [info: PluginInfo, error: TrellisError, kept: boolean];
  /** A folder looked like a plugin but its manifest is invalid; it is skipped. */
  'invalid-plugin': [dir: string, error: TrellisError];
}

interface PluginRecord {
  id: string;
  version: string;
  dir: string | undefined;
  manifest: PluginManifest | undefined;
  module: PluginModule | undefined;
  state: PluginState;
  error: TrellisError | undefined;
  activation: Promise<void> | undefined;
  context: PluginContext | undefined;
  /** Registrations and subscriptions to dispose on deactivation. */
  owned: Disposable[];
  activationMs: number | undefined;
  order: number;
  /** Set while `reload` activates new code beside the old: registrations replace, not add. */
  replacing?: { area: AreaName; id: string }[];
  /** Reloads so far (the cache-busting version of the entry module's URL). */
  reloads?: number;
}

/**
 * A module resolve hook (node:module register), installed on the first reload only: a relative
 * import made by a module whose URL carries `?trellis-v=N` (a reloaded plugin entry) gets the same
 * query, so every file of the plugin reachable by relative imports is evaluated afresh. Bare
 * specifiers (packages, the SDK) resolve as before and stay shared.
 */
const RELOAD_HOOK = `
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  const parent = context.parentURL;
  if (parent === undefined || !(specifier.startsWith('./') || specifier.startsWith('../'))) return result;
  const v = parent.startsWith('file:') ? new URL(parent).searchParams.get('trellis-v') : null;
  if (v === null || !result.url.startsWith('file:') || result.url.includes('?')) return result;
  return { ...result, url: result.url + '?trellis-v=' + v };
}`;
let reloadHookInstalled = false;
function versionRelativeImports(): void {
  if (reloadHookInstalled) return;
  reloadHookInstalled = true;
  registerHooks(`data:text/javascript,${encodeURIComponent(RELOAD_HOOK)}`);
}

/** Is `spec` a folder path rather than a package name? (`.`, `..`, `./x`, `../x`, `/x`, `C:\\x`) */
function isPathSpec(spec: string): boolean {
  return spec === '.' || spec === '..' || /^\.{1,2}[\\/]/.test(spec) || isAbsolute(spec);
}

/** The folder holding the nearest package.json at or above `dir`, or `dir` itself when there is none. */
function packageRoot(dir: string): string {
  for (let d = resolve(dir); ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json'))) return d;
    if (dirname(d) === d) return resolve(dir);
  }
}

/**
 * The folder of package `name` as Node's resolver would find it from `root` (its node_modules
 * chain and NODE_PATH), without loading it and whatever its `exports` map hides.
 */
export function findPackageDir(name: string, root: string): string | undefined {
  const paths = createRequire(join(root, 'package.json')).resolve.paths(name) ?? [];
  for (const p of paths) {
    const dir = join(p, name);
    if (existsSync(join(dir, 'package.json'))) return dir;
  }
  return undefined;
}

function pluginNotFound(message: string): TrellisError {
  return new TrellisError(ErrorCodes.PLUGIN_NOT_FOUND, message);
}


export class PluginHost extends SafeEmitter<HostEvents> {
  readonly routing: RoutingArea;
  readonly serialization: SerializationArea;
  readonly dhtRouting: DhtRoutingArea;
  readonly access: AccessArea;
  readonly log: Logger;
  readonly sdkVersion: string;

  readonly #records = new Map<string, PluginRecord>();
  readonly #invalid: PluginInfo[] = [];
  readonly #contributors: Record<AreaName, Map<string, string>> = { strategies: new Map(), serializers: new Map(), dhtRouting: new Map(), access: new Map() };
  readonly #wireIds = new Map<number, string>();
  readonly #timeoutMs: number;
  readonly #dirs: string[];
  readonly #packages: string[] = [];
  readonly #appRoots: string[];
  readonly #discover: boolean;
  /** Real paths of the plugin folders already read, so one folder found twice loads once. */
  readonly #seen = new Set<string>();
  #scanned: Promise<void> | undefined;
  #started: Promise<void> | undefined;
  #activationOrder = 0;
  #disposed = false;

  constructor(options: PluginHostOptions = {}) {
    super();
    this.log = options.logger ?? createLogger('trellis');
    this.sdkVersion = options.sdkVersion ?? SDK_VERSION;
    this.#timeoutMs = options.activationTimeoutMs ?? 10_000;
    const roots = options.appRoot === undefined ? [process.cwd()] : typeof options.appRoot === 'string' ? [options.appRoot] : [...options.appRoot];
    this.#appRoots = roots.map((r) => packageRoot(r));
    this.#discover = options.discover ?? options.builtins ?? true;
    this.#dirs = [];
    for (const d of options.dirs ?? []) this.#addDir(resolve(d), d);
    const inProcess: InProcessPlugin[] = [];
    for (const spec of options.plugins ?? []) {
      if (typeof spec !== 'string') inProcess.push(spec);
      else if (isPathSpec(spec)) this.#addDir(resolve(this.#appRoots[0] ?? process.cwd(), spec), spec);
      else {
        const dir = findPackageDir(spec, this.#appRoots[0] ?? process.cwd());
        if (dir === undefined) throw pluginNotFound(`plugin package "${spec}" is not installed (looked from ${this.#appRoots[0]}); install it with: npm install ${spec}`);
        this.#packages.push(dir);
      }
    }
    const areaHost: AreaHost = {
      ready: () => this.scan(),
      activateContributor: (area, id) => this.#activateContributor(area, id),
      contributors: (area) => this.#contributors[area],
      reportPluginError: (err) => this.#reportPluginError(err),
    };
    this.routing = new RoutingArea(areaHost);
    this.serialization = new SerializationArea(areaHost, () => this.#wireIds);
    this.dhtRouting = new DhtRoutingArea(areaHost);
    this.access = new AccessArea(areaHost);
    for (const plugin of inProcess) this.register(plugin);
  }

  #addDir(dir: string, given: string): void {
    let isDir = false;
    try {
      isDir = statSync(dir).isDirectory();
    } catch {
      // reported below
    }
    if (!isDir) throw pluginNotFound(`plugin folder "${given}" does not exist (${dir})`);
    this.#dirs.push(dir);
  }

  /** The plugin folders given explicitly (`dirs` and folder paths in `plugins`), in order. */
  get dirs(): readonly string[] {
    return this.#dirs;
  }

  /** The app folders whose package.json discovery reads (and package names resolve from). */
  get appRoots(): readonly string[] {
    return this.#appRoots;
  }

  protected override onListenerError(event: string | symbol, err: unknown): void {
    this.log.error(`a listener of host event "${String(event)}" threw`, err);
  }

  // ---------------------------------------------------------------- discovery

  /** Registers a plugin defined in-process. Throws `ManifestError` for a bad manifest. */
  register(plugin: InProcessPlugin): PluginInfo {
    this.#assertAlive();
    const manifest = validateManifest(plugin.manifest, `in-process plugin "${plugin.manifest?.name ?? '?'}"`, this.sdkVersion);
    if (typeof plugin.activate !== 'function') throw new ManifestError(`in-process plugin "${manifest.name}"`, 'activate', 'must be a function');
    const record = this.#add(manifest, undefined, { activate: plugin.activate.bind(plugin), deactivate: plugin.deactivate?.bind(plugin) });
    return this.#info(record);
  }

  /**
   * Scans the directories once (later calls share the first scan). Invalid plugins are recorded
   * and reported through `invalid-plugin`; they never stop the scan.
   */
  scan(): Promise<void> {
    this.#scanned ??= this.#scan();
    return this.#scanned;
  }

  async #scan(): Promise<void> {
    // Order decides which copy wins on a duplicate id: explicit packages, folders, then discovery.
    for (const dir of this.#packages) await this.#readPlugin(dir, true);
    for (const dir of this.#dirs) {
      // A folder with a manifest is one plugin; otherwise each subfolder may be one.
      if (existsSync(join(dir, 'package.json')) && (await this.#looksLikePlugin(dir))) {
        await this.#readPlugin(dir, true);
        continue;
      }
      for (const name of (await readdir(dir)).sort()) {
        const candidate = join(dir, name);
        if (!(await stat(candidate).catch(() => undefined))?.isDirectory()) continue;
        if (!existsSync(join(candidate, 'package.json'))) continue;
        await this.#readPlugin(candidate, true);
      }
    }
    if (this.#discover) for (const root of this.#appRoots) await this.#discoverFrom(root);
  }

  /** Reads the app's package.json and loads every dependency that is marked as a Trellis plugin. */
  async #discoverFrom(root: string): Promise<void> {
    let pkg: Record<string, unknown>;
    try {
      pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn(`plugin discovery: cannot read ${join(root, 'package.json')}: ${(err as Error).message}`);
      return;
    }
    const names = new Set<string>();
    for (const field of ['dependencies', 'optionalDependencies', 'devDependencies']) {
      const deps = pkg[field];
      if (deps && typeof deps === 'object') for (const name of Object.keys(deps)) names.add(name);
    }
    for (const name of [...names].sort()) {
      const dir = findPackageDir(name, root);
      if (dir === undefined) {
        this.log.debug(`plugin discovery: ${name} is listed in ${join(root, 'package.json')} but not installed`);
        continue;
      }
      if (await this.#looksLikePlugin(dir, false)) await this.#readPlugin(dir, false);
    }
  }

  /** Reads one plugin folder once (by real path); an invalid manifest is recorded, never thrown. */
  async #readPlugin(dir: string, explicit: boolean): Promise<void> {
    let real = dir;
    try {
      real = realpathSync(dir);
    } catch {
      // keep the given path
    }
    if (this.#seen.has(real)) return;
    this.#seen.add(real);
    try {
      const manifest = await readManifest(dir, this.sdkVersion);
      this.#add(manifest, dir, undefined);
    } catch (err) {
      const error = err instanceof TrellisError ? err : new ManifestError(join(dir, 'package.json'), '(file)', String(err));
      this.#invalid.push(Object.freeze({ id: dir, version: '', dir, state: 'invalid', manifest: undefined, error, activationMs: undefined }));
      this.log.warn(`skipping ${explicit ? 'plugin' : 'discovered plugin'} in ${dir}: ${error.message}`);
      this.emit('invalid-plugin', dir, error);
    }
  }

  /**
   * The Trellis plugin marker: an `engines.trellis` range (as VS Code extensions carry
   * `engines.vscode`). A folder given explicitly also counts when it has `contributes`.
   */
  async #looksLikePlugin(dir: string, explicit = true): Promise<boolean> {
    try {
      const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
      return typeof pkg?.engines?.trellis === 'string' || (explicit && pkg?.contributes !== undefined);
    } catch {
      return explicit; // an explicit folder: let readManifest report the problem
    }
  }

  #add(manifest: PluginManifest, dir: string | undefined, module: PluginModule | undefined): PluginRecord {
    const existing = this.#records.get(manifest.name);
    if (existing) {
      throw new TrellisError(
        ErrorCodes.DUPLICATE_PLUGIN,
        `plugin "${manifest.name}" is already registered from ${existing.dir ?? 'in-process'}; ${dir ?? 'the in-process one'} is ignored`,
      );
    }
    const record: PluginRecord = {
      id: manifest.name,
      version: manifest.version,
      dir,
      manifest,
      module,
      state: 'discovered',
      error: undefined,
      activation: undefined,
      context: undefined,
      owned: [],
      activationMs: undefined,
      order: 0,
    };
    this.#records.set(record.id, record);
    const index = (area: AreaName, ids: readonly string[]) => {
      for (const id of ids) {
        const owner = this.#contributors[area].get(id);
        if (owner === undefined) this.#contributors[area].set(id, record.id);
        else this.log.warn(`plugin "${record.id}" also contributes ${area} "${id}", already provided by "${owner}"; using "${owner}"`);
      }
    };
    index('strategies', manifest.contributes.strategies.map((s) => s.id));
    index('serializers', manifest.contributes.serializers.map((s) => s.id));
    index('dhtRouting', manifest.contributes.dhtRouting.map((s) => s.id));
    index('access', (manifest.contributes.access ?? []).map((s) => s.id));
    for (const s of manifest.contributes.serializers) {
      if (!this.#wireIds.has(s.wireId)) this.#wireIds.set(s.wireId, s.id);
    }
    return record;
  }

  /** Every known plugin (valid ones in discovery order, then invalid folders). */
  plugins(): PluginInfo[] {
    return [...[...this.#records.values()].map((r) => this.#info(r)), ...this.#invalid];
  }

  /** One plugin's snapshot. */
  plugin(id: string): PluginInfo | undefined {
    const record = this.#records.get(id);
    return record && this.#info(record);
  }

  #info(r: PluginRecord): PluginInfo {
    return Object.freeze({ id: r.id, version: r.version, dir: r.dir, state: r.state, manifest: r.manifest, error: r.error, activationMs: r.activationMs });
  }

  // --------------------------------------------------------------- activation

  /**
   * Activates every plugin that lists `event` (and those with `*`), as VS Code does: an observer
   * that lists `onStrategy:round-robin` wakes up with the strategy, not only its contributor.
   * Failures are recorded and reported through `activation-failed`, not thrown.
   */
  async activateByEvent(event: string): Promise<void> {
    await this.scan();
    const targets = [...this.#records.values()].filter((r) => r.manifest!.activationEvents.some((e) => e === event || e === '*'));
    await Promise.all(targets.map((r) => this.activate(r.id).catch(() => undefined)));
  }

  /**
   * Starts the host: scans, then activates every plugin whose activation events include
   * `onStartup` or `*`. Later calls share the first start. Failures are recorded, not thrown.
   */
  start(): Promise<void> {
    this.#assertAlive();
    this.#started ??= this.activateByEvent('onStartup');
    return this.#started;
  }

  /**
   * Activates plugin `id` (dependencies first). Concurrent calls share one activation. Rejects
   * with an `ActivationError` (or `DependencyError`) when it fails; the plugin stays `failed`.
   */
  async activate(id: string): Promise<void> {
    this.#assertAlive();
    await this.scan();
    const record = this.#records.get(id);
    if (!record) throw new TrellisError(ErrorCodes.PLUGIN_NOT_FOUND, `no plugin "${id}" is known to this host (known: ${[...this.#records.keys()].join(', ') || 'none'})`);
    if (record.activation) return record.activation;
    if (record.state === 'deactivated') record.state = 'discovered';
    record.activation = this.#activate(record);
    return record.activation;
  }

  async #activate(record: PluginRecord): Promise<void> {
    const manifest = record.manifest!;
    record.state = 'activating';
    const started = performance.now();
    try {
      this.#checkDependencies(record.id, []);
      for (const dep of manifest.pluginDependencies) {
        try {
          await this.activate(dep);
        } catch (err) {
          throw new ActivationError(record.id, `dependency "${dep}" failed to activate`, { cause: err });
        }
      }
      const module = record.module ?? (await this.#load(record));
      record.module = module;
      const context = this.#createContext(record);
      record.context = context;
      await this.#withTimeout(record.id, () => module.activate(context));
      if (record.state !== 'activating') return; // disposed or deactivated meanwhile
      record.state = 'active';
      record.activationMs = performance.now() - started;
      record.order = ++this.#activationOrder;
      this.log.debug(`activated ${record.id} in ${record.activationMs.toFixed(1)} ms`);
      this.emit('activated', this.#info(record));
    } catch (err) {
      const error =
        err instanceof ActivationError || err instanceof DependencyError
          ? err
          : new ActivationError(record.id, `activate() threw: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      record.state = 'failed';
      record.error = error;
      this.#disposeOwned(record);
      this.log.error(error.message);
      this.emit('activation-failed', this.#info(record), error);
      throw error;
    }
  }

  /** Walks the dependency graph from `id`; a cycle or a missing plugin is an error, never a hang. */
  #checkDependencies(id: string, path: string[]): void {
    if (path.includes(id)) {
      const cycle = [...path.slice(path.indexOf(id)), id].join(' -> ');
      throw new DependencyError(path[0]!, `dependency cycle: ${cycle}`, ErrorCodes.DEPENDENCY_CYCLE);
    }
    const record = this.#records.get(id);
    if (!record) throw new DependencyError(path[path.length - 1] ?? id, `depends on "${id}", which is not installed`);
    for (const dep of record.manifest!.pluginDependencies) this.#checkDependencies(dep, [...path, id]);
  }

  async #load(record: PluginRecord, version = 0): Promise<PluginModule> {
    const file = resolve(record.dir!, record.manifest!.main!);
    if (!existsSync(file)) {
      throw new ActivationError(record.id, `its main module ${file} does not exist: the package's "main" names a file that was not built or not shipped`);
    }
    let mod: Partial<PluginModule> & { default?: Partial<PluginModule> };
    try {
      // a reload busts Node's ESM cache: the entry under a new URL, and its relative imports with it
      const url = pathToFileURL(file).href;
      if (version > 0) versionRelativeImports();
      mod = await import(version === 0 ? url : `${url}?trellis-v=${version}`);
    } catch (err) {
      throw new ActivationError(record.id, `loading ${file} failed: ${(err as Error).message}`, { cause: err });
    }
    const activate = mod.activate ?? mod.default?.activate;
    const deactivate = mod.deactivate ?? mod.default?.deactivate;
    if (typeof activate !== 'function') throw new ActivationError(record.id, `${file} does not export an activate() function`);
    return { activate, ...(deactivate ? { deactivate } : {}) };
  }

  #withTimeout(plugin: string, fn: () => void | Promise<void>): Promise<void> {
    return new Promise<void>((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new ActivationTimeoutError(plugin, this.#timeoutMs)), this.#timeoutMs);
      Promise.resolve()
        .then(fn)
        .then(
          () => {
            clearTimeout(timer);
            resolvePromise();
          },
          (err) => {
            clearTimeout(timer);
            reject(err);
          },
        );
    });
  }

  async #activateContributor(area: AreaName, id: string): Promise<string> {
    await this.scan();
    const plugin = this.#contributors[area].get(id);
    const label = area === 'strategies' ? 'strategy' : area === 'serializers' ? 'serializer' : area === 'access' ? 'access provider' : 'DHT routing';
    if (plugin === undefined) throw new NoProviderError(label, id, [...this.#contributors[area].keys()]);
    const event = area === 'strategies' ? activationEvent.strategy(id) : area === 'serializers' ? activationEvent.serializer(id) : area === 'access' ? activationEvent.access(id) : activationEvent.dhtRouting(id);
    this.log.debug(`activation event ${event} -> ${plugin}`);
    // Every other plugin that lists the event wakes up too; its failure never fails the contributor.
    const others = [...this.#records.values()].filter((r) => r.id !== plugin && r.manifest!.activationEvents.some((e) => e === event || e === '*'));
    await Promise.all([this.activate(plugin), ...others.map((r) => this.activate(r.id).catch(() => undefined))]);
    return plugin;
  }

  // ------------------------------------------------------------------ context

  #createContext(record: PluginRecord): PluginContext {
    const manifest = record.manifest!;
    const sink = (err: PluginError) => this.#reportPluginError(err);
    const own = (d: Disposable): Disposable => {
      record.owned.push(d);
      return d;
    };
    const alive = () => {
      if (record.state !== 'activating' && record.state !== 'active') throw new DisposedError(`the context of plugin "${record.id}"`);
    };
    const declared = (area: AreaName) => new Set<string>(manifest.contributes[area].map((c) => c.id));
    const strategies = declared('strategies');
    const serializers = declared('serializers');
    const dht = declared('dhtRouting');
    const accessIds = new Set<string>((manifest.contributes.access ?? []).map((c) => c.id));
    const id = record.id;
    // Every registration tells the engines when it comes and goes, so none keeps a disposed provider.
    const areaOf = { strategies: this.routing, serializers: this.serialization, dhtRouting: this.dhtRouting, access: this.access } as const;
    const provide = <T>(area: AreaName, pid: string, declaredIds: ReadonlySet<string>, value: T): Disposable => {
      const registry = registryOf<T>(areaOf[area]);
      const replacing = record.replacing !== undefined && registry.get(pid)?.plugin === id;
      const registration = replacing ? registry.replace(id, declaredIds, pid, value) : registry.register(id, declaredIds, pid, value);
      // a reload announces replacements once the new code's activate() has finished
      if (replacing) record.replacing!.push({ area, id: pid });
      else this.emit('provider-added', area, pid, id);
      return own(
        toDisposable(() => {
          registration.dispose();
          // replaced by a reload: the id never went missing
          if (registry.get(pid) === undefined) this.emit('provider-removed', area, pid, id);
        }),
      );
    };

    return Object.freeze({
      pluginId: id,
      manifest,
      pluginDir: record.dir,
      subscriptions: [],
      log: this.log.child(id),
      errors,
      routing: Object.freeze({
        registerStrategy: (sid: string, factory: Parameters<PluginContext['routing']['registerStrategy']>[1]) => {
          alive();
          if (typeof factory !== 'function') throw new ContributionError(id, 'strategies', sid, 'must be registered with a factory function');
          return provide<StrategyFactory>('strategies', sid, strategies, factory);
        },
        tap: (hook: keyof RoutingArea['hooks'], listener: (...args: any[]) => void) => {
          alive();
          return own(tapSync(this.routing.hooks[hook] as any, `routing.${hook}`, id, listener, sink));
        },
      }),
      serialization: Object.freeze({
        registerCodec: (codec: Parameters<PluginContext['serialization']['registerCodec']>[0]) => {
          alive();
          const name = codec?.name;
          const entry = manifest.contributes.serializers.find((s) => s.id === name);
          if (entry && entry.wireId !== codec.wireId) {
            throw new ContributionError(id, 'serializers', name, `has wireId ${codec.wireId} but the manifest declares ${entry.wireId}`);
          }
          if (typeof codec?.encode !== 'function' || typeof codec?.decode !== 'function') {
            throw new ContributionError(id, 'serializers', String(name), 'a codec needs encode() and decode()');
          }
          return provide<Codec>('serializers', name, serializers, codec);
        },
        tap: (hook: keyof SerializationArea['hooks'], listener: (...args: any[]) => void) => {
          alive();
          return own(tapSync(this.serialization.hooks[hook] as any, `serialization.${hook}`, id, listener, sink));
        },
      }),
      dhtRouting: Object.freeze({
        registerRouting: (rid: string, factory: Parameters<PluginContext['dhtRouting']['registerRouting']>[1]) => {
          alive();
          if (typeof factory !== 'function') throw new ContributionError(id, 'dhtRouting', rid, 'must be registered with a factory function');
          return provide<DhtRoutingFactory>('dhtRouting', rid, dht, factory);
        },
        tap: (hook: keyof DhtRoutingArea['hooks'], listener: (...args: any[]) => void) => {
          alive();
          return own(tapSync(this.dhtRouting.hooks[hook] as any, `dhtRouting.${hook}`, id, listener, sink));
        },
      }),
      access: Object.freeze({
        registerAccess: (aid: string, factory: Parameters<PluginContext['access']['registerAccess']>[1]) => {
          alive();
          if (typeof factory !== 'function') throw new ContributionError(id, 'access', aid, 'must be registered with a factory function');
          return own(this.access.registry.register(id, accessIds, aid, factory));
        },
        tap: (hook: keyof AccessArea['hooks'], listener: (...args: any[]) => void) => {
          alive();
          return own(tapSync(this.access.hooks[hook] as any, `access.${hook}`, id, listener, sink));
        },
      }),
    }) as PluginContext;
  }

  /** Errors already reported: an error rethrown by the guarded path and caught again is reported once. */
  readonly #reported = new WeakSet<PluginError>();

  #reportPluginError(error: PluginError): void {
    if (this.#reported.has(error)) return;
    this.#reported.add(error);
    this.log.error(error.message);
    this.emit('plugin-error', error);
  }

  /**
   * Reports an error thrown by a plugin's provider (a strategy's `select`, a codec's `decode`…)
   * caught by an engine. Returns the `PluginError` so the engine can use it.
   */
  pluginError(plugin: string, hook: string, cause: unknown): PluginError {
    const error = cause instanceof PluginError ? cause : new PluginError(plugin, hook, cause);
    this.#reportPluginError(error);
    return error;
  }

  #disposeOwned(record: PluginRecord): unknown[] {
    const failures = [
      ...disposeAll(record.context?.subscriptions.splice(0) ?? []),
      ...disposeAll(record.owned.splice(0)),
    ];
    for (const err of failures) this.#reportPluginError(new PluginError(record.id, 'dispose', err));
    return failures;
  }

  // ------------------------------------------------------------- deactivation

  /** Runs the plugin's `deactivate()`, then disposes its subscriptions; dependents go first. */
  /**
   * Re-reads plugin `id`'s folder (manifest and entry module) and swaps the new code in without
   * a gap: the new `activate()` runs beside the old code, its registrations replace the old ones
   * in one step (`provider-replaced`: engines take new instances, in-flight work finishes on the
   * old), then the old code is deactivated and its subscriptions disposed. Emits `reloaded`.
   *
   * If the folder cannot be read or the module fails to load, the old code keeps serving
   * (`reload-failed`, kept = true) and the call rejects. If the new `activate()` throws, the plugin
   * is `failed` as after any failed activation (its providers are removed).
   *
   * Node caches ES modules for the life of the process: the entry module is imported again under a
   * new URL (`?trellis-v=N`), and a resolve hook (`module.register`, installed on the first reload)
   * gives the same query to every relative import made from such a module, so all the plugin's
   * files reachable by relative imports are evaluated afresh. Limits: packages the plugin imports
   * by name (and CommonJS `require`) keep their first version; each reload keeps the previous
   * modules in memory (Node never unloads ES modules), so reload is a development tool.
   */
  async reload(id: string): Promise<PluginInfo> {
    this.#assertAlive();
    await this.scan();
    const record = this.#records.get(id);
    if (!record) throw new TrellisError(ErrorCodes.PLUGIN_NOT_FOUND, `no plugin "${id}" is known to this host`);
    if (record.dir === undefined) throw new StateError(`plugin "${id}" was registered in-process; only a plugin loaded from a folder can be reloaded`);
    if (record.replacing) throw new StateError(`plugin "${id}" is already being reloaded`);
    if (record.activation) await record.activation.catch(() => undefined);
    const version = (record.reloads ?? 0) + 1;
    let manifest: PluginManifest;
    let module: PluginModule;
    try {
      manifest = await readManifest(record.dir, this.sdkVersion);
      if (manifest.name !== id) throw new ManifestError(join(record.dir, 'package.json'), 'name', `changed from "${id}" to "${manifest.name}"; restart to load it under a new name`);
      const ids = (m: PluginManifest) => JSON.stringify([m.contributes.strategies, m.contributes.serializers, m.contributes.dhtRouting, m.contributes.access ?? []].map((l) => l.map((c) => c.id).sort()));
      if (ids(manifest) !== ids(record.manifest!)) throw new ManifestError(join(record.dir, 'package.json'), 'contributes', 'the contributed ids changed; restart the host to load them');
      module = await this.#load({ ...record, manifest }, version);
    } catch (err) {
      const error = err instanceof TrellisError ? err : new ActivationError(id, `reload failed: ${String(err)}`, { cause: err });
      this.log.error(`reload of ${id} failed, the previous code keeps serving: ${error.message}`);
      this.emit('reload-failed', this.#info(record), error, true);
      throw error;
    }
    record.reloads = version;
    record.manifest = manifest;
    record.version = manifest.version;
    if (record.state !== 'active') {
      // not running: the next activation uses the new code
      record.module = module;
      this.emit('reloaded', this.#info(record), version);
      return this.#info(record);
    }
    const old = { module: record.module, context: record.context, owned: record.owned.splice(0) };
    const replaced: { area: AreaName; id: string }[] = [];
    record.replacing = replaced;
    record.module = module;
    record.state = 'activating';
    const started = performance.now();
    const activation = (async () => {
      const context = this.#createContext(record);
      record.context = context;
      await this.#withTimeout(record.id, () => module.activate(context));
    })();
    record.activation = activation;
    try {
      await activation;
    } catch (err) {
      record.replacing = undefined;
      const error = new ActivationError(id, `reload: activate() threw: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      record.state = 'failed';
      record.error = error;
      record.activation = undefined;
      this.#disposeOwned(record);
      disposeAll(old.context?.subscriptions.splice(0) ?? []);
      disposeAll(old.owned);
      this.log.error(error.message);
      this.emit('reload-failed', this.#info(record), error, false);
      throw error;
    }
    record.replacing = undefined;
    record.state = 'active';
    record.error = undefined;
    record.activationMs = performance.now() - started;
    // engines swap to the new providers now; the old code is still alive for in-flight work
    for (const r of replaced) this.emit('provider-replaced', r.area, r.id, id);
    await new Promise<void>((r) => setImmediate(r));
    try {
      if (old.module?.deactivate) await this.#withTimeout(id, () => old.module!.deactivate!());
    } catch (err) {
      this.#reportPluginError(new PluginError(id, 'deactivate', err));
    }
    for (const err of [...disposeAll(old.context?.subscriptions.splice(0) ?? []), ...disposeAll(old.owned)]) this.#reportPluginError(new PluginError(id, 'dispose', err));
    this.log.info(`reloaded ${id} (version ${version})`);
    this.emit('reloaded', this.#info(record), version);
    return this.#info(record);
  }

  async deactivate(id: string): Promise<void> {
    const record = this.#records.get(id);
    if (!record) throw new TrellisError(ErrorCodes.PLUGIN_NOT_FOUND, `no plugin "${id}" is installed`);
    if (record.activation) await record.activation.catch(() => undefined);
    if (record.state !== 'active') return;
    for (const other of this.#records.values()) {
      if (other.state === 'active' && other.manifest!.pluginDependencies.includes(id)) await this.deactivate(other.id);
    }
    record.state = 'deactivating';
    try {
      if (record.module?.deactivate) await this.#withTimeout(record.id, () => record.module!.deactivate!());
    } catch (err) {
      this.#reportPluginError(new PluginError(record.id, 'deactivate', err));
    }
    this.#disposeOwned(record);
    record.state = 'deactivated';
    record.activation = undefined;
    record.context = undefined;
    this.emit('deactivated', this.#info(record));
  }

  /**
   * Deactivates every plugin, most recently activated first, within `timeoutMs` overall. Rejects
   * with a `TimeoutError` when the deadline passes (the rest is abandoned, not awaited).
   */
  async dispose({ timeoutMs = 5_000 }: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const active = [...this.#records.values()].filter((r) => r.state === 'active').sort((a, b) => b.order - a.order);
    const work = (async () => {
      for (const r of active) await this.deactivate(r.id);
    })();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(`plugin host did not dispose within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
      for (const r of this.#records.values()) if (r.state === 'activating') r.state = 'deactivated';
      this.removeAllListeners();
    }
  }

  #assertAlive(): void {
    if (this.#disposed) throw new DisposedError('the plugin host');
  }
}

/**
 * Creates a plugin host. With no options it discovers the plugin packages listed in the app's
 * package.json (the nearest one at or above `process.cwd()`); `plugins` adds package names,
 * folders and in-process plugins; `discover: false` turns discovery off.
 */
export function createHost(options: PluginHostOptions = {}): PluginHost {
  return new PluginHost(options);
}

