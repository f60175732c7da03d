/** Bench back-end: a keep-alive Node HTTP server answering a tiny body. `backend.ts PORT`. */
import { createServer } from 'node:http';

const port = Number(process.argv[2]);
const body = Buffer.from('hello world\n');
createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
})
  .listen(port, '127.0.0.1', () => process.stdout.write(`ready ${port}\n`))
  .keepAliveTimeout = 60_000;
