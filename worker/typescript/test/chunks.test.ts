// chunks.test.ts — the chunker's building blocks (src/chunks.ts, PROTOCOL.md §7.9) without
// sockets: a sender never passes the credit (strict rule) and counts size and sha256; a receiver
// refuses chunks out of order or past the size, checks the sha256, grants credit only as bytes
// are consumed; the readers re-cut what they read; a stream is spooled (and the spool removed);
// a handler's input stream ends cleanly only after the check.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';

import {
  ByteSource,
  CHUNK_BYTES,
  ChunkReceiver,
  ChunkSender,
  InputStream,
  MemoryConsumer,
  ResumeError,
  bytesSource,
  iterableReader,
  keptSource,
  prepareSource,
} from '../src/chunks';

const MiB = 1024 * 1024;

function pattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 20)) & 0xff;
  return b;
}

function sha(b: Uint8Array): Buffer {
  return createHash('sha256').update(b).digest();
}

const tick = () => new Promise((r) => setImmediate(r));

describe('ChunkSender', () => {
  it('sends nothing before a grant, never past the credit, and counts the size and sha256', async () => {
    const value = pattern(5 * MiB + 123);
    const sent: [number, number][] = [];
    const got: Uint8Array[] = [];
    const sender = new ChunkSender(1, bytesSource(value), 0, (offset, data) => {
      sent.push([offset, data.length]);
      got.push(data.slice());
    });
    const done = sender.run();
    await tick();
    assert.equal(sent.length, 0, 'a chunk before the first Credit');
    sender.grant(2.5 * MiB);
    await tick();
    await tick();
    assert.deepEqual(sent, [[0, MiB], [MiB, MiB], [2 * MiB, MiB / 2]], 'offset + n <= granted, chunks of at most 1 MiB');
    sender.grant(MiB); // a stale grant changes nothing
    await tick();
    assert.equal(sent.length, 3);
    sender.grant(100 * MiB);
    const { size, sha256 } = await done;
    assert.equal(size, value.length);
    assert.deepEqual(Buffer.from(sha256), sha(value));
    assert.deepEqual(Buffer.concat(got), Buffer.from(value));
    for (let i = 1; i < sent.length; i++) assert.equal(sent[i]![0], sent[i - 1]![0] + sent[i - 1]![1], 'no gap, no overlap');
    assert.ok(sent.every(([, n]) => n >= 1 && n <= CHUNK_BYTES));
  });

  it('fails when a stream gives other than the announced size, and stops when closed', async () => {
    const short = new ChunkSender(1, bytesSource(pattern(10)), 100, () => undefined, 11);
    await assert.rejects(short.run(), /the stream gave 10 bytes, not the 11 announced/);
    const long = new ChunkSender(1, bytesSource(pattern(10)), 100, () => undefined, 9);
    await assert.rejects(long.run(), /more than the 9 bytes announced/);
    let closedReader = false;
    const source = bytesSource(pattern(3 * MiB));
    const stopped = new ChunkSender(3, { readAt: (at, n) => source.readAt(at, n), close: async () => void (closedReader = true) }, MiB, () => undefined);
    const run = stopped.run();
    await tick();
    stopped.close(new Error('the call is over'));
    await assert.rejects(run, /the call is over/);
    assert.ok(closedReader, 'the source is closed');
    assert.equal(stopped.bytesSent, MiB);
  });
});

