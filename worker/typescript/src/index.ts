export * from './errors';
export * from './value';
export * from './json';
export * from './endpoints';
export * from './log';
export * from './messages';
export * from './nodes';
export * from './worker';
export { SDK_NAME, SDK_VERSION } from './version';
export * from './client';
export { StreamNotRequested, DEFAULT_WINDOW_ITEMS, DEFAULT_WINDOW_BYTES } from './credit';
export type { CallStream } from './stream';
export * from './jobs';
export * from './listings';
export * from './keys';
export * from './enrollment';
export * from './watch';
export {
  ByteSource,
  type OutputSink,
  CHUNK_BYTES,
  CHUNK_WINDOW_BYTES,
  DEFAULT_CHUNK_THRESHOLD,
  MAX_CHUNK_STREAMS,
  RESUME_AFTER_MS,
  RESUME_KEEP_BYTES,
} from './chunks';
