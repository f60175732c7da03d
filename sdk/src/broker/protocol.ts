/**
 * The Trellis broker wire protocol, version 1 (documented in examples/broker/PROTOCOL.md).
 * Every frame is `u32 length | u8 type | body`, big-endian. This module owns the frame type
 * numbers, error codes, and the encoders/decoders of every control frame; the engine and the
 * client both use it so the two sides cannot drift apart.
 */
import { allocFrame } from '../framing/frame-writer.js';
import { FRAME_HEADER_BYTES } from '../framing/frame-reader.js';
import { isUtf8 } from 'node:buffer';
import { ProtocolError } from '../errors.js';

export const PROTOCOL_VERSION = 1;

/** Frame types. Client → broker below 0x40 (except acks), broker → client the rest. */
export const FrameType = Object.freeze({
  HELLO: 0x01,
  WELCOME: 0x02,
  /** Either side: "are you there?"; the other answers PONG. The broker pings idle clients. */
  PING: 0x03,
  PONG: 0x04,
  PUBLISH: 0x10,
  PUBACK: 0x11,
  SUBSCRIBE: 0x20,
  SUBACK: 0x21,
  UNSUBSCRIBE: 0x22,
  UNSUBACK: 0x23,
  LIST_TOPICS: 0x30,
  TOPICS: 0x31,
  STATS: 0x32,
  STATS_REPLY: 0x33,
  MESSAGE: 0x40,
  ERROR: 0x7f,
} as const);
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

/** Roles announced in HELLO (bit flags). */
export const Role = Object.freeze({ PRODUCER: 1, CONSUMER: 2, BOTH: 3 } as const);
export type RoleValue = (typeof Role)[keyof typeof Role];

/** Codes carried by ERROR frames. Every ERROR is followed by the broker closing the connection. */
export const BrokerErrorCode = Object.freeze({
  MALFORMED: 1,
  FRAME_TOO_LARGE: 2,
  OUT_OF_ORDER: 3,
  UNSUPPORTED_VERSION: 4,
  UNKNOWN_CODEC: 5,
  BAD_TOPIC: 6,
  BAD_PAYLOAD: 7,
  SLOW_CONSUMER: 8,
  NOT_ALLOWED: 9,
  LIMIT: 10,
  SHUTDOWN: 11,
  INTERNAL: 12,
  /** Nothing received for the idle timeout, and no answer to a PING. */
  IDLE_TIMEOUT: 13,
  /** The credentials in HELLO were refused (or missing where anonymous access is off). */
  AUTH_FAILED: 14,
} as const);
export type BrokerErrorCodeValue = (typeof BrokerErrorCode)[keyof typeof BrokerErrorCode];

const ERROR_NAMES: Record<number, string> = Object.fromEntries(Object.entries(BrokerErrorCode).map(([k, v]) => [v, k]));

/** The name of an error code, e.g. `SLOW_CONSUMER`. */
export function errorCodeName(code: number): string {
  return ERROR_NAMES[code] ?? `UNKNOWN_${code}`;
}

