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
 * Writes frames to a socket, coalescing the frames of one tick into one system call. `pending`
 * is what the socket has not handed to the kernel yet: the number a slow-consumer limit checks.
 */
export class FrameQueue {
  readonly #socket: Socket;
  #corked = false;
  readonly #flush = () => {
    this.#corked = false;
    this.#socket.uncork();
  };

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  /** Bytes accepted but not yet flushed to the kernel. */
  get pending(): number {
    return this.#socket.writableLength;
  }

  /** Queues a whole frame (prefix included). Returns false once the socket is closed. */
  write(frameBytes: Uint8Array): boolean {
    const socket = this.#socket;
    if (socket.destroyed || socket.writableEnded) return false;
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      process.nextTick(this.#flush);
    }
    socket.write(frameBytes);
    return true;
  }
}
