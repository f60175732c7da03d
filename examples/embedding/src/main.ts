/**
 * Runs the embedded app: starts it, sends a few requests through its balancer, reads the
 * request log back from its broker, prints what happened, and stops.
 * `npm start -w @trellis/example-embedding`
 */
import { connect } from '@trellis/sdk/broker';
import { startEmbeddedApp } from './app.js';

const app = await startEmbeddedApp();
const consumer = await connect({ port: app.brokerPort, codec: 'json', plugins: app.host, role: 'consumer' });
const log = await consumer.subscribe('/requests');
const requests = 20;
const served = new Map<string, number>();
for (let i = 0; i < requests; i++) {
  const res = await fetch(`${app.url}/hello/${i}`);
  const { service } = (await res.json()) as { service: string };
  served.set(service, (served.get(service) ?? 0) + 1);
}
let logged = 0;
for await (const _ of log) if (++logged === requests) break;
console.log(`balancer ${app.url} (strategy ${app.balancer.stats().strategy}, an in-process plugin):`);
for (const [service, n] of served) console.log(`  ${service}: ${n} of ${requests} requests`);
console.log(`broker on port ${app.brokerPort}: ${logged} request records received on /requests/…`);
await consumer.close();
await app.close();
