/**
 * `--data-dir`: a node's keys in an embedded LMDB store, so a restarted node comes back with them.
 *
 * LMDB (the `lmdb` package, prebuilt binaries in the npm registry) because its reads and its
 * `putSync` are synchronous, which fits the engine's synchronous key store: every change is
 * committed before the node acknowledges it, and nothing in the engine had to become async.
 * Records are `sha256(key) → pickle([key, value, version])`, so keys of any length fit LMDB's
 * key limit and values keep the wire's data model exactly.
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open } from 'lmdb';
import type { Codec, Value } from '@trellis/sdk';
import type { DhtPersistence } from '@trellis/sdk/dht';

export function openLmdbPersistence(dir: string, codec: Codec): DhtPersistence {
  mkdirSync(dir, { recursive: true });
  const db = open<Buffer, string>({ path: dir, encoding: 'binary', compression: false });
  const id = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');
  return {
    *load() {
      for (const { value } of db.getRange()) {
        const [key, v, version] = codec.decode(value) as [string, Value, number];
        yield [key, v, version] as const;
      }
    },
    save(key, value, version) {
      db.putSync(id(key), Buffer.from(codec.encode([key, value, version])));
    },
    async close() {
      await db.close();
    },
  };
}
