/** Bench peer: a minimal `net` pipe proxy, round robin per connection. */
import { createServer, connect } from 'node:net';

const [port, ...backends] = process.argv.slice(2);
let next = 0;
createServer((client) => {
  const p = Number(backends[next]);
  next = (next + 1) % backends.length;
  const upstream = connect(p, '127.0.0.1');
  client.pipe(upstream).pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
}).listen(Number(port), '127.0.0.1', () => process.stdout.write(`ready ${port}\n`));
