/**
 * The broker protocol's extension for acknowledged (at-least-once) delivery and persistent
 * sessions (examples/broker/PROTOCOL.md, "Acknowledged delivery"). Frame types 0x50–0x56 and
 * error code 20; a broker without the extension answers them `MALFORMED` (unknown frame type),
 * so a client can tell. Kept apart from `protocol.ts` so the base protocol stays as it was.
 */
import { allocFrame } from '../framing/frame-writer.js';
import { FRAME_HEADER_BYTES } from '../framing/frame-reader.js';
import { BrokerError, BrokerErrorCode, need, readString } from './protocol.js';

export const ReliableFrame = Object.freeze({
  /** client → broker: `u32 request id | u8 flags (bit 0 = clean start) | u16 length | client id`. */
  SESSION: 0x50,
  /** broker → client: `u32 request id | u8 resumed | u32 count | (u32 subscription id | u8 flags | u16 length | filter)×count`. */
  SESSION_ACK: 0x51,
  /** client → broker: `u32 request id | u32 subscription id | u16 length | filter`; answered SUBACK. */
  SUBSCRIBE_ACKED: 0x52,
  /** client → broker: `u32 request id | u32 subscription id`; answered UNSUBACK. */
  UNSUBSCRIBE_ACKED: 0x53,
  /** broker → client: `u8 flags (bit 0 retained, bit 1 duplicate) | u32 subscription id | u32 number | u16 length | topic | payload`. */
  DELIVERY: 0x54,
  /** client → broker: `u32 subscription id | u32 number`: that message and every earlier one are done. */
  ACK: 0x55,
  /** broker → client: `u32 subscription id | u32 messages dropped | UTF-8 text` (not fatal). */
  OVERFLOW: 0x56,
} as const);

/** The ERROR code sent to a connection whose session another connection resumed. */
export const SESSION_TAKEN_OVER = 20;

export const DeliveryFlag = Object.freeze({ RETAINED: 1, DUPLICATE: 2 } as const);

/** Longest client id, in UTF-8 bytes. */
export const MAX_CLIENT_ID_BYTES = 256;

function control(type: number, bodyBytes: number): Buffer {
  const f = allocFrame(1 + bodyBytes);
  f[FRAME_HEADER_BYTES] = type;
  return f;
}

function malformed(what: string): never {
  throw new BrokerError(BrokerErrorCode.MALFORMED, what);
}

export function sessionFrame(id: number, clientId: string, clean: boolean): Buffer {
  const len = Buffer.byteLength(clientId);
  const f = control(ReliableFrame.SESSION, 7 + len);
  f.writeUInt32BE(id, 5);
  f[9] = clean ? 1 : 0;
  f.writeUInt16BE(len, 10);
  f.write(clientId, 12, len, 'utf8');
  return f;
}

export function readSession(body: Buffer): { id: number; clean: boolean; clientId: string } {
  need(body, 8, 'SESSION');
  const id = body.readUInt32BE(1);
  const clean = (body[5]! & 1) === 1;
  const [clientId, end] = readString(body, 6, 'SESSION');
  if (end !== body.length) malformed(`SESSION frame has ${body.length - end} trailing bytes`);
  if (clientId.length === 0) throw new BrokerError(BrokerErrorCode.MALFORMED, 'a client id may not be empty');
  if (Buffer.byteLength(clientId) > MAX_CLIENT_ID_BYTES) throw new BrokerError(BrokerErrorCode.MALFORMED, `a client id is at most ${MAX_CLIENT_ID_BYTES} bytes`);
  return { id, clean, clientId };
}

export interface RestoredSubscription {
  readonly id: number;
  readonly filter: string;
}

export function sessionAckFrame(id: number, resumed: boolean, subs: readonly RestoredSubscription[]): Buffer {
  const filters = subs.map((s) => Buffer.from(s.filter, 'utf8'));
  const f = control(ReliableFrame.SESSION_ACK, 9 + filters.reduce((n, b) => n + 7 + b.length, 0));
  f.writeUInt32BE(id, 5);
  f[9] = resumed ? 1 : 0;
  f.writeUInt32BE(subs.length, 10);
  let off = 14;
  subs.forEach((s, i) => {
    f.writeUInt32BE(s.id, off);
    f[off + 4] = 0;
    f.writeUInt16BE(filters[i]!.length, off + 5);
    f.set(filters[i]!, off + 7);
    off += 7 + filters[i]!.length;
  });
  return f;
}

