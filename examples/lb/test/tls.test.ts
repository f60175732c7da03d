import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, Agent } from 'node:https';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { PassThrough } from 'node:stream';
import { runCommand } from '@trellis/sdk/cli';
import { lb as lbCommand } from '../src/cli.js';
import { freePort } from '../bench/tools.js';
import { startBalancer, startServer, waitFor } from './helpers.js';

// TLS termination with real clients (node:https, curl); certificates made with openssl at test time.

const dir = mkdtempSync(join(tmpdir(), 'trellis-tls-'));
const f = (name: string) => join(dir, name);

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A CA-signed EC certificate for `name` (SAN DNS:name, or `san`), written to <file>.pem / <file>.key. */
function issue(file: string, name: string, serial: number, san = `DNS:${name}`): void {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${file}.key`, '-out', `${file}.csr`, '-subj', `/CN=${name}`);
  writeFileSync(f(`${file}.ext`), `subjectAltName=${san}\n`);
  openssl('x509', '-req', '-in', `${file}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', String(serial), '-out', `${file}.pem`, '-days', '2', '-extfile', `${file}.ext`);
}

openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Trellis Test CA');
issue('a', 'a.test', 1001);
issue('b', 'b.test', 2001);
issue('a2', 'a.test', 1002);
issue('backend', 'backend', 3001, 'IP:127.0.0.1');
openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'rogue.key', '-out', 'rogue.pem', '-days', '2', '-subj', '/CN=rogue', '-addext', 'subjectAltName=IP:127.0.0.1');
const ca = readFileSync(f('ca.pem'));

async function echo() {
  return startServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ url: req.url, proto: req.headers['x-forwarded-proto'], forwarded: req.headers.forwarded }));
  });
}

function httpsGet(port: number, servername: string, path: string, agent: Agent | false = false): Promise<{ status: number; body: string; serial: string; cn: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, servername, ca, agent, headers: { host: servername } }, (res) => {
      let body = '';
      const cert = (res.socket as TLSSocket).getPeerCertificate();
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        resolve({ status: res.statusCode!, body, serial: cert.serialNumber ?? '', cn: (cert.subject?.CN as string | undefined) ?? '' });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** The serial of the certificate a fresh handshake with `servername` gets. */
function handshakeSerial(port: number, servername: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), ca, checkServerIdentity: () => undefined }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.destroy();
      resolve(serial);
    });
    s.on('error', reject);
  });
}

test('HTTPS clients (node:https) get the back-end answer with X-Forwarded-Proto https; SNI picks the certificate', async () => {
  const be = await echo();
  const lb = await startBalancer([be.port], { tls: [{ cert: f('a.pem'), key: f('a.key') }, { cert: f('b.pem'), key: f('b.key') }] });
  try {
    const a = await httpsGet(lb.port, 'a.test', '/x?y=1');
    assert.is(a.status, 200);
    const body = JSON.parse(a.body) as { url: string; proto: string; forwarded: string };
    assert.is(body.url, '/x?y=1');
    assert.is(body.proto, 'https');
    assert.match(body.forwarded, /proto=https/);
    assert.is(a.cn, 'a.test');
    const b = await httpsGet(lb.port, 'b.test', '/');
    assert.is(b.cn, 'b.test');
    // no SNI: the first certificate
    assert.is(await handshakeSerial(lb.port, undefined), (1001).toString(16).toUpperCase().padStart(4, '0'));
  } finally {
    await lb.close();
    await be.close();
  }
});

test('curl through the TLS front door, with SNI, verifying the chain', async () => {
  const be = await echo();
  const lb = await startBalancer([be.port], { tls: [{ cert: f('a.pem'), key: f('a.key') }, { cert: f('b.pem'), key: f('b.key') }] });
  try {
    const curl = (name: string) =>
      new Promise<string>((resolve, reject) =>
        execFile('curl', ['-sS', '--max-time', '10', '--cacert', f('ca.pem'), '--resolve', `${name}:${lb.port}:127.0.0.1`, '-w', '\n%{http_code} %{ssl_verify_result}', `https://${name}:${lb.port}/curl`], (err, stdout, stderr) =>
          err ? reject(new Error(`${err.message} ${stderr}`)) : resolve(stdout),
        ),
      );
    for (const name of ['a.test', 'b.test']) {
      const out = await curl(name);
      assert.match(out, /"proto":"https"/);
      assert.match(out, /\n200 0$/);
    }
  } finally {
    await lb.close();
    await be.close();
  }
});

test('certificates reload without dropping connections; a bad file is refused and the old ones kept', async () => {
  const be = await echo();
  copyFileSync(f('a.pem'), f('live.pem'));
  copyFileSync(f('a.key'), f('live.key'));
  const lb = await startBalancer([be.port], { tls: [{ cert: f('live.pem'), key: f('live.key') }] });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const before = await httpsGet(lb.port, 'a.test', '/1', agent);
    assert.is(before.serial, '03E9'); // 1001
    copyFileSync(f('a2.pem'), f('live.pem'));
    copyFileSync(f('a2.key'), f('live.key'));
    lb.lb.reloadTls();
    assert.is(await handshakeSerial(lb.port, 'a.test'), '03EA'); // 1002: new handshakes
    const kept = await httpsGet(lb.port, 'a.test', '/2', agent); // the open connection still serves
    assert.is(kept.status, 200);
    assert.is(kept.serial, '03E9');
    writeFileSync(f('live.pem'), 'not a certificate');
    assert.throws(() => lb.lb.reloadTls(), /live\.pem is not a PEM certificate/);
    assert.is(await handshakeSerial(lb.port, 'a.test'), '03EA'); // still the last good one
  } finally {
    agent.destroy();
    await lb.close();
    await be.close();
  }
});

