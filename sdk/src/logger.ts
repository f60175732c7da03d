/** A minimal levelled logger. Hosts and plugins get one each, prefixed with their name. */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export interface Logger {
  debug(message: string, ...details: unknown[]): void;
  info(message: string, ...details: unknown[]): void;
  warn(message: string, ...details: unknown[]): void;
  error(message: string, ...details: unknown[]): void;
  /** A logger whose lines carry `scope` after this one's. */
  child(scope: string): Logger;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

export type LogSink = (level: Exclude<LogLevel, 'silent'>, scope: string, message: string, details: unknown[]) => void;

const stderrSink: LogSink = (level, scope, message, details) => {
  const extra = details.map((d) => (d instanceof Error ? d.message : typeof d === 'string' ? d : JSON.stringify(d))).join(' ');
  process.stderr.write(`[${scope}] ${level}: ${message}${extra ? ' ' + extra : ''}\n`);
};

/** Creates a logger that drops lines below `level` and hands the rest to `sink` (stderr by default). */
export function createLogger(scope = 'trellis', level: LogLevel = (process.env.TRELLIS_LOG as LogLevel) || 'warn', sink: LogSink = stderrSink): Logger {
  const min = ORDER[level] ?? ORDER.warn;
  const emit = (lvl: Exclude<LogLevel, 'silent'>) => (message: string, ...details: unknown[]) => {
    if (ORDER[lvl] >= min) sink(lvl, scope, message, details);
  };
  return Object.freeze({
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (sub: string) => createLogger(`${scope}:${sub}`, level, sink),
  });
}
