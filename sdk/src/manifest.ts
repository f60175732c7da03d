/**
 * Plugin manifests: a plugin folder's package.json, read and validated without running any
 * plugin code. Every problem is a `ManifestError` naming the file and the field.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import semver from 'semver';
import { ManifestError, EngineMismatchError } from './errors.js';
import { SDK_VERSION } from './version.js';

/** A strategy a plugin contributes to the routing area. */
export interface StrategyContribution {
  readonly id: string;
  readonly title: string;
  readonly description?: string;
}

/** A codec a plugin contributes to the serialization area; `wireId` is its number on the wire. */
export interface SerializerContribution {
  readonly id: string;
  readonly title: string;
  readonly wireId: number;
  readonly description?: string;
}

/** A DHT routing policy a plugin contributes. */
export interface DhtRoutingContribution {
  readonly id: string;
  readonly title: string;
  readonly description?: string;
}

/** An access provider (authenticate + authorize) a plugin contributes. */
export interface AccessContribution {
  readonly id: string;
  readonly title: string;
  readonly description?: string;
}

export interface Contributions {
  readonly strategies: readonly StrategyContribution[];
  readonly serializers: readonly SerializerContribution[];
  readonly dhtRouting: readonly DhtRoutingContribution[];
  readonly access: readonly AccessContribution[];
}

/** The validated manifest. `activationEvents` already includes the events contributions imply. */
export interface PluginManifest {
  /** The plugin id: the package name. */
  readonly name: string;
  readonly version: string;
  readonly description?: string;
  /** Entry module, relative to the plugin folder (absent for in-process plugins). */
  readonly main?: string;
  /** The semver range of SDK versions the plugin works with. */
  readonly engines: { readonly trellis: string };
  readonly activationEvents: readonly string[];
  readonly contributes: Contributions;
  /** Ids of plugins that must be active before this one. */
  readonly pluginDependencies: readonly string[];
}

/** The manifest fields a caller writes by hand, for in-process plugins. */
export interface ManifestInput {
  name: string;
  version: string;
  description?: string;
  main?: string;
  engines?: { trellis?: string };
  activationEvents?: string[];
  contributes?: {
    strategies?: StrategyContribution[];
    serializers?: SerializerContribution[];
    dhtRouting?: DhtRoutingContribution[];
    access?: AccessContribution[];
  };
  pluginDependencies?: string[];
}

const ID = /^[a-z0-9][a-z0-9._-]*$/i;
const PACKAGE_NAME = /^(@[a-z0-9][a-z0-9._-]*\/)?[a-z0-9][a-z0-9._-]*$/;
const EVENT = /^(\*|onStartup|(onStrategy|onSerializer|onDhtRouting|onAccess):[^\s:]+)$/;

/** The activation event a contribution implies, as VS Code 1.74+ infers them. */
export const activationEvent = {
  strategy: (id: string) => `onStrategy:${id}`,
  serializer: (id: string) => `onSerializer:${id}`,
  dhtRouting: (id: string) => `onDhtRouting:${id}`,
  access: (id: string) => `onAccess:${id}`,
} as const;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Validates a parsed manifest. `file` names the source in error messages. Throws
 * `ManifestError` for a malformed manifest and `EngineMismatchError` when the plugin's
 * `engines.trellis` range excludes `sdkVersion`.
 */