async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.match((err as Error).message, re);
    assert.is((err as { code?: string }).code, 'TRELLIS_ERR_INVALID_ARGUMENT');
    return;
  }
  assert.unreachable(`expected a rejection matching ${re}`);
}

test('bad certificates are refused at start with a clear error; old TLS versions are refused', async () => {
  const be = await echo();
  try {
    await rejects(startBalancer([be.port], { tls: [{ cert: f('missing.pem'), key: f('a.key') }] }), /TLS: cannot read .*missing\.pem: ENOENT/);
    await rejects(startBalancer([be.port], { tls: [{ cert: f('a.pem'), key: f('b.key') }] }), /unusable: .*key values mismatch/);
    await rejects(startBalancer([be.port], { tls: [{ cert: f('a.pem'), key: f('a.key') }], engine: 'undici' }), /needs HTTP mode with the raw engine/);
    const lb = await startBalancer([be.port], { tls: [{ cert: f('a.pem'), key: f('a.key') }] });
    try {
      const err = await new Promise<Error | null>((resolve) => {
        const s = tlsConnect({ host: '127.0.0.1', port: lb.port, servername: 'a.test', ca, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }, () => {
          s.destroy();
          resolve(null);
        });
        s.on('error', resolve);
      });
      assert.ok(err instanceof Error, 'a TLS 1.1 handshake must fail');
      assert.is((await httpsGet(lb.port, 'a.test', '/')).status, 200); // others keep being served
    } finally {
      await lb.close();
    }
  } finally {
    await be.close();
  }
});

test('trellis lb --tls-cert/--tls-key serves HTTPS and reloads on SIGHUP', async () => {
  const be = await echo();
  copyFileSync(f('a.pem'), f('cli.pem'));
  copyFileSync(f('a.key'), f('cli.key'));
  const port = await freePort();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += c));
  stderr.on('data', (c) => (err += c));
  const controller = new AbortController();
  const running = runCommand('trellis lb', lbCommand, ['-p', String(port), '-b', `127.0.0.1:${be.port}`, '--tls-cert', f('cli.pem'), '--tls-key', f('cli.key'), '--health-interval', '0'], { stdout, stderr, signal: controller.signal });
  try {
    await waitFor(() => out.includes('lb: http (TLS) mode'), 5000, 'the balancer to start');
    assert.is((await httpsGet(port, 'a.test', '/')).status, 200);
    copyFileSync(f('a2.pem'), f('cli.pem'));
    copyFileSync(f('a2.key'), f('cli.key'));
    process.kill(process.pid, 'SIGHUP');
    await waitFor(() => err.includes('TLS certificates reloaded'), 5000, 'the reload');
    assert.is(await handshakeSerial(port, 'a.test'), '03EA');
    const mismatched = await runCommand('trellis lb', lbCommand, ['-p', '0', '-b', `127.0.0.1:${be.port}`, '--tls-cert', f('a.pem')], { stdout, stderr, signal: new AbortController().signal });
    assert.is(mismatched, 2);
    assert.match(err, /one --tls-key per --tls-cert/);
  } finally {
    controller.abort();
    await running.catch(() => undefined);
    await be.close();
  }
  assert.is(process.listenerCount('SIGHUP'), 0);
});

let __t = Date.now();
test('--backend-tls: back-ends over TLS with CA verification; one whose certificate does not verify is ejected', async () => {
  const { createServer: createHttpsServer } = await import('node:https');
  const serve = (cert: string, key: string, name: string) =>
    new Promise<{ port: number; close: () => Promise<void> }>((resolve) => {
      const server = createHttpsServer({ cert: readFileSync(f(cert)), key: readFileSync(f(key)) }, (req, res) => res.end(`${name} ${req.url}`));
      server.listen(0, '127.0.0.1', () =>
        resolve({
          port: (server.address() as { port: number }).port,
          close: () =>
            new Promise<void>((r) => {
              server.close(() => r());
              server.closeAllConnections();
            }),
        }),
      );
    });
  const good = await serve('backend.pem', 'backend.key', 'good');
  const rogue = await serve('rogue.pem', 'rogue.key', 'rogue');
  const { startBalancer: start, get } = await import('./helpers.js');
  const lb = await start([rogue.port, good.port], { strategy: 'n-to-1', backendTls: { ca: f('ca.pem') }, healthCheck: false, ejectMs: 60_000 });
  try {
    const r = await get(lb.port, '/over-tls', { method: 'POST', body: 'x' });
    assert.is(r.status, 200);
    assert.is(r.body, 'good /over-tls');
    const s = lb.lb.stats();
    assert.is(s.backends[0]!.healthy, false);
    assert.match(s.backends[0]!.downReason!, /SELF_SIGNED|CERT|UNABLE/);
    for (let i = 0; i < 5; i++) assert.is((await get(lb.port, `/k${i}`)).body, `good /k${i}`); // kept-alive TLS sockets
    assert.ok(s.backends[1]!.connections >= 1);
    await rejects(start([good.port], { backendTls: { ca: f('nope.pem') } }), /cannot read the CA file .*nope\.pem: ENOENT/);
  } finally {
    await lb.close();
    await good.close();
    await rogue.close();
  }
});

test.after.each(() => {
  if (process.env.TLS_TIMING) console.log('  test took', Date.now() - __t, 'ms');
  __t = Date.now();
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
