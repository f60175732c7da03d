/**
 * Length-prefixed frame writer: builds frames in one allocation, and a per-socket output queue
 * that batches every frame written in one tick into a single `writev` (cork/uncork) and tracks
 * how many bytes are waiting, so an engine can bound what a slow reader makes it hold.
 */
import type { Socket } from 'node:net';
import { FRAME_HEADER_BYTES } from './frame-reader.js';

/** Allocates a frame with room for `bodyBytes` and writes the length prefix. */
export function allocFrame(bodyBytes: number): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + bodyBytes);
  frame.writeUInt32BE(bodyBytes, 0);
  return frame;
}

/** Prefixes `body` with its length (copies once). */
export function frame(body: Uint8Array): Buffer {
  const out = allocFrame(body.length);
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Writes frames to a socket, coalescing every frame queued in one tick into a single buffer and
 * one `write` (a fan-out to many sockets then costs one stream write per socket per tick, not
 * one per frame). `pending` counts what is queued here plus what the socket has not handed to
 * the kernel: the number a slow-consumer limit checks.
 */
export class FrameQueue {
  readonly #socket: Socket;
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  #scheduled = false;
  readonly #flush = () => {
    this.#scheduled = false;
    const chunks = this.#chunks;
    if (chunks.length === 0) return;
    const bytes = this.#bytes;
    this.#chunks = [];
    this.#bytes = 0;
    if (this.#socket.destroyed || this.#socket.writableEnded) return;
    this.#socket.write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes));
  };

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  /** Bytes accepted but not yet flushed to the kernel. */
  get pending(): number {
    return this.#bytes + this.#socket.writableLength;
  }

  /** Queues a whole frame (prefix included). Returns false once the socket is closed. */
  write(frameBytes: Uint8Array): boolean {
    const socket = this.#socket;
    if (socket.destroyed || socket.writableEnded) return false;
    this.#chunks.push(frameBytes);
    this.#bytes += frameBytes.length;
    if (!this.#scheduled) {
      this.#scheduled = true;
      process.nextTick(this.#flush);
    }
    return true;
  }

  /** Writes what is queued now (before `end()`, so nothing queued is lost). */
  flush(): void {
    this.#flush();
  }
}