describe('resumption of a sender (PROTOCOL.md §7.9 R9, R10)', () => {
  it('goes back to a resume offset, hashing each byte once (a resend straddling the high-water mark)', async () => {
    const value = pattern(3 * MiB);
    const sent: [number, Uint8Array][] = [];
    const sender = new ChunkSender(2, bytesSource(value), MiB + MiB / 2, (offset, data) => void sent.push([offset, data]));
    const done = sender.run();
    for (let i = 0; i < 5; i++) await tick();
    assert.deepEqual(sent.map(([o, d]) => [o, d.length]), [[0, MiB], [MiB, MiB / 2]]);
    assert.equal(sender.resume(2 * MiB, 4 * MiB), false, 'beyond what it sent: ignored');
    assert.equal(sender.resume(MiB / 4, 4 * MiB), true);
    const { size, sha256 } = await done;
    assert.equal(size, value.length);
    assert.deepEqual(Buffer.from(sha256), sha(value), 'the bytes sent twice are hashed once');
    const again = sent.slice(2);
    assert.deepEqual(again[0]![0], MiB / 4);
    for (const [o, d] of sent) assert.deepEqual(Buffer.from(d), Buffer.from(value.subarray(o, o + d.length)));
    sender.close(new Error('over'));
  });

  it('a stream that cannot seek keeps the last bytes it gave, and no further back', async () => {
    const value = pattern(10 * 1000);
    const source = keptSource(iterableReader(Readable.from([Buffer.from(value)])), 4000);
    for (let at = 0; at < value.length; at += 1000) assert.equal((await source.readAt(at, 1000))!.length, 1000);
    assert.equal(await source.readAt(value.length, 1000), null);
    assert.deepEqual(Buffer.from((await source.readAt(6500, 1000))!), Buffer.from(value.subarray(6500, 7000)), 'within the kept piece');
    await assert.rejects(source.readAt(5999, 10), (e: unknown) => e instanceof ResumeError && /keeps only the last 4000 bytes sent \(from offset 6000 on\), not from offset 5999/.test((e as Error).message));
    await source.close();
  });
});

describe('ChunkReceiver', () => {
  it('grants the first window, then consumed + window as bytes are consumed, and checks size and sha256', () => {
    const value = pattern(6 * MiB);
    const credits: number[] = [];
    const memory = new MemoryConsumer();
    const r = new ChunkReceiver(1, 'input data', 4 * MiB, 0, (t) => credits.push(t), memory, { size: value.length, sha256: sha(value) });
    memory.receiver = r;
    r.open();
    assert.deepEqual(credits, [4 * MiB]);
    for (let at = 0; at < value.length; at += MiB) assert.equal(r.accept(BigInt(at), value.subarray(at, at + MiB)), null);
    assert.deepEqual(credits, [4 * MiB, 5 * MiB, 6 * MiB, 7 * MiB, 8 * MiB, 9 * MiB, 10 * MiB]);
    assert.ok(r.done);
    assert.deepEqual(Buffer.from(memory.value()), Buffer.from(value));
    // the size known up front (a worker's input): one buffer of that size, filled in place
    const sized = new MemoryConsumer(value.length);
    const r2 = new ChunkReceiver(1, 'input data', 4 * MiB, 0, () => undefined, sized, { size: value.length, sha256: sha(value) });
    sized.receiver = r2;
    for (let at = 0; at < value.length; at += MiB) assert.equal(r2.accept(BigInt(at), value.subarray(at, at + MiB)), null);
    assert.deepEqual(Buffer.from(sized.value()), Buffer.from(value));
  });

  it('refuses an empty chunk and one past the size; a wrong sha256 fails the consumer', async () => {
    const value = pattern(2 * MiB);
    const r = new ChunkReceiver(1, 'input data', 4 * MiB, 0, () => undefined, null, { size: value.length, sha256: sha(value) });
    assert.equal(r.accept(0, new Uint8Array(0)), 'an empty chunk at offset 0');
    assert.equal(r.accept(0, pattern(3 * MiB)), 'chunks beyond its size of 2097152 bytes');
    const wrong = new Uint8Array(value);
    wrong[5] ^= 1;
    const memory = new MemoryConsumer();
    const bad = new ChunkReceiver(1, 'input data', 4 * MiB, 0, () => undefined, memory, { size: value.length, sha256: sha(value) });
    memory.receiver = bad;
    assert.equal(bad.accept(0, wrong.subarray(0, MiB)), null);
    const reason = bad.accept(MiB, wrong.subarray(MiB));
    assert.equal(reason, 'sha256 mismatch');
    assert.equal(bad.error(reason!), 'input data: chunked stream 1: sha256 mismatch');
    bad.fail(new Error(bad.error(reason!)));
    await assert.rejects(memory.result, /input data: chunked stream 1: sha256 mismatch/);
  });

  it('grants an output stream only what a slow consumer took', () => {
    const credits: number[] = [];
    // an output stream: the Submit granted the first window already
    const r = new ChunkReceiver(2, 'output', 4 * MiB, 4 * MiB, (t) => credits.push(t), null);
    for (let i = 0; i < 4; i++) assert.equal(r.accept(i * MiB, pattern(MiB)), null);
    assert.equal(credits.length, 0, 'nothing consumed: no more credit');
    r.consumed(MiB);
    assert.deepEqual(credits, [5 * MiB]);
    assert.equal(r.finish(4 * MiB, new Uint8Array(32)), 'sha256 mismatch');
    assert.equal(r.finish(5 * MiB, new Uint8Array(32)), '4194304 bytes arrived where 5242880 were announced');
  });
});

