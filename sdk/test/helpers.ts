/** Shared test helpers for the SDK suite. */
import { fileURLToPath } from 'node:url';
import { createLogger, type Logger } from '@trellis/sdk';

export const FIXTURES = fileURLToPath(new URL('./fixtures/plugins', import.meta.url));

/** A logger that records lines instead of printing them. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger('test', 'debug', (level, scope, message) => lines.push(`${level} ${scope} ${message}`));
  return { ...logger, lines };
}

export const backends = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ id: `127.0.0.1:${5000 + i}`, host: '127.0.0.1', port: 5000 + i }));
