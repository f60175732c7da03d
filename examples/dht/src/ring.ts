/**
 * Starting several UDP Chord nodes in one process, like the original `DHT.py`: the first node
 * starts the ring and every other node joins through it, one at a time.
 */
import { join } from 'node:path';
import { createHost, InvalidArgumentError, type PluginHost } from '@trellis/sdk';
import { createUdpNode, type ChordNode, type UdpNodeOptions } from '@trellis/sdk/dht';

export interface RingOptions extends UdpNodeOptions {
  ports: readonly number[];
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  pluginHost?: PluginHost;
  /** Keep each node's keys in DATA_DIR/<port> (LMDB); ports must then be given, not 0. */
  dataDir?: string;
}

export interface Ring {
  readonly nodes: ChordNode[];
  readonly pluginHost: PluginHost;
  /** Starts one more node on `port` and joins it through the first node. */
  add(port: number): Promise<ChordNode>;
  close(): Promise<void>;
}

export async function startRing(options: RingOptions): Promise<Ring> {
  const { ports, host = '127.0.0.1', pluginHost: given, dataDir, ...nodeOptions } = options;
  const pluginHost = given ?? createHost();
  const nodes: ChordNode[] = [];
  const add = async (port: number) => {
    if (dataDir !== undefined && port === 0) throw new InvalidArgumentError('a ring with a data directory needs fixed ports');
    // the native LMDB module loads only when a data directory is asked for
    const persistence = dataDir === undefined ? undefined : (await import('./lmdb-store.js')).openLmdbPersistence(join(dataDir, String(port)), await pluginHost.serialization.codec('pickle'));
    let node = await createUdpNode(pluginHost, { ...nodeOptions, persistence });
    await node.listen(port, host);
    // an id is the hash of the address: with few bits (10 by default) an ephemeral port can land
    // on an id the ring already has, which a join rightly refuses; take another port instead
    for (let attempt = 0; port === 0 && attempt < 20 && nodes.some((n) => n.self.id === node.self.id); attempt++) {
      await node.close({ graceful: false });
      node = await createUdpNode(pluginHost, { ...nodeOptions, persistence });
      await node.listen(0, host);
    }
    nodes.push(node);
    if (nodes.length > 1) await node.join(nodes[0]!.address);
    return node;
  };
  const ring: Ring = {
    nodes,
    pluginHost,
    add,
    async close() {
      await Promise.all(nodes.map((n) => n.close({ graceful: false })));
      if (!given) await pluginHost.dispose();
    },
  };
  try {
    for (const port of ports) await add(port);
  } catch (err) {
    await ring.close();
    throw err;
  }
  return ring;
}
