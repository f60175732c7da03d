/**
 * The command-line toolkit every `trellis` command is built with, so parsing, `--help` and errors
 * look the same everywhere: typed options on top of `node:util` parseArgs, generated help, and a
 * one-line error with a non-zero exit for a bad flag.
 */
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import { TrellisError, ErrorCodes } from '../errors.js';
import { createHost, type PluginHost, type PluginHostOptions } from '../plugin-host.js';

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly multiple?: boolean;
  readonly default?: string | boolean | string[];
  readonly description: string;
  /** Shown in help: `--port <port>`. */
  readonly placeholder?: string;
}

export type OptionsSpec = Readonly<Record<string, OptionSpec>>;

type ValueOf<S extends OptionSpec> = S['type'] extends 'boolean'
  ? S['multiple'] extends true ? boolean[] : boolean
  : S['multiple'] extends true ? string[] : string;

/** Parsed option values; options without a default may be undefined. */
export type OptionValues<O extends OptionsSpec> = { [K in keyof O]: O[K] extends { default: unknown } ? ValueOf<O[K]> : ValueOf<O[K]> | undefined };

export interface CommandIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** Aborted on SIGINT/SIGTERM: long-running commands stop cleanly when it fires. */
  readonly signal: AbortSignal;
}

export interface Command<O extends OptionsSpec = OptionsSpec> {
  readonly name: string;
  readonly summary: string;
  /** Extra usage text after the name, e.g. `[--join HOST:PORT]`; generated from options if absent. */
  readonly usage?: string;
  readonly description?: string;
  readonly options: O;
  /** Names of positionals for help; undefined means positionals are rejected. */
  readonly positionals?: string;
  readonly examples?: readonly string[];
  /** Returns the exit code (0 when omitted). */
  run(args: { values: OptionValues<O>; positionals: string[] }, io: CommandIO): Promise<number | void> | number | void;
}

/** A command that only groups others (`trellis dht node|ring|put…`). */
export interface CommandGroup {
  readonly name: string;
  readonly summary: string;
  readonly subcommands: Readonly<Record<string, () => Promise<Command<any> | CommandGroup>>>;
}

export function defineCommand<const O extends OptionsSpec>(command: Command<O>): Command<O> {
  return command;
}

export function defineGroup(group: CommandGroup): CommandGroup {
  return group;
}

/** A bad flag, a missing value, a wrong number: printed as one line, exit code 2. */
export class UsageError extends TrellisError {
  static override readonly brand = Symbol.for('trellis.error.UsageError');
  override readonly name: string = 'UsageError';
  constructor(message: string) {
    super(ErrorCodes.USAGE, message);
  }
}

function isGroup(c: Command<any> | CommandGroup): c is CommandGroup {
  return 'subcommands' in c;
}

const HELP: OptionSpec = { type: 'boolean', short: 'h', description: 'show this help' };

export function formatHelp(path: string, command: Command<any>, subcommands?: readonly (readonly [string, string])[]): string;
export function formatHelp(path: string, command: CommandGroup, subcommands: readonly (readonly [string, string])[]): string;
export function formatHelp(path: string, command: Command<any> | CommandGroup, subcommands: readonly (readonly [string, string])[] = []): string {
  const lines: string[] = [];
  if (isGroup(command)) {
    lines.push(`${command.summary}`, '', `Usage: ${path} <command> [options]`, '', 'Commands:');
    const width = Math.max(...subcommands.map(([n]) => n.length));
    for (const [name, summary] of subcommands) lines.push(`  ${name.padEnd(width)}  ${summary}`);
    lines.push('', `Run "${path} <command> --help" for a command's options.`);
    return lines.join('\n') + '\n';
  }
  lines.push(command.summary, '');
  const pos = command.positionals ? ` ${command.positionals}` : '';
  lines.push(`Usage: ${path}${command.usage ? ' ' + command.usage : ' [options]'}${pos}`);
  if (command.description) lines.push('', command.description);
  const opts: [string, OptionSpec][] = Object.entries({ ...(command.options as OptionsSpec), help: HELP });
  const labels = opts.map(([name, o]) => {
    const short = o.short ? `-${o.short}, ` : '    ';
    const value = o.type === 'string' ? ` <${o.placeholder ?? name}>` : '';
    return `${short}--${name}${value}`;
  });
  const width = Math.max(...labels.map((l) => l.length));
  lines.push('', 'Options:');
  opts.forEach(([, o], i) => {
    const def = o.default !== undefined && o.default !== false && !(Array.isArray(o.default) && o.default.length === 0) ? ` (default: ${Array.isArray(o.default) ? o.default.join(', ') : String(o.default)})` : '';
    const rep = o.multiple ? ' (repeatable)' : '';
    lines.push(`  ${labels[i]!.padEnd(width)}  ${o.description}${def}${rep}`);
  });
  if (command.examples?.length) {
    lines.push('', 'Examples:');
    for (const e of command.examples) lines.push(`  ${e}`);
  }
  return lines.join('\n') + '\n';
}

