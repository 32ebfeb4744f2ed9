// generated.ts — one import point for the flatc-generated bindings in src/wire/ (never edit
// those by hand: `npm run regen` rewrites them from schema/*.fbs).
export * from './wire/value_generated';
export * from './wire/common_generated';
export * from './wire/worker_generated';
export * from './wire/daemon_generated';
export * from './wire/client_generated';
export * from './wire/reply_generated';
export * from './wire/enroll_generated';
export * from './wire/enrolled_generated';
