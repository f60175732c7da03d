/**
 * TLS termination certificates for the HTTP front door: one or more certificate/key pairs read
 * from PEM files, the first the default, the others picked by SNI from the names they carry
 * (subjectAltName DNS entries, else the subject CN; `*.example.com` wildcards match one label).
 * `load()` reads everything again (certificate reload on SIGHUP): on any error the current
 * contexts stay in place and the error says which file was wrong.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';

export interface TlsCertificate {
  /** PEM certificate (chain) file. */
  cert: string;
  /** PEM private key file. */
  key: string;
}

/** Modern defaults: TLS 1.2+, Node's default (AEAD, forward-secret) cipher list, server order. */
export const TLS_DEFAULTS = Object.freeze({ minVersion: 'TLSv1.2' as const, honorCipherOrder: true, ALPNProtocols: ['http/1.1'] });

interface Loaded {
  readonly fallback: SecureContext;
  /** The first pair's PEM, for the server's own context (clients that send no SNI). */
  readonly first: { cert: Buffer; key: Buffer };
  readonly byName: Map<string, SecureContext>;
  readonly names: string[][];
}

function namesOf(pem: Buffer, file: string): string[] {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(pem);
  } catch (err) {
    throw new InvalidArgumentError(`TLS certificate ${file} is not a PEM certificate: ${(err as Error).message}`);
  }
  const names: string[] = [];
  for (const part of (x509.subjectAltName ?? '').split(',')) {
    const m = /^\s*DNS:(.+)$/.exec(part);
    if (m) names.push(m[1]!.trim().toLowerCase());
  }
  if (names.length === 0) {
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(x509.subject);
    if (cn) names.push(cn[1]!.trim().toLowerCase());
  }
  if (new Date(x509.validTo).getTime() < Date.now()) throw new InvalidArgumentError(`TLS certificate ${file} expired on ${x509.validTo}`);
  return names;
}

export class TlsCertificates {
  readonly #pairs: readonly TlsCertificate[];
  #loaded: Loaded;
  /** Successful loads (1 after construction). */
  loads = 0;

  constructor(pairs: readonly TlsCertificate[]) {
    if (!Array.isArray(pairs) || pairs.length === 0) throw new InvalidArgumentError('tls needs at least one { cert, key } pair of PEM files');
    for (const p of pairs) {
      if (!p || typeof p.cert !== 'string' || typeof p.key !== 'string') throw new InvalidArgumentError('each tls certificate must be { cert: FILE, key: FILE }');
    }
    this.#pairs = pairs.map((p) => ({ ...p }));
    this.#loaded = this.#read();
    this.loads = 1;
  }

  #read(): Loaded {
    let fallback: SecureContext | undefined;
    let first: { cert: Buffer; key: Buffer } | undefined;
    const byName = new Map<string, SecureContext>();
    const names: string[][] = [];
    for (const { cert, key } of this.#pairs) {
      let certPem: Buffer;
      let keyPem: Buffer;
      try {
        certPem = readFileSync(cert);
        keyPem = readFileSync(key);
      } catch (err) {
        throw new InvalidArgumentError(`TLS: cannot read ${(err as NodeJS.ErrnoException).path ?? cert}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      const certNames = namesOf(certPem, cert);
      let ctx: SecureContext;
      try {
        ctx = createSecureContext({ cert: certPem, key: keyPem, minVersion: TLS_DEFAULTS.minVersion, honorCipherOrder: true });
      } catch (err) {
        throw new InvalidArgumentError(`TLS: certificate ${cert} with key ${key} is unusable: ${(err as Error).message}`);
      }
      fallback ??= ctx;
      first ??= { cert: certPem, key: keyPem };
      for (const n of certNames) if (!byName.has(n)) byName.set(n, ctx);
      names.push(certNames);
    }
    return { fallback: fallback!, first: first!, byName, names };
  }

  /** Reads every file again; throws (keeping the current certificates) when one is bad. */
  reload(): void {
    this.#loaded = this.#read();
    this.loads++;
  }

  /** Options for the server's default context: the first pair, with the modern defaults. */
  get serverOptions(): { cert: Buffer; key: Buffer; minVersion: 'TLSv1.2'; honorCipherOrder: boolean } {
    return { ...this.#loaded.first, minVersion: TLS_DEFAULTS.minVersion, honorCipherOrder: true };
  }

  /** The names each certificate answers for, in order. */
  get names(): string[][] {
    return this.#loaded.names;
  }

  /** The context for an SNI server name: exact name, then a one-label wildcard, then the first pair. */
  contextFor(servername: string | undefined): SecureContext {
    const { byName, fallback } = this.#loaded;
    if (servername) {
      const name = servername.toLowerCase();
      const exact = byName.get(name);
      if (exact) return exact;
      const dot = name.indexOf('.');
      if (dot > 0) {
        const wild = byName.get(`*${name.slice(dot)}`);
        if (wild) return wild;
      }
    }
    return fallback;
  }

  /** For `tls.createServer({ SNICallback })`: every handshake looks up the current contexts. */
  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => cb(null, this.contextFor(servername));
}