describe('readers and sources', () => {
  it('re-cuts an iterable into pieces of at most the asked size', async () => {
    const reader = iterableReader(Readable.from([Buffer.from('abc'), Buffer.from('defgh'), Buffer.from('i')]));
    const pieces: string[] = [];
    for (let p = await reader.read(2); p; p = await reader.read(2)) pieces.push(Buffer.from(p).toString());
    assert.deepEqual(pieces, ['ab', 'c', 'de', 'fg', 'h', 'i']);
  });

  it('hashes a file in one pass, and spools a stream of unknown size (removing the spool)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'muster-chunks-'));
    const value = pattern(3 * MiB + 5);
    const file = path.join(dir, 'v.bin');
    fs.writeFileSync(file, value);
    const fromFile = await prepareSource(ByteSource.file(file));
    assert.equal(fromFile.size, value.length);
    assert.deepEqual(Buffer.from(fromFile.sha256), sha(value));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = dir; // a private temp dir: no other program's spool files are counted
    const spoolsBefore = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('muster-spool-')).length;
    const spooled = await prepareSource(Readable.from([value.subarray(0, 1000), value.subarray(1000)]));
    assert.equal(spooled.size, value.length);
    assert.deepEqual(Buffer.from(spooled.sha256), sha(value));
    const reader = spooled.open();
    const back: Uint8Array[] = [];
    let at = 0;
    for (let p = await reader.readAt(at, MiB); p; p = await reader.readAt(at, MiB)) {
      back.push(p);
      at += p.length;
    }
    await reader.close();
    assert.deepEqual(Buffer.concat(back), Buffer.from(value));
    await spooled.cleanup();
    assert.equal(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('muster-spool-')).length, spoolsBefore);
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
    const known = await prepareSource(ByteSource.stream(Readable.from([value]), { size: value.length, sha256: sha(value).toString('hex') }));
    assert.equal(known.size, value.length);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('InputStream', () => {
  it('ends after the check, and is destroyed with the error when the sha256 is wrong', async () => {
    const value = pattern(3 * MiB);
    const read = async (digest: Uint8Array) => {
      const stream = new InputStream();
      const credits: number[] = [];
      const r = new ChunkReceiver(1, 'input data', 4 * MiB, 0, (t) => credits.push(t), stream, { size: value.length, sha256: digest });
      stream.receiver = r;
      r.open();
      const feed = (async () => {
        for (let at = 0; at < value.length; at += MiB) {
          await tick();
          const reason = r.accept(at, value.subarray(at, at + MiB));
          if (reason) r.fail(new Error(r.error(reason)));
        }
      })();
      const got: Buffer[] = [];
      try {
        for await (const piece of stream) got.push(piece as Buffer);
      } finally {
        await feed;
      }
      return { bytes: Buffer.concat(got), credits };
    };
    const ok = await read(sha(value));
    assert.deepEqual(ok.bytes, Buffer.from(value));
    assert.ok(ok.credits.length >= 2 && ok.credits[0] === 4 * MiB, 'credit granted as the reader took the bytes');
    await assert.rejects(read(new Uint8Array(32)), /input data: chunked stream 1: sha256 mismatch/);
  });
});