function parse<O extends OptionsSpec>(path: string, command: Command<O>, argv: string[]) {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string | boolean | string[] }> = {};
  for (const [name, o] of Object.entries({ ...(command.options as OptionsSpec), help: HELP })) {
    options[name] = {
      type: o.type,
      ...(o.short ? { short: o.short } : {}),
      ...(o.multiple ? { multiple: true } : {}),
      ...(o.default !== undefined ? { default: o.default } : {}),
    };
  }
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    if (!command.positionals && positionals.length > 0 && !values.help) {
      throw new UsageError(`unexpected argument "${positionals[0]}"`);
    }
    return { values: values as OptionValues<O> & { help?: boolean }, positionals };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const message = (err as Error).message
      .replace(/\. To specify a positional argument.*$/s, '')
      .replace(/^Unknown option '(.+?)'.*$/s, "unknown option '$1'");
    throw new UsageError(message);
  }
}

/** Helpers for option values that must be numbers or addresses. */
export function intOption(name: string, value: string | undefined, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value)) throw new UsageError(`--${name} must be a whole number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function portOption(name: string, value: string | undefined): number | undefined {
  return intOption(name, value, { min: 0, max: 65535 });
}

/** Parses `HOST:PORT` (or a bare `PORT`, meaning 127.0.0.1). IPv6 hosts go in brackets. */
export function addressOption(name: string, value: string, defaultHost = '127.0.0.1'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value);
  if (!m) throw new UsageError(`--${name} must be HOST:PORT, got "${value}"`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new UsageError(`--${name} port must be 1..65535, got ${port}`);
  return { host: m[1] || m[2] || defaultHost, port };
}

/**
 * Runs `argv` against a command table. Prints help for `--help`, one line and exit 2 for bad
 * usage, one line and exit 1 for a Trellis error, and the stack for anything unexpected.
 */
export async function runCommand(
  path: string,
  entry: Command<any> | CommandGroup,
  argv: string[],
  io: CommandIO,
): Promise<number> {
  try {
    if (isGroup(entry)) {
      const [sub, ...rest] = argv;
      if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
        // subcommands are lazy imports of small modules: loading them for help is cheap
        const subs = await Promise.all(Object.entries(entry.subcommands).map(async ([name, load]) => [name, (await load()).summary] as const));
        io.stdout.write(formatHelp(path, entry, subs));
        return sub === undefined ? 2 : 0;
      }
      const load = entry.subcommands[sub];
      if (!load) throw new UsageError(`unknown command "${sub}"; expected one of: ${Object.keys(entry.subcommands).join(', ')}`);
      return await runCommand(`${path} ${sub}`, await load(), rest, io);
    }
    const { values, positionals } = parse(path, entry, argv);
    if ((values as { help?: boolean }).help) {
      io.stdout.write(formatHelp(path, entry));
      return 0;
    }
    const code = await entry.run({ values, positionals }, io);
    return typeof code === 'number' ? code : 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`${path}: ${err.message} (see "${path} --help")\n`);
      return 2;
    }
    if (err instanceof TrellisError) {
      const hint = cliAdvice(err);
      io.stderr.write(`${path}: ${err.message} [${err.code}]${hint ? `; ${hint}` : ''}\n`);
      return 1;
    }
    // operating-system errors (EADDRINUSE, ECONNREFUSED, ENOENT…) are the user's to fix: one line
    if (err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string') {
      io.stderr.write(`${path}: ${err.message}\n`);
      return 1;
    }
    io.stderr.write(`${path}: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}

/**
 * The command-line advice for a library error: the SDK says what was wrong in its own terms, the
 * CLI says what to type.
 */
export function cliAdvice(err: TrellisError): string | undefined {
  switch (err.code) {
    case ErrorCodes.PLUGIN_NOT_FOUND:
      return 'run "trellis plugins" to list the installed plugins; --plugin-dir DIR adds a folder';
    case ErrorCodes.NO_PROVIDER:
      return 'install a plugin package that contributes it, or give its folder with --plugin-dir DIR';
    case ErrorCodes.NO_BACKEND:
      return 'give back-ends with --backend HOST:PORT';
    case ErrorCodes.ACTIVATION:
      return /does not exist/.test(err.message) ? 'build the plugin (npm run build in its folder) or fix its "main"' : undefined;
    default:
      return undefined;
  }
}

/** An AbortSignal that fires on SIGINT or SIGTERM (a second signal exits at once). */
export function shutdownSignal(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(sig === 'SIGINT' ? 130 : 143);
    controller.abort(new Error(`received ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller.signal;
}

/** Resolves when `signal` aborts (for commands that serve until stopped). */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** The `--plugin-dir` flag every host command takes: repeatable; a missing folder is an error. */
export const pluginDirOption = {
  type: 'string',
  multiple: true,
  description: 'load plugins from this folder: one plugin folder or a folder of them (repeatable)',
  placeholder: 'dir',
} as const satisfies OptionSpec;

/**
 * The plugin host of a command-line host. It discovers the plugin packages of the app in the
 * current folder (its package.json) and of the package that ships the command (`moduleUrl` is
 * the command module's `import.meta.url`: its package depends on the shipped plugins), and loads
 * each `--plugin-dir` folder. Throws `TRELLIS_ERR_PLUGIN_NOT_FOUND` for a missing folder.
 */
export function createCommandHost(moduleUrl: string | URL, pluginDirs: readonly string[] | undefined, options: PluginHostOptions = {}): PluginHost {
  return createHost({ appRoot: [process.cwd(), dirname(fileURLToPath(moduleUrl))], dirs: pluginDirs ?? [], ...options });
}

