/**
 * Length-prefixed frame reader: turns a byte stream into whole frames. Each frame is a 4-byte
 * big-endian length followed by that many bytes. The length is checked against the limit as soon
 * as the 4 header bytes arrive, BEFORE any of the body is buffered, so a peer cannot make us hold
 * more than `maxFrameBytes` (+ one socket chunk) in memory.
 */
import { ProtocolError } from '../errors.js';

/** Bytes in the length prefix. */
export const FRAME_HEADER_BYTES = 4;

export interface FrameReaderOptions {
  /** Largest frame body accepted, in bytes (the prefix is not counted). */
  readonly maxFrameBytes: number;
  /** Smallest frame body accepted (default 1: a frame carries at least a type byte). */
  readonly minFrameBytes?: number;
  /**
   * Called instead of `onFrame` with the buffer holding the body and its bounds, so a hot path
   * need not make a view per frame. The same lifetime rule: valid only during the call.
   */
  readonly onFrameAt?: (buf: Buffer, start: number, end: number) => void;
}

/** A frame that broke the limits; the reader stops and the connection must close. */
export class FrameSizeError extends ProtocolError {
  static override readonly brand = Symbol.for('trellis.error.FrameSizeError');
  override readonly name: string = 'FrameSizeError';
  constructor(
    readonly size: number,
    readonly limit: number,
    tooSmall = false,
  ) {
    super(tooSmall ? `frame of ${size} bytes is below the minimum of ${limit}` : `frame of ${size} bytes exceeds the maximum of ${limit} bytes`);
  }
}

/**
 * Feed it chunks with `push`; it calls `onFrame(body)` for every complete frame, in order. The
 * body handed out is a view that stays valid only during the call (it may share the chunk's
 * memory): copy it if you keep it. After an error it ignores further input.
 */
export class FrameReader {
  readonly #max: number;
  readonly #min: number;
  readonly #onFrameAt: (buf: Buffer, start: number, end: number) => void;
  /** Leftover bytes of an incomplete frame, as received (concatenated once the frame is whole). */
  #parts: Buffer[] = [];
  #partsBytes = 0;
  /** Body length of the frame being collected, or -1 while the header is incomplete. */
  #need = -1;
  #failed: Error | undefined;

  constructor(options: FrameReaderOptions, onFrame?: (body: Buffer) => void) {
    this.#max = options.maxFrameBytes;
    this.#min = options.minFrameBytes ?? 1;
    if (options.onFrameAt) this.#onFrameAt = options.onFrameAt;
    else if (onFrame) this.#onFrameAt = (buf, start, end) => onFrame(buf.subarray(start, end));
    else throw new TypeError('FrameReader needs onFrame or options.onFrameAt');
  }

  /** Bytes held for an incomplete frame (for stats and tests). */
  get bufferedBytes(): number {
    return this.#partsBytes;
  }

  /** The error that stopped the reader, if any. */
  get failed(): Error | undefined {
    return this.#failed;
  }

  /** Consumes a chunk. Throws `FrameSizeError` for an oversized frame (and stays failed). */
  push(chunk: Buffer): void {
    if (this.#failed) return;
    let buf = chunk;
    if (this.#partsBytes > 0) {
      // only join what the current frame needs; the common case (no leftover) skips this
      if (this.#need < 0 || this.#partsBytes + chunk.length >= this.#need + FRAME_HEADER_BYTES) {
        this.#parts.push(chunk);
        buf = Buffer.concat(this.#parts, this.#partsBytes + chunk.length);
        this.#parts = [];
        this.#partsBytes = 0;
      } else {
        this.#parts.push(chunk);
        this.#partsBytes += chunk.length;
        return;
      }
    }
    let off = 0;
    const end = buf.length;
    while (end - off >= FRAME_HEADER_BYTES) {
      const size = buf.readUInt32BE(off);
      if (size > this.#max || size < this.#min) {
        this.#fail(new FrameSizeError(size, size > this.#max ? this.#max : this.#min, size < this.#min));
      }
      if (end - off - FRAME_HEADER_BYTES < size) {
        this.#need = size;
        break;
      }
      const start = off + FRAME_HEADER_BYTES;
      off = start + size;
      this.#need = -1;
      this.#onFrameAt(buf, start, off);
      if (this.#failed) return;
    }
    if (off < end) {
      this.#parts.push(off === 0 ? buf : buf.subarray(off));
      this.#partsBytes = end - off;
      if (end - off < FRAME_HEADER_BYTES) this.#need = -1;
    } else {
      this.#need = -1;
    }
  }

  /** Stops the reader: later input is ignored and buffered bytes are released. */
  stop(reason: Error): void {
    this.#failed ??= reason;
    this.#parts = [];
    this.#partsBytes = 0;
  }

  #fail(err: Error): never {
    this.stop(err);
    throw err;
  }
}
