/**
 * Starting several UDP Chord nodes in one process, like the original `DHT.py`: the first node
 * starts the ring and every other node joins through it, one at a time.
 */
import { createHost, type PluginHost } from '@trellis/sdk';
import { createUdpNode, type ChordNode, type UdpNodeOptions } from '@trellis/sdk/dht';

export interface RingOptions extends UdpNodeOptions {
  ports: readonly number[];
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  pluginHost?: PluginHost;
}

export interface Ring {
  readonly nodes: ChordNode[];
  readonly pluginHost: PluginHost;
  /** Starts one more node on `port` and joins it through the first node. */
  add(port: number): Promise<ChordNode>;
  close(): Promise<void>;
}

export async function startRing(options: RingOptions): Promise<Ring> {
  const { ports, host = '127.0.0.1', pluginHost: given, ...nodeOptions } = options;
  const pluginHost = given ?? createHost();
  const nodes: ChordNode[] = [];
  const add = async (port: number) => {
    const node = await createUdpNode(pluginHost, nodeOptions);
    await node.listen(port, host);
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
