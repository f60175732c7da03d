/**
 * The access-file plugin: contributes the `file` access provider. Options: `passwordFile`
 * (users and salted scrypt hashes, see `passwords.ts`), `aclFile` (per-user topic patterns, see
 * `acl.ts`; without it every authenticated user may do everything), `allowAnonymous` (clients
 * without credentials are refused unless true; the ACL's lines before any `user` say what they
 * may do). `reload()` reads both files again and swaps them in together, or changes nothing.
 */
import { readFile } from 'node:fs/promises';
import type { PluginContext, AccessProvider, AccessInit, AccessIdentity, AccessReloaded } from '@trellis/sdk';
import { loadPasswordFile, checkUser } from './passwords.js';
import { parseAcl, allowed, countRules, AclFileError, type Acl } from './acl.js';

/** Everything the provider decides from, read and checked as a whole before it is used. */
interface Rules {
  readonly users: ReadonlyMap<string, string>;
  readonly acl: Acl | undefined;
  readonly allowAnonymous: boolean;
}

async function loadRules(options: Readonly<Record<string, unknown>>): Promise<Rules> {
  const passwordFile = options.passwordFile;
  const aclFile = options.aclFile;
  const allowAnonymous = options.allowAnonymous === true;
  if (passwordFile !== undefined && typeof passwordFile !== 'string') throw new TypeError('option passwordFile must be a file path');
  if (aclFile !== undefined && typeof aclFile !== 'string') throw new TypeError('option aclFile must be a file path');
  if (passwordFile === undefined && !allowAnonymous) throw new TypeError('the file access provider needs passwordFile, or allowAnonymous: true');
  const users = passwordFile !== undefined ? await loadPasswordFile(passwordFile) : new Map<string, string>();
  let acl: Acl | undefined;
  if (aclFile !== undefined) {
    let text: string;
    try {
      text = await readFile(aclFile, 'utf8');
    } catch (err) {
      throw new AclFileError(`ACL file ${aclFile} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, aclFile);
    }
    acl = parseAcl(text, aclFile);
  }
  return { users, acl, allowAnonymous };
}

export async function createFileAccess({ options }: AccessInit): Promise<AccessProvider> {
  let rules = await loadRules(options);
  /** The hash each authenticated identity logged in with: a reload that changes it revokes the identity. */
  const loggedInWith = new WeakMap<AccessIdentity, string>();
  return {
    async authenticate({ username, password }): Promise<AccessIdentity | undefined> {
      if (username === undefined || username === '') return rules.allowAnonymous ? { username: undefined } : undefined;
      // a reload may swap the users while scrypt runs: the answer holds for the hash in force when it returns
      for (let attempt = 0; attempt < 3; attempt++) {
        const hash = rules.users.get(username);
        const ok = await checkUser(rules.users, username, password ?? '');
        if (rules.users.get(username) !== hash) continue;
        if (!ok || hash === undefined) return undefined;
        const identity: AccessIdentity = { username };
        loggedInWith.set(identity, hash);
        return identity;
      }
      return undefined;
    },
    authorize(identity, action, topic) {
      const acl = rules.acl;
      if (!acl) return true; // no ACL file: every admitted client may do everything
      return allowed(acl, identity.username, action, topic);
    },
    async reload(next): Promise<AccessReloaded> {
      const loaded = await loadRules(next ?? options); // throws before anything changes
      rules = loaded;
      if (next !== undefined) options = next;
      // without an ACL file there are no rules to count: every admitted client may do everything
      return { users: loaded.users.size, ...(loaded.acl ? { rules: countRules(loaded.acl) } : {}) };
    },
    admits(identity) {
      if (identity.username === undefined) return rules.allowAnonymous;
      const hash = rules.users.get(identity.username);
      return hash !== undefined && hash === loggedInWith.get(identity);
    },
  };
}

export function activate(ctx: PluginContext): void {
  ctx.subscriptions.push(ctx.access.registerAccess('file', createFileAccess));
}
