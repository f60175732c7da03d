/**
 * The raw engine's request framing as one pure function: where a request starts and ends in a
 * byte buffer, built from the same pieces `ClientConnection` uses (empty-line skipping,
 * `headEnd`, `parseRequest`, `ChunkedScanner`, Content-Length counting). It exists so the framing
 * can be compared message by message with another parser (the differential fuzz test against
 * Node's llhttp); the engine itself frames incrementally on the socket.
 */
import { ChunkedScanner } from './chunked-scanner.js';
import { forwardingOf, type Forwarding } from '../forward-headers.js';
import { HeadError, headEnd, parseRequest, requestForwarding, type RequestHead } from './http-head.js';

const FORWARDING = requestForwarding(forwardingOf(undefined, 'trellis') as Forwarding, '127.0.0.1', 'http');

export type FrameResult =
  | {
      readonly kind: 'message';
      readonly head: RequestHead;
      /** The request target as the client sent it. */
      readonly rawTarget: string;
      /** Field lines in the head. */
      readonly fields: number;
      /** The body's payload (de-chunked). */
      readonly body: Buffer;
      /** Index just past the message: where the next one starts. */
      readonly end: number;
    }
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'rejected'; readonly status: number; readonly message: string };

export function frameRequest(buf: Buffer, from = 0, maxHeadBytes = 16 * 1024): FrameResult {
  let start = from;
  while (start + 1 < buf.length && buf[start] === 13 && buf[start + 1] === 10) start += 2;
  if (start >= buf.length) return { kind: 'incomplete' };
  const end = headEnd(buf, start);
  if (end === -2) return { kind: 'rejected', status: 400, message: 'bare LF or CR in the request head' };
  if (end === -1) return buf.length - start > maxHeadBytes ? { kind: 'rejected', status: 431, message: 'request headers are too large' } : { kind: 'incomplete' };
  if (end - start > maxHeadBytes) return { kind: 'rejected', status: 431, message: 'request headers are too large' };
  const text = buf.toString('latin1', start, end);
  let head: RequestHead;
  try {
    head = parseRequest(text, FORWARDING);
  } catch (err) {
    if (err instanceof HeadError) return { kind: 'rejected', status: err.status, message: err.message };
    throw err;
  }
  const line = text.indexOf('\r\n') === -1 ? text : text.slice(0, text.indexOf('\r\n'));
  const rawTarget = line.slice(line.indexOf(' ') + 1, line.lastIndexOf(' '));
  let fields = 0;
  for (let i = text.indexOf('\r\n'); i !== -1; i = text.indexOf('\r\n', i + 2)) fields++;
  const bodyStart = end + 4;
  if (head.chunked) {
    const parts: Buffer[] = [];
    const scanner = new ChunkedScanner();
    const done = scanner.scan(buf, bodyStart, (b, s, e) => void parts.push(b.subarray(s, e)));
    if (done === -2) return { kind: 'rejected', status: 400, message: 'malformed chunked request body' };
    if (done === -1) return { kind: 'incomplete' };
    return { kind: 'message', head, rawTarget, fields, body: Buffer.concat(parts), end: done };
  }
  const length = head.contentLength > 0 ? head.contentLength : 0;
  if (buf.length - bodyStart < length) return { kind: 'incomplete' };
  return { kind: 'message', head, rawTarget, fields, body: buf.subarray(bodyStart, bodyStart + length), end: bodyStart + length };
}