/** A broker-side refusal: the ERROR frame's code and text; the connection is closed after it. */
export class BrokerError extends ProtocolError {
  static override readonly brand = Symbol.for('trellis.error.BrokerError');
  override readonly name: string = 'BrokerError';
  constructor(
    readonly wireCode: BrokerErrorCodeValue | number,
    /** The text carried in the ERROR frame, without the code name. */
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${errorCodeName(wireCode)}: ${detail}`, options);
  }
}

/** Longest topic, in UTF-8 bytes. */
export const MAX_TOPIC_BYTES = 1024;

/**
 * A topic is a path of non-empty segments separated by `/`: either with a leading slash
 * (`/weather/temperature`, the reference's hierarchical form) or without one (`qwerty`,
 * `sensors/kitchen`: the course's bare names), listed back exactly as given. `qwerty` and
 * `/qwerty` are different topics. No trailing slash, no empty segment, no control characters,
 * and no `+` or `#` (they are wildcards in subscriptions). `/` alone is the root: subscribing
 * to it means every topic; nothing is published there.
 */
export function checkTopic(topic: string, { root = false } = {}): string | undefined {
  if (typeof topic !== 'string' || topic.length === 0) return 'a topic may not be empty';
  if (topic === '/') return root ? undefined : 'the root "/" is not a topic one can publish to';
  if (Buffer.byteLength(topic) > MAX_TOPIC_BYTES) return `a topic is at most ${MAX_TOPIC_BYTES} bytes`;
  let prev = topic.charCodeAt(0) === 0x2f ? 0x2f : -1;
  for (let i = prev === 0x2f ? 1 : 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return 'a topic may not contain control characters';
    if (c === 0x2f && (prev === 0x2f || prev === -1)) return 'a topic may not contain an empty segment ("//")';
    if (c === 0x2b || c === 0x23) return `a topic may not contain "${String.fromCharCode(c)}" (a wildcard: only subscriptions use it, as a whole segment)`;
    prev = c;
  }
  if (prev === 0x2f) return 'a topic may not end with "/"';
  return undefined;
}

/**
 * A subscription filter: a topic (matched with everything under it, the reference's prefix
 * subscription), `/` (every topic), or a pattern with MQTT wildcards as whole segments: `+`
 * matches exactly one segment, `#` (last segment only) any number of segments, zero included.
 * `+` or `#` inside a segment (`a+b`, `#x`) is refused.
 */
export function checkFilter(filter: string): string | undefined {
  if (typeof filter !== 'string' || filter.length === 0) return 'a subscription may not be empty';
  if (filter === '/') return undefined;
  if (Buffer.byteLength(filter) > MAX_TOPIC_BYTES) return `a subscription is at most ${MAX_TOPIC_BYTES} bytes`;
  const segments = filter.split('/');
  const first = filter.charCodeAt(0) === 0x2f ? 1 : 0;
  for (let i = first; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg.length === 0) return i === segments.length - 1 ? 'a subscription may not end with "/"' : 'a subscription may not contain an empty segment ("//")';
    for (let k = 0; k < seg.length; k++) {
      const c = seg.charCodeAt(k);
      if (c < 0x20 || c === 0x7f) return 'a subscription may not contain control characters';
    }
    if (seg === '+') continue;
    if (seg === '#') {
      if (i !== segments.length - 1) return '"#" may only be the last segment of a subscription';
      continue;
    }
    if (seg.includes('+') || seg.includes('#')) return `"${seg.slice(0, 40)}": "+" and "#" are wildcards only as a whole segment (e.g. /a/+/c, /a/#)`;
  }
  return undefined;
}

/** Whether a subscription filter uses a wildcard segment (`+` or `#`). */
export function isWildcard(filter: string): boolean {
  return filter === '#' || filter === '+' || filter.startsWith('+/') || filter.startsWith('#/') || filter.endsWith('/#') || filter.endsWith('/+') || filter.includes('/+/');
}

/** The segments of a topic or filter: `/a/b` → `['', 'a', 'b']`, `a/b` → `['a', 'b']`. */
export function topicSegments(topic: string): string[] {
  return topic.split('/');
}

/**
 * Whether `topic` is delivered to a subscription on `filter`: `/` matches every topic; a filter
 * without wildcards matches itself and every topic under it (by segment: `/weather` matches
 * `/weather/temperature`, never `/weather2`); a filter with wildcards follows MQTT.
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === '/') return true;
  if (!isWildcard(filter)) return topic === filter || (topic.length > filter.length && topic.startsWith(filter) && topic.charCodeAt(filter.length) === 0x2f);
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const seg = f[i]!;
    if (seg === '#') return true;
    if (i >= t.length) return false;
    if (seg !== '+' && seg !== t[i]) return false;
  }
  return f.length === t.length;
}

// ------------------------------------------------------------------ encoders (whole frames)

function control(type: number, bodyBytes: number): Buffer {
  const f = allocFrame(1 + bodyBytes);
  f[FRAME_HEADER_BYTES] = type;
  return f;
}

/**
 * HELLO: `u8 version | u8 codec wire id | u8 role`, then optionally credentials:
 * `u16 user length | user | u16 password length | password` (UTF-8).
 */
export function helloFrame(codecWireId: number, role: RoleValue, version = PROTOCOL_VERSION, credentials?: { username: string; password: string }): Buffer {
  const user = credentials ? Buffer.from(credentials.username, 'utf8') : undefined;
  const pass = credentials ? Buffer.from(credentials.password, 'utf8') : undefined;
  if (user && (user.length > 0xffff || pass!.length > 0xffff)) throw new RangeError('a user name or password is at most 65,535 bytes');
  const f = control(FrameType.HELLO, 3 + (user ? 4 + user.length + pass!.length : 0));
  f[5] = version;
  f[6] = codecWireId;
  f[7] = role;
  if (user) {
    f.writeUInt16BE(user.length, 8);
    f.set(user, 10);
    f.writeUInt16BE(pass!.length, 10 + user.length);
    f.set(pass!, 12 + user.length);
  }
  return f;
}

export function welcomeFrame(maxFrameBytes: number): Buffer {
  const f = control(FrameType.WELCOME, 5);
  f[5] = PROTOCOL_VERSION;
  f.writeUInt32BE(maxFrameBytes, 6);
  return f;
}

/** PUBLISH flag bits. */
export const PublishFlag = Object.freeze({
  /** Answer PUBACK with the request id. */
  ACK: 1,
  /** Clear the topic's last value (the payload must be empty; nothing is delivered). */
  CLEAR: 2,
  /** A `u32` expiry in seconds follows the topic: the last value is dropped after it. */
  EXPIRY: 4,
} as const);

/**
 * PUBLISH: `u8 flags | u32 request id | u16 topic length | topic | [u32 expiry seconds] | payload`
 * (flags: bit 0 ack wanted, bit 1 clear the last value, bit 2 expiry present).
 */
export function publishFrame(topic: string, payload: Uint8Array, ackId = 0, options: { clear?: boolean; expirySeconds?: number } = {}): Buffer {
  const tlen = Buffer.byteLength(topic);
  const expiry = options.expirySeconds !== undefined;
  const f = control(FrameType.PUBLISH, 7 + tlen + (expiry ? 4 : 0) + payload.length);
  f[5] = (ackId !== 0 ? PublishFlag.ACK : 0) | (options.clear ? PublishFlag.CLEAR : 0) | (expiry ? PublishFlag.EXPIRY : 0);
  f.writeUInt32BE(ackId, 6);
  f.writeUInt16BE(tlen, 10);
  f.write(topic, 12, tlen, 'utf8');
  let off = 12 + tlen;
  if (expiry) {
    f.writeUInt32BE(options.expirySeconds!, off);
    off += 4;
  }
  f.set(payload, off);
  return f;
}

/** PING or PONG: the type byte alone. */
export function pingFrame(type: typeof FrameType.PING | typeof FrameType.PONG): Buffer {
  return control(type, 0);
}

/** Bytes of a MESSAGE frame before its topic: length prefix, type, flags, topic length. */
export const MESSAGE_HEADER_BYTES = FRAME_HEADER_BYTES + 4;

/** MESSAGE: `u8 flags (bit 0 = retained value) | u16 topic length | topic | payload`. */
export function messageFrame(topicBytes: Buffer, payload: Uint8Array, retained: boolean): Buffer {
  const tlen = topicBytes.length;
  const body = 4 + tlen + payload.length; // type, flags, topic length, topic, payload
  // written byte by byte: this runs once per message (tlen < 2^16 and body < 2^32 by construction)
  const f = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body);
  f[0] = body >>> 24;
  f[1] = (body >>> 16) & 0xff;
  f[2] = (body >>> 8) & 0xff;
  f[3] = body & 0xff;
  f[4] = FrameType.MESSAGE;
  f[5] = retained ? 1 : 0;
  f[6] = tlen >>> 8;
  f[7] = tlen & 0xff;
  f.set(topicBytes, MESSAGE_HEADER_BYTES);
  f.set(payload, MESSAGE_HEADER_BYTES + tlen);
  return f;
}

