/**
 * Password files, as `mosquitto_passwd` writes them but with salted scrypt: one `user:hash`
 * line per user, the hash in PHC style `$scrypt$ln=14,r=8,p=1$<salt base64>$<key base64>`.
 * Verification is constant-time, and an unknown user costs the same scrypt as a known one so
 * timing does not tell which users exist.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFile, writeFile, rename } from 'node:fs/promises';

const scrypt = (password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> =>
  new Promise((resolve, reject) => scryptCb(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key))));

/** Cost parameters: 2^14 × 8 × 128 bytes = 16 MiB and ~50 ms per check on this class of machine. */
export const DEFAULT_COST = Object.freeze({ ln: 14, r: 8, p: 1 });
const KEY_BYTES = 32;
const SALT_BYTES = 16;
const HASH = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;
/** A user name: printable, no ':' (the separator) and no whitespace. */
const USER = /^[^\s:\x00-\x1f\x7f]{1,256}$/;

export class PasswordFileError extends Error {
  override readonly name = 'PasswordFileError';
  constructor(
    message: string,
    /** The file and 1-based line at fault, when a file was being read. */
    readonly file?: string,
    readonly line?: number,
  ) {
    super(message);
  }
}

/** A new salted scrypt hash of `password`. */
export async function hashPassword(password: string, cost = DEFAULT_COST): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await scrypt(password, salt, KEY_BYTES, { N: 2 ** cost.ln, r: cost.r, p: cost.p, maxmem: 256 * 2 ** cost.ln * cost.r });
  return `$scrypt$ln=${cost.ln},r=${cost.r},p=${cost.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Whether `password` matches `hash` (false for a malformed hash). */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const m = HASH.exec(hash);
  if (!m) return false;
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (ln < 1 || ln > 20 || r < 1 || p < 1 || r * p > 64) return false;
  const expected = Buffer.from(m[5]!, 'base64');
  if (expected.length < 16) return false;
  const key = await scrypt(password, Buffer.from(m[4]!, 'base64'), expected.length, { N: 2 ** ln, r, p, maxmem: 256 * 2 ** ln * r + 1024 * 1024 });
  return timingSafeEqual(key, expected);
}

/** A hash of nothing, checked for unknown users so they take as long as known ones. */
let decoy: Promise<string> | undefined;

/** Checks `username`/`password` against `users` (user → hash) in constant time per user. */
export async function checkUser(users: ReadonlyMap<string, string>, username: string, password: string): Promise<boolean> {
  const hash = users.get(username);
  if (hash === undefined) {
    decoy ??= hashPassword('decoy');
    await verifyPassword(password, await decoy);
    return false;
  }
  return verifyPassword(password, hash);
}

export function checkUsername(username: string): string | undefined {
  return USER.test(username) ? undefined : `user name ${JSON.stringify(username)} must be 1-256 printable characters without ":" or spaces`;
}

/** Parses a password file's text: `user:hash` lines, `#` comments and blank lines skipped. */
export function parsePasswordFile(text: string, file = 'password file'): Map<string, string> {
  const users = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fail = (what: string) => new PasswordFileError(`${file}:${i + 1}: ${what}`, file, i + 1);
    const cut = line.indexOf(':');
    if (cut <= 0) throw fail('expected "user:hash"');
    const user = line.slice(0, cut);
    const hash = line.slice(cut + 1);
    const bad = checkUsername(user);
    if (bad) throw fail(bad);
    if (!HASH.test(hash)) throw fail(`the hash of "${user}" is not a $scrypt$ hash (write it with "trellis passwd")`);
    if (users.has(user)) throw fail(`user "${user}" is listed twice`);
    users.set(user, hash);
  });
  return users;
}

export async function readPasswordFile(file: string): Promise<Map<string, string>> {
  return parsePasswordFile(await readFile(file, 'utf8'), file);
}

/** Like `readPasswordFile`, but a file that cannot be read is a `PasswordFileError` naming it. */
export async function loadPasswordFile(file: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new PasswordFileError(`password file ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, file);
  }
  return parsePasswordFile(text, file);
}

/**
 * Sets (or with `password` undefined, deletes) one user in a password file, creating it if
 * needed; written to a temporary file and renamed, readable by its owner only.
 */
export async function updatePasswordFile(file: string, username: string, password: string | undefined): Promise<'added' | 'updated' | 'deleted' | 'absent'> {
  const bad = checkUsername(username);
  if (bad) throw new PasswordFileError(bad);
  let users: Map<string, string>;
  try {
    users = await readPasswordFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    users = new Map();
  }
  let result: 'added' | 'updated' | 'deleted' | 'absent';
  if (password === undefined) {
    result = users.delete(username) ? 'deleted' : 'absent';
  } else {
    result = users.has(username) ? 'updated' : 'added';
    users.set(username, await hashPassword(password));
  }
  const text = [...users].map(([u, h]) => `${u}:${h}\n`).join('');
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, file);
  return result;
}