export function readSessionAck(body: Buffer): { id: number; resumed: boolean; subscriptions: RestoredSubscription[] } {
  need(body, 10, 'SESSION_ACK');
  const id = body.readUInt32BE(1);
  const resumed = body[5] === 1;
  const count = body.readUInt32BE(6);
  const subscriptions: RestoredSubscription[] = [];
  let off = 10;
  for (let i = 0; i < count; i++) {
    need(body, off + 5, 'SESSION_ACK');
    const sid = body.readUInt32BE(off);
    const [filter, next] = readString(body, off + 5, 'SESSION_ACK');
    subscriptions.push({ id: sid, filter });
    off = next;
  }
  return { id, resumed, subscriptions };
}

export function subscribeAckedFrame(id: number, subId: number, filter: string): Buffer {
  const len = Buffer.byteLength(filter);
  const f = control(ReliableFrame.SUBSCRIBE_ACKED, 10 + len);
  f.writeUInt32BE(id, 5);
  f.writeUInt32BE(subId, 9);
  f.writeUInt16BE(len, 13);
  f.write(filter, 15, len, 'utf8');
  return f;
}

export function readSubscribeAcked(body: Buffer): { id: number; subId: number; filter: string } {
  need(body, 11, 'SUBSCRIBE_ACKED');
  const id = body.readUInt32BE(1);
  const subId = body.readUInt32BE(5);
  const [filter, end] = readString(body, 9, 'SUBSCRIBE_ACKED');
  if (end !== body.length) malformed(`SUBSCRIBE_ACKED frame has ${body.length - end} trailing bytes`);
  if (subId === 0) malformed('subscription id 0 is reserved');
  return { id, subId, filter };
}

export function unsubscribeAckedFrame(id: number, subId: number): Buffer {
  const f = control(ReliableFrame.UNSUBSCRIBE_ACKED, 8);
  f.writeUInt32BE(id, 5);
  f.writeUInt32BE(subId, 9);
  return f;
}

export function readIdPair(body: Buffer, what: string): [number, number] {
  if (body.length !== 9) malformed(`${what} frame must be 9 bytes, got ${body.length}`);
  return [body.readUInt32BE(1), body.readUInt32BE(5)];
}

export function deliveryFrame(subId: number, seq: number, topicBytes: Buffer, payload: Uint8Array, flags: number): Buffer {
  const tlen = topicBytes.length;
  const f = control(ReliableFrame.DELIVERY, 11 + tlen + payload.length);
  f[5] = flags;
  f.writeUInt32BE(subId, 6);
  f.writeUInt32BE(seq, 10);
  f.writeUInt16BE(tlen, 14);
  f.set(topicBytes, 16);
  f.set(payload, 16 + tlen);
  return f;
}

export function readDelivery(body: Buffer): { flags: number; subId: number; seq: number; topic: string; payload: Buffer } {
  need(body, 12, 'DELIVERY');
  const [topic, end] = readString(body, 10, 'DELIVERY');
  return { flags: body[1]!, subId: body.readUInt32BE(2), seq: body.readUInt32BE(6), topic, payload: body.subarray(end) };
}

export function ackFrame(subId: number, seq: number): Buffer {
  const f = control(ReliableFrame.ACK, 8);
  f.writeUInt32BE(subId, 5);
  f.writeUInt32BE(seq, 9);
  return f;
}

export function overflowFrame(subId: number, dropped: number, text: string): Buffer {
  const t = Buffer.from(text.slice(0, 500), 'utf8');
  const f = control(ReliableFrame.OVERFLOW, 8 + t.length);
  f.writeUInt32BE(subId, 5);
  f.writeUInt32BE(dropped, 9);
  f.set(t, 13);
  return f;
}

export function readOverflow(body: Buffer): { subId: number; dropped: number; message: string } {
  need(body, 9, 'OVERFLOW');
  return { subId: body.readUInt32BE(1), dropped: body.readUInt32BE(5), message: body.toString('utf8', 9) };
}
