/**
 * The access-file plugin: contributes the `file` access provider. Options: `passwordFile`
 * (users and salted scrypt hashes, see `passwords.ts`), `aclFile` (per-user topic patterns, see
 * `acl.ts`; without it every authenticated user may do everything), `allowAnonymous` (clients
 * without credentials are refused unless true; the ACL's lines before any `user` say what they
 * may do).
 */
import { readFile } from 'node:fs/promises';
import type { PluginContext, AccessProvider, AccessInit, AccessIdentity } from '@trellis/sdk';
import { readPasswordFile, checkUser } from './passwords.js';
import { parseAcl, allowed, type Acl } from './acl.js';

export async function createFileAccess({ options }: AccessInit): Promise<AccessProvider> {
  const passwordFile = options.passwordFile;
  const aclFile = options.aclFile;
  const allowAnonymous = options.allowAnonymous === true;
  if (passwordFile !== undefined && typeof passwordFile !== 'string') throw new TypeError('option passwordFile must be a file path');
  if (aclFile !== undefined && typeof aclFile !== 'string') throw new TypeError('option aclFile must be a file path');
  if (passwordFile === undefined && !allowAnonymous) throw new TypeError('the file access provider needs passwordFile, or allowAnonymous: true');
  const users = passwordFile !== undefined ? await readPasswordFile(passwordFile) : new Map<string, string>();
  const acl: Acl | undefined = aclFile !== undefined ? parseAcl(await readFile(aclFile, 'utf8'), aclFile) : undefined;
  return {
    async authenticate({ username, password }): Promise<AccessIdentity | undefined> {
      if (username === undefined || username === '') return allowAnonymous ? { username: undefined } : undefined;
      return (await checkUser(users, username, password ?? '')) ? { username } : undefined;
    },
    authorize(identity, action, topic) {
      if (!acl) return true; // no ACL file: every admitted client may do everything
      return allowed(acl, identity.username, action, topic);
    },
  };
}

export function activate(ctx: PluginContext): void {
  ctx.subscriptions.push(ctx.access.registerAccess('file', createFileAccess));
}
