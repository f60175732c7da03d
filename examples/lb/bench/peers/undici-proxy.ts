/** Bench peer: a minimal proxy on node:http + one undici Pool per back-end, round robin. */
import { createServer } from 'node:http';
import { Pool } from 'undici';

const [port, ...backends] = process.argv.slice(2);
const pools = backends.map((p) => new Pool(`http://127.0.0.1:${p}`, { connections: 128 }));
let next = 0;
createServer((req, res) => {
  const pool = pools[next]!;
  next = (next + 1) % pools.length;
  pool.request({ path: req.url!, method: req.method as 'GET', headers: req.headers as Record<string, string>, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }).then(
    (r) => {
      const headers = { ...r.headers };
      delete headers.connection;
      delete headers['keep-alive'];
      delete headers['transfer-encoding'];
      res.writeHead(r.statusCode, headers);
      r.body.pipe(res);
    },
    () => {
      res.writeHead(502);
      res.end();
    },
  );
})
  .listen(Number(port), '127.0.0.1', () => process.stdout.write(`ready ${port}\n`))
  .keepAliveTimeout = 60_000;
