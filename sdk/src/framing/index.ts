/** Shared length-prefixed framing for the Trellis TCP protocols. */
export * from './frame-reader.js';
export * from './frame-writer.js';
