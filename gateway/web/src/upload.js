// upload.js — the chunked upload of docs/GATEWAY.md ("Chunked uploads"): file.upload.start,
// then one file.upload.chunk at a time (the next after the gateway's progress for the last),
// until file.upload.complete gives the sha256 a call passes as {"$file": "sha256:…"}.
// Owns: matching the gateway's replies to the upload they answer. One start is open at a time
// (a refused start carries no session id to match).

const CHUNK = 128 * 1024;

export class Uploads {
  constructor(send) {
    this.send = send;            // (type, payload) => void
    this.bySession = new Map();  // session_id -> upload
    this.starting = null;        // the upload waiting for its session id
    this.queue = [];             // uploads waiting for their turn to start
    this.groups = 0;
  }

  // Resolves {file_hash, size}; onProgress(fraction 0..1).
  upload(file, onProgress) {
    return new Promise((resolve, reject) => {
      const u = { file, onProgress, resolve, reject, group: `dash-${Date.now()}-${++this.groups}`, next: 0, session: null };
      this.queue.push(u);
      this.pump();
    });
  }

  pump() {
    if (this.starting || !this.queue.length) return;
    const u = (this.starting = this.queue.shift());
    const total = u.file.size;
    try {
      this.send("file.upload.start", {
        upload_group_id: u.group,
        filename: u.file.name.replaceAll("/", "_") || "file",
        file_index: 0,
        total_files: 1,
        total_size: total,
        chunk_size: CHUNK,
        total_chunks: Math.ceil(total / CHUNK),
      });
    } catch (e) {
      this.starting = null;
      u.reject(e);
      this.pump();
    }
  }

  // Every file.upload.* message from the gateway comes here.
  onMessage(type, p) {
    let u = p?.session_id ? this.bySession.get(p.session_id) : null;
    if (!u && this.starting && (p?.upload_group_id === this.starting.group || type === "file.upload.error")) {
      u = this.starting;
      this.starting = null;
      if (p?.session_id) {
        u.session = p.session_id;
        this.bySession.set(u.session, u);
      }
      this.pump();
    }
    if (!u) return;
    if (type === "file.upload.error") {
      this.bySession.delete(u.session);
      u.reject(new Error(`${p.code}: ${p.error}`));
    } else if (type === "file.upload.complete") {
      this.bySession.delete(u.session);
      u.onProgress(1);
      u.resolve({ file_hash: p.file_hash, size: p.size });
    } else if (type === "file.upload.progress") {
      u.onProgress(u.file.size ? (p.bytes_uploaded ?? 0) / u.file.size : 1);
      if (p.status === "uploading" && (p.chunks_received ?? 0) === u.next && u.next < Math.ceil(u.file.size / CHUNK)) {
        this.sendChunk(u).catch((e) => {
          this.bySession.delete(u.session);
          u.reject(e);
        });
      }
    }
  }

  async sendChunk(u) {
    const index = u.next++;
    const bytes = new Uint8Array(await u.file.slice(index * CHUNK, (index + 1) * CHUNK).arrayBuffer());
    this.send("file.upload.chunk", { session_id: u.session, chunk_index: index, data: base64(bytes) });
  }

  // The connection dropped: uploads in progress fail (the user picks the file again).
  failAll(why) {
    for (const u of [...this.bySession.values(), ...(this.starting ? [this.starting] : []), ...this.queue]) u.reject(new Error(why));
    this.bySession.clear();
    this.starting = null;
    this.queue = [];
  }
}

export function base64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
