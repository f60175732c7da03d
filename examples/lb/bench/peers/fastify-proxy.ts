/** Bench peer: @fastify/http-proxy (undici under reply-from), round robin via getUpstream. */
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';

const [port, ...backends] = process.argv.slice(2);
const targets = backends.map((p) => `http://127.0.0.1:${p}`);
let next = 0;
const app = Fastify({ logger: false, keepAliveTimeout: 60_000 });
await app.register(proxy, {
  upstream: targets[0]!,
  replyOptions: {
    getUpstream: () => {
      const t = targets[next]!;
      next = (next + 1) % targets.length;
      return t;
    },
  },
});
await app.listen({ port: Number(port), host: '127.0.0.1' });
process.stdout.write(`ready ${port}\n`);