/** A frame that is only `type | u32 id`. */
export function idFrame(type: number, id: number): Buffer {
  const f = control(type, 4);
  f.writeUInt32BE(id, 5);
  return f;
}

/** SUBSCRIBE / UNSUBSCRIBE: `u32 request id | u16 topic length | topic`. */
export function topicRequestFrame(type: typeof FrameType.SUBSCRIBE | typeof FrameType.UNSUBSCRIBE, id: number, topic: string): Buffer {
  const tlen = Buffer.byteLength(topic);
  const f = control(type, 6 + tlen);
  f.writeUInt32BE(id, 5);
  f.writeUInt16BE(tlen, 9);
  f.write(topic, 11, tlen, 'utf8');
  return f;
}

/** SUBACK: `u32 request id | u32 number of retained messages that follow`. */
export function subackFrame(id: number, retained: number): Buffer {
  const f = control(FrameType.SUBACK, 8);
  f.writeUInt32BE(id, 5);
  f.writeUInt32BE(retained, 9);
  return f;
}

/** TOPICS: `u32 request id | u32 count | (u16 length | topic)*`. */
export function topicsFrame(id: number, topics: readonly string[]): Buffer {
  const encoded = topics.map((t) => Buffer.from(t, 'utf8'));
  const f = control(FrameType.TOPICS, 8 + encoded.reduce((n, b) => n + 2 + b.length, 0));
  f.writeUInt32BE(id, 5);
  f.writeUInt32BE(encoded.length, 9);
  let off = 13;
  for (const b of encoded) {
    f.writeUInt16BE(b.length, off);
    f.set(b, off + 2);
    off += 2 + b.length;
  }
  return f;
}