export function validateManifest(raw: unknown, file: string, sdkVersion: string = SDK_VERSION): PluginManifest {
  if (!isObject(raw)) throw new ManifestError(file, '(root)', 'must be a JSON object');

  const str = (field: string, value: unknown, required: boolean): string | undefined => {
    if (value === undefined && !required) return undefined;
    if (typeof value !== 'string' || value.trim() === '') {
      throw new ManifestError(file, field, required ? 'is required and must be a non-empty string' : 'must be a non-empty string');
    }
    return value;
  };

  const name = str('name', raw.name, true)!;
  if (!PACKAGE_NAME.test(name)) throw new ManifestError(file, 'name', `"${name}" is not a valid package name`);
  const version = str('version', raw.version, true)!;
  if (!semver.valid(version)) throw new ManifestError(file, 'version', `"${version}" is not a semver version`);
  const description = str('description', raw.description, false);
  const main = str('main', raw.main, false);

  if (!isObject(raw.engines)) throw new ManifestError(file, 'engines.trellis', 'is required: the range of Trellis SDK versions the plugin supports, e.g. "^0.1.0"');
  const range = str('engines.trellis', raw.engines.trellis, true)!;
  if (semver.validRange(range) === null) throw new ManifestError(file, 'engines.trellis', `"${range}" is not a semver range`);

  const contributesRaw = raw.contributes ?? {};
  if (!isObject(contributesRaw)) throw new ManifestError(file, 'contributes', 'must be an object');
  const allowed = new Set(['strategies', 'serializers', 'dhtRouting', 'access']);
  for (const key of Object.keys(contributesRaw)) {
    if (!allowed.has(key)) throw new ManifestError(file, `contributes.${key}`, 'is not a contribution point (use strategies, serializers, dhtRouting or access)');
  }

  const list = <T>(key: string, check: (item: Record<string, unknown>, field: string) => T): T[] => {
    const value = contributesRaw[key];
    if (value === undefined) return [];
    if (!Array.isArray(value)) throw new ManifestError(file, `contributes.${key}`, 'must be an array');
    const seen = new Set<string>();
    return value.map((item, i) => {
      const field = `contributes.${key}[${i}]`;
      if (!isObject(item)) throw new ManifestError(file, field, 'must be an object');
      const id = str(`${field}.id`, item.id, true)!;
      if (!ID.test(id)) throw new ManifestError(file, `${field}.id`, `"${id}" may only hold letters, digits, ".", "_" and "-"`);
      if (seen.has(id)) throw new ManifestError(file, `${field}.id`, `"${id}" is declared twice`);
      seen.add(id);
      str(`${field}.title`, item.title, true);
      str(`${field}.description`, item.description, false);
      return check(item, field);
    });
  };

  const base = (item: Record<string, unknown>) => ({
    id: item.id as string,
    title: item.title as string,
    ...(item.description !== undefined ? { description: item.description as string } : {}),
  });

  const strategies = list('strategies', (item) => Object.freeze(base(item)));
  const serializers = list('serializers', (item, field) => {
    const wireId = item.wireId;
    if (typeof wireId !== 'number' || !Number.isInteger(wireId) || wireId < 0 || wireId > 255) {
      throw new ManifestError(file, `${field}.wireId`, 'is required: an integer 0..255 (0 = JSON, 1 = XML, 2 = Pickle)');
    }
    return Object.freeze({ ...base(item), wireId });
  });
  const wireIds = new Set<number>();
  serializers.forEach((s, i) => {
    if (wireIds.has(s.wireId)) throw new ManifestError(file, `contributes.serializers[${i}].wireId`, `${s.wireId} is declared twice`);
    wireIds.add(s.wireId);
  });
  const dhtRouting = list('dhtRouting', (item) => Object.freeze(base(item)));
  const access = list('access', (item) => Object.freeze(base(item)));

  const events = raw.activationEvents ?? [];
  if (!Array.isArray(events)) throw new ManifestError(file, 'activationEvents', 'must be an array of strings');
  const activationEvents = new Set<string>();
  events.forEach((event, i) => {
    if (typeof event !== 'string' || !EVENT.test(event)) {
      throw new ManifestError(file, `activationEvents[${i}]`, `"${String(event)}" is not an activation event (onStrategy:<id>, onSerializer:<id>, onDhtRouting:<id>, onStartup or *)`);
    }
    activationEvents.add(event);
  });
  for (const s of strategies) activationEvents.add(activationEvent.strategy(s.id));
  for (const s of serializers) activationEvents.add(activationEvent.serializer(s.id));
  for (const d of dhtRouting) activationEvents.add(activationEvent.dhtRouting(d.id));
  for (const a of access) activationEvents.add(activationEvent.access(a.id));

  const depsRaw = raw.pluginDependencies ?? [];
  if (!Array.isArray(depsRaw)) throw new ManifestError(file, 'pluginDependencies', 'must be an array of plugin names');
  const pluginDependencies = depsRaw.map((dep, i) => {
    if (typeof dep !== 'string' || !PACKAGE_NAME.test(dep)) {
      throw new ManifestError(file, `pluginDependencies[${i}]`, `"${String(dep)}" is not a plugin name`);
    }
    if (dep === name) throw new ManifestError(file, `pluginDependencies[${i}]`, 'a plugin cannot depend on itself');
    return dep;
  });

  if (!semver.satisfies(sdkVersion, range, { includePrerelease: true })) {
    throw new EngineMismatchError(name, range, sdkVersion);
  }

  return Object.freeze({
    name,
    version,
    ...(description !== undefined ? { description } : {}),
    ...(main !== undefined ? { main } : {}),
    engines: Object.freeze({ trellis: range }),
    activationEvents: Object.freeze([...activationEvents]),
    contributes: Object.freeze({
      strategies: Object.freeze(strategies),
      serializers: Object.freeze(serializers),
      dhtRouting: Object.freeze(dhtRouting),
      access: Object.freeze(access),
    }),
    pluginDependencies: Object.freeze(pluginDependencies),
  });
}

/** Reads and validates `<dir>/package.json`. A plugin folder must also name its `main`. */
export async function readManifest(dir: string, sdkVersion: string = SDK_VERSION): Promise<PluginManifest> {
  const file = join(dir, 'package.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ManifestError(file, '(file)', `cannot be read: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ManifestError(file, '(file)', `is not valid JSON: ${(err as Error).message}`);
  }
  const manifest = validateManifest(raw, file, sdkVersion);
  if (manifest.main === undefined) throw new ManifestError(file, 'main', 'is required: the module that exports activate()');
  return manifest;
}
