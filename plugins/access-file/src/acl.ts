/**
 * ACL files, in mosquitto's format: `topic [read|write|readwrite] PATTERN` lines grant the user
 * named by the `user NAME` line above them (lines before any `user` line are for anonymous
 * clients), and `pattern [read|write|readwrite] PATTERN` lines grant every authenticated user,
 * with `%u` replaced by the user's name. Patterns are MQTT filters (`+` one segment, `#` the
 * rest). "read" is subscribing, "write" is publishing (and clearing a last value). Anything not
 * granted is refused.
 */

export type Access = 'read' | 'write' | 'readwrite';

export interface Grant {
  readonly access: Access;
  readonly pattern: string;
}

export interface Acl {
  /** Grants for anonymous clients. */
  readonly anonymous: readonly Grant[];
  readonly users: ReadonlyMap<string, readonly Grant[]>;
  /** Grants for every authenticated user; `%u` in the pattern is the user name. */
  readonly patterns: readonly Grant[];
}

export class AclFileError extends Error {
  override readonly name = 'AclFileError';
  constructor(
    message: string,
    /** The file and 1-based line at fault, when a file was being read. */
    readonly file?: string,
    readonly line?: number,
  ) {
    super(message);
  }
}

function checkPattern(pattern: string): string | undefined {
  const segs = pattern.split('/');
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    if (s === '#' && i !== segs.length - 1) return '"#" may only be the last segment';
    if (s !== '#' && s !== '+' && (s.includes('#') || s.includes('+'))) return '"+" and "#" are wildcards only as a whole segment';
  }
  return undefined;
}

export function parseAcl(text: string, file = 'ACL file'): Acl {
  const anonymous: Grant[] = [];
  const users = new Map<string, Grant[]>();
  const patterns: Grant[] = [];
  let current: Grant[] = anonymous;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fail = (what: string) => new AclFileError(`${file}:${i + 1}: ${what}`, file, i + 1);
    const [keyword, ...rest] = line.split(/\s+/);
    if (keyword === 'user') {
      if (rest.length !== 1) throw fail(`expected "user NAME"`);
      const name = rest[0]!;
      if (!users.has(name)) users.set(name, []);
      current = users.get(name)!;
      return;
    }
    if (keyword !== 'topic' && keyword !== 'pattern') throw fail(`unknown keyword "${keyword}" (user, topic, pattern)`);
    let access: Access = 'readwrite';
    let pattern: string;
    if (rest.length === 2) {
      if (rest[0] !== 'read' && rest[0] !== 'write' && rest[0] !== 'readwrite') throw fail(`access must be read, write or readwrite, got "${rest[0]}"`);
      access = rest[0];
      pattern = rest[1]!;
    } else if (rest.length === 1) {
      pattern = rest[0]!;
    } else {
      throw fail(`expected "${keyword} [read|write|readwrite] PATTERN"`);
    }
    const bad = checkPattern(pattern);
    if (bad) throw fail(`pattern "${pattern}": ${bad}`);
    (keyword === 'pattern' ? patterns : current).push(Object.freeze({ access, pattern }));
  });
  return Object.freeze({ anonymous, users, patterns });
}

/** Grants in an ACL (its topic and pattern lines). */
export function countRules(acl: Acl): number {
  let n = acl.anonymous.length + acl.patterns.length;
  for (const grants of acl.users.values()) n += grants.length;
  return n;
}

/** Whether MQTT filter `pattern` matches topic `topic` (no wildcard in the topic). */
export function patternMatches(pattern: string, topic: string): boolean {
  return covers(pattern, topic);
}

/** Whether every topic `filter` can match is matched by `pattern` (both MQTT filters). */
export function covers(pattern: string, filter: string): boolean {
  const p = pattern.split('/');
  const f = filter.split('/');
  for (let i = 0; i < p.length; i++) {
    const ps = p[i]!;
    if (ps === '#') return true;
    if (i >= f.length) return false;
    const fs = f[i]!;
    if (fs === '#') return false;
    if (ps === '+') continue;
    if (ps !== fs) return false;
  }
  return p.length === f.length;
}

/**
 * Whether `user` (undefined = anonymous) may `action` on `topic`: publish checks a topic,
 * subscribe an MQTT filter (the broker turns `/a` into `/a/#` and `/` into `#` first).
 */
export function allowed(acl: Acl, user: string | undefined, action: 'publish' | 'subscribe', topic: string): boolean {
  const need = action === 'publish' ? 'write' : 'read';
  const ok = (g: Grant, pattern: string) => (g.access === 'readwrite' || g.access === need) && covers(pattern, topic);
  if (user === undefined) return acl.anonymous.some((g) => ok(g, g.pattern));
  if ((acl.users.get(user) ?? []).some((g) => ok(g, g.pattern))) return true;
  return acl.patterns.some((g) => ok(g, g.pattern.split('%u').join(user)));
}