/** STATS_REPLY: `u32 request id | UTF-8 JSON`. */
export function statsReplyFrame(id: number, json: string): Buffer {
  const body = Buffer.from(json, 'utf8');
  const f = control(FrameType.STATS_REPLY, 4 + body.length);
  f.writeUInt32BE(id, 5);
  f.set(body, 9);
  return f;
}

/** ERROR: `u16 code | u32 request id (0 = none) | UTF-8 message`. */
export function errorFrame(code: number, message: string, id = 0): Buffer {
  const text = Buffer.from(message.slice(0, 1000), 'utf8');
  const f = control(FrameType.ERROR, 6 + text.length);
  f.writeUInt16BE(code, 5);
  f.writeUInt32BE(id, 7);
  f.set(text, 11);
  return f;
}

// ------------------------------------------------------------------ decoders (frame bodies)

function malformed(what: string): never {
  throw new BrokerError(BrokerErrorCode.MALFORMED, what);
}

/** Checks that `body` (type byte included) has at least `n` bytes. */
export function need(body: Buffer, n: number, what: string): void {
  if (body.length < n) malformed(`${what} frame is truncated (${body.length} bytes, needs ${n})`);
}

/** Reads a u16-length-prefixed UTF-8 string at `off`; returns it and the offset after it. */
export function readString(body: Buffer, off: number, what: string): [string, number] {
  need(body, off + 2, what);
  const len = body.readUInt16BE(off);
  const end = off + 2 + len;
  need(body, end, what);
  if (!isUtf8(body.subarray(off + 2, end))) malformed(`${what} frame carries a string that is not valid UTF-8`);
  return [body.toString('utf8', off + 2, end), end];
}

export interface Hello {
  version: number;
  codec: number;
  role: number;
  username?: string;
  password?: string;
}

export function readHello(body: Buffer): Hello {
  if (body.length < 4) malformed(`HELLO must be at least 4 bytes, got ${body.length}`);
  const hello: Hello = { version: body[1]!, codec: body[2]!, role: body[3]! };
  if (body.length === 4) return hello;
  const [username, off] = readString(body, 4, 'HELLO');
  const [password, end] = readString(body, off, 'HELLO');
  if (end !== body.length) malformed(`HELLO frame has ${body.length - end} trailing bytes`);
  return { ...hello, username, password };
}

export interface TopicRequest {
  id: number;
  topic: string;
}

export function readTopicRequest(body: Buffer, what: string): TopicRequest {
  need(body, 7, what);
  const id = body.readUInt32BE(1);
  const [topic, end] = readString(body, 5, what);
  if (end !== body.length) malformed(`${what} frame has ${body.length - end} trailing bytes`);
  return { id, topic };
}

export function readId(body: Buffer, what: string): number {
  if (body.length !== 5) malformed(`${what} frame must be 5 bytes, got ${body.length}`);
  return body.readUInt32BE(1);
}

export function readTopics(body: Buffer): { id: number; topics: string[] } {
  need(body, 9, 'TOPICS');
  const id = body.readUInt32BE(1);
  const count = body.readUInt32BE(5);
  const topics: string[] = [];
  let off = 9;
  for (let i = 0; i < count; i++) {
    const [t, next] = readString(body, off, 'TOPICS');
    topics.push(t);
    off = next;
  }
  return { id, topics };
}

export function readError(body: Buffer): { code: number; id: number; message: string } {
  need(body, 7, 'ERROR');
  return { code: body.readUInt16BE(1), id: body.readUInt32BE(3), message: body.toString('utf8', 7, body.length) };
}
