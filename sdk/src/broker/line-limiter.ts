/**
 * Rate-limited log lines: at most `perSecond` lines of each kind per second; the rest are
 * counted and reported as one "suppressed" line when the next second starts, so a client that
 * provokes errors in a loop cannot flood the log (or the disk behind it).
 */
export class LineLimiter {
  readonly #perSecond: number;
  readonly #write: (line: string, level: 'warn' | 'debug') => void;
  readonly #kinds = new Map<string, { second: number; lines: number; suppressed: number }>();

  constructor(perSecond: number, write: (line: string, level: 'warn' | 'debug') => void) {
    this.#perSecond = perSecond;
    this.#write = write;
  }

  /** Writes `line` unless `kind` already had its share of lines this second. */
  line(kind: string, line: string, level: 'warn' | 'debug' = 'warn'): boolean {
    const second = Math.floor(Date.now() / 1000);
    let k = this.#kinds.get(kind);
    if (!k) this.#kinds.set(kind, (k = { second, lines: 0, suppressed: 0 }));
    if (k.second !== second) {
      this.#report(kind, k, level);
      k.second = second;
      k.lines = 0;
    }
    if (k.lines >= this.#perSecond) {
      k.suppressed++;
      return false;
    }
    k.lines++;
    this.#write(line, level);
    return true;
  }

  /** Reports what is still suppressed (on close). */
  flush(): void {
    for (const [kind, k] of this.#kinds) this.#report(kind, k, 'warn');
  }

  #report(kind: string, k: { suppressed: number }, level: 'warn' | 'debug'): void {
    if (k.suppressed === 0) return;
    this.#write(`${k.suppressed} more "${kind}" line${k.suppressed === 1 ? '' : 's'} suppressed (at most ${this.#perSecond} a second)`, level);
    k.suppressed = 0;
  }
}
