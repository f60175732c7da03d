/** Bench peer: http-proxy with a keep-alive agent, round robin over the back-ends. */
import { createServer, Agent } from 'node:http';
import httpProxy from 'http-proxy';

const [port, ...backends] = process.argv.slice(2);
const agent = new Agent({ keepAlive: true, maxSockets: 128 });
const proxy = httpProxy.createProxyServer({ agent });
const targets = backends.map((p) => `http://127.0.0.1:${p}`);
let next = 0;
proxy.on('error', (_err, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502);
  res.end();
});
createServer((req, res) => {
  const target = targets[next]!;
  next = (next + 1) % targets.length;
  proxy.web(req, res, { target });
})
  .listen(Number(port), '127.0.0.1', () => process.stdout.write(`ready ${port}\n`))
  .keepAliveTimeout = 60_000;
