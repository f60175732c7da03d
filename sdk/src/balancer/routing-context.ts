/**
 * The `RoutingContext` objects the engines hand to `strategy.select(ctx)`: one per client
 * connection, refilled before every pick, every field computed on first read. Filling copies a
 * few references and nothing else, so a strategy that ignores `ctx` adds no allocation.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { cookieValue, type RoutingContext } from '../areas/routing.js';
import { clientAddress } from './forward-headers.js';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;

/** Client address and port, read from the socket once per connection when first asked for. */
abstract class BaseContext {
  readonly #socket: Socket;
  #address: string | undefined;
  #hashKey: string | undefined;

  constructor(socket: Socket, address?: string) {
    this.#socket = socket;
    this.#address = address;
  }

  get clientAddress(): string {
    return (this.#address ??= clientAddress(this.#socket.remoteAddress));
  }

  get clientPort(): number {
    return this.#socket.remotePort ?? 0;
  }

  get hashKey(): string | undefined {
    return this.#hashKey;
  }

  set hashKey(key: string | undefined) {
    this.#hashKey = key;
  }
}

/** TCP mode: the connection's client; no request fields. */
export class TcpRoutingContext extends BaseContext implements RoutingContext {
  readonly mode = 'tcp' as const;
  readonly method = undefined;
  readonly host = undefined;
  readonly path = undefined;

  header(_name: string): string | undefined {
    return undefined;
  }

  cookie(_name: string): string | undefined {
    return undefined;
  }

  addResponseHeader(_name: string, _value: string): void {
    // no HTTP response in TCP mode
  }

  /** Before each pick (a retry picks again). */
  reset(): void {
    this.hashKey = undefined;
  }
}

/**
 * HTTP mode, both engines. The raw engine fills it with the request head's text (header lookups
 * search that text, lower-cased once on first use); the undici engine with node:http's parsed
 * header object.
 */
export class HttpRoutingContext extends BaseContext implements RoutingContext {
  readonly mode = 'http' as const;
  method: string | undefined = undefined;
  /** The request target as sent (path and query). */
  target = '';
  #head = '';
  #headers: IncomingHttpHeaders | undefined;
  /**
   * Bumped by every fill; the lazily computed fields below are valid only for the generation
   * they were computed in, so a fill writes four fields instead of clearing every cache.
   */
  #gen = 0;
  #path = '';
  #pathGen = -1;
  #lower = '';
  #lowerGen = -1;
  /** Response header lines (`name: value\r\n`…) asked for by the strategy. */
  #extra = '';
  #extraGen = -1;
  #key: string | undefined;
  #keyGen = -1;

  /** Raw engine: `head` is the request line and header lines, CRLF separated. */
  fillRaw(method: string, target: string, head: string): void {
    this.method = method;
    this.target = target;
    this.#head = head;
    this.#headers = undefined;
    this.#gen++;
  }

  /** undici engine: node:http's parsed request. */
  fillNode(method: string, target: string, headers: IncomingHttpHeaders): void {
    this.method = method;
    this.target = target;
    this.#head = '';
    this.#headers = headers;
    this.#gen++;
  }

  override get hashKey(): string | undefined {
    return this.#keyGen === this.#gen ? this.#key : undefined;
  }

  override set hashKey(key: string | undefined) {
    this.#key = key;
    this.#keyGen = this.#gen;
  }

  get path(): string {
    if (this.#pathGen !== this.#gen) {
      const q = this.target.indexOf('?');
      this.#path = q === -1 ? this.target : this.target.slice(0, q);
      this.#pathGen = this.#gen;
    }
    return this.#path;
  }

  get host(): string | undefined {
    return this.header('host');
  }

  header(name: string): string | undefined {
    const lname = name.toLowerCase();
    const parsed = this.#headers;
    if (parsed !== undefined) {
      const v = parsed[lname];
      if (v === undefined) return undefined;
      return typeof v === 'string' ? v : v.join(lname === 'cookie' ? '; ' : ', ');
    }
    const head = this.#head;
    if (this.#lowerGen !== this.#gen) {
      this.#lower = head.toLowerCase();
      this.#lowerGen = this.#gen;
    }
    const lower = this.#lower;
    const needle = `\r\n${lname}:`;
    let at = lower.indexOf(needle);
    let out: string | undefined;
    while (at !== -1) {
      const from = at + needle.length;
      let eol = head.indexOf('\r\n', from);
      if (eol === -1) eol = head.length;
      const value = head.slice(from, eol).trim();
      out = out === undefined ? value : `${out}${lname === 'cookie' ? '; ' : ', '}${value}`;
      at = lower.indexOf(needle, eol);
    }
    return out;
  }

  cookie(name: string): string | undefined {
    return cookieValue(this.header('cookie'), name);
  }

  addResponseHeader(name: string, value: string): void {
    if (!TOKEN.test(name) || BAD_VALUE.test(value)) return;
    if (this.#extraGen !== this.#gen) {
      this.#extra = '';
      this.#extraGen = this.#gen;
    }
    this.#extra += `${name}: ${value}\r\n`;
  }

  /** The response header lines the strategy asked for during the last pick ('' when none). */
  responseHeaders(): string {
    return this.#extraGen === this.#gen ? this.#extra : '';
  }
}
