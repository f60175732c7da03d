/**
 * Acknowledged delivery under access control: an acknowledged subscription is authorized like a
 * plain one, and a persistent session can be resumed only by the user who created it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectReliable, BrokerError, BrokerErrorCode, type ReliableClient } from '@trellis/sdk/broker';
import { updatePasswordFile } from '@trellis/plugin-access-file/passwords';
import { startBroker, take, type Running } from './helpers.js';

const ACL = `
user alice
topic readwrite /alice/#
user bob
topic readwrite /bob/#
`;

async function withBroker(run: (r: Running, clients: ReliableClient[]) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-acked-access-'));
  await updatePasswordFile(join(dir, 'passwd'), 'alice', 'alice-pw');
  await updatePasswordFile(join(dir, 'passwd'), 'bob', 'bob-pw');
  await writeFile(join(dir, 'acl'), ACL);
  const r = await startBroker({ access: { provider: 'file', options: { passwordFile: join(dir, 'passwd'), aclFile: join(dir, 'acl') } } });
  const clients: ReliableClient[] = [];
  try {
    await run(r, clients);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await r.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

function as(r: Running, clients: ReliableClient[], username: string, clientId?: string): Promise<ReliableClient> {
  return connectReliable({ port: r.port, codec: 'json', plugins: r.host, username, password: `${username}-pw`, reconnect: false, ...(clientId ? { clientId } : {}) }).then((c) => {
    clients.push(c);
    return c;
  });
}

test('an acknowledged subscription to a topic the ACL does not let the user read is refused', async () => {
  await withBroker(async (r, clients) => {
    const bob = await as(r, clients, 'bob');
    const err = await bob.subscribe('/alice/#').then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof BrokerError && err.wireCode === BrokerErrorCode.NOT_ALLOWED, String(err));
    const alice = await as(r, clients, 'alice');
    const sub = await alice.subscribe('/alice');
    await alice.publish('/alice/x', 1, { ack: true });
    assert.equal((await take(sub, 1)).map((m) => m.value), [1]);
  });
});

test("a persistent session cannot be resumed by another user (its queued messages stay private)", async () => {
  await withBroker(async (r, clients) => {
    const alice = await as(r, clients, 'alice', 'alice-phone');
    await alice.subscribe('/alice');
    await alice.close();
    const err = await as(r, clients, 'bob', 'alice-phone').then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof BrokerError && err.wireCode === BrokerErrorCode.NOT_ALLOWED, String(err));
    assert.match((err as Error).message, /another user/);
    const again = await as(r, clients, 'alice', 'alice-phone');
    assert.equal(again.restored.map((s) => s.topic), ['/alice']);
  });
});

test.run();
