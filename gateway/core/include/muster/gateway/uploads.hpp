// uploads.hpp — chunked file uploads of the reference API (file.upload.*): sessions, chunks
// written at their offsets, pause and resume (also from another connection of the same user),
// the sha256 of a finished file, and the finished files a call may name as {"$file": "sha256:…"}.
// Owns: the upload directory and what survives a restart in it (each session's description
// and a log of its received chunks with their sha256, each finished file with its description;
// docs/GATEWAY.md "Uploads across a restart"), the bounds (file size, per user, in total),
// expiry of idle sessions and of finished files, the error codes SESSION_NOT_FOUND,
// SESSION_RESTORE_FAILED, INVALID_ENCODING, WRITE_FAILED, UPLOAD_START_FAILED (and
// SESSION_PAUSED, muster's own).
// Must never: let one user see, resume or use another user's session or file; read a clock
// (time comes in as arguments).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "muster/gateway/executions.hpp"
#include "muster/value_json.hpp"

namespace muster::gateway {

struct UploadLimits {
  std::uint64_t max_file_bytes = 1ull << 30;      // one file
  std::uint64_t per_user_bytes = 2ull << 30;      // finished files + open sessions of one user
  std::uint64_t total_bytes = 10ull << 30;        // everything
  std::int64_t session_ttl_s = 3600;              // an idle session is dropped after this
  std::int64_t file_ttl_s = 86400;                // a finished file is deleted after this
  // Largest file a call may take as an input; 0: no limit of its own (--upload-max-file-bytes
  // bounds every file).
  std::uint64_t max_file_input_bytes = 0;
  // A file up to this size is read, checked against its hash and sent inline, in the call's
  // message; a larger one is sent chunked from the file (only as a top-level input). The C++
  // client's chunk threshold: keep it under musterd's --max-message-bytes.
  std::uint64_t max_inline_file_bytes = 8u << 20;
};

// What the session sends back: one message type and its payload.
struct UploadReply {
  std::string type;  // file.upload.progress, file.upload.complete or file.upload.error
  Json payload;
};

class UploadStore {
 public:
  // Creates `dir` (0700), or takes up what a previous gateway left in it: finished files, and
  // sessions (paused, idle from `now`; their data is checked when they are resumed). What cannot
  // be read back is removed. Throws std::runtime_error if the directory cannot be created.
  UploadStore(std::filesystem::path dir, UploadLimits limits, std::int64_t now = 0);

  // Each handles one client message of `user` on connection `conn` and returns the reply.
  UploadReply start(const std::string& user, std::uint64_t conn, const Json& payload, std::int64_t now);
  // Returns progress, then (after the last chunk) complete as a second reply.
  std::vector<UploadReply> chunk(const std::string& user, std::uint64_t conn, const Json& payload, std::int64_t now);
  UploadReply pause(const std::string& user, const Json& payload, std::int64_t now);
  UploadReply resume(const std::string& user, std::uint64_t conn, const Json& payload, std::int64_t now);
  // A connection closed: its sessions are paused (resumable from another connection).
  void connection_closed(std::uint64_t conn);
  // Drops idle sessions and old files.
  void expire(std::int64_t now);

  // Replaces every {"$file": "sha256:<hex>"} in `inputs` (at any depth) by {"$bytes": base64}
  // of `user`'s finished file, read and checked against its hash. With `streamed`, a top-level
  // input naming a file over max_inline_file_bytes is taken out of `inputs` and added there
  // instead (its size checked now; its bytes by the worker, against the upload's sha256); such a
  // file anywhere else (or without `streamed`) is refused. The error names the reference that
  // cannot be used.
  std::optional<std::string> resolve_file_refs(Json& inputs, const std::string& user,
                                               std::vector<FileInput>* streamed = nullptr) const;

  std::uint64_t bytes_of(const std::string& user) const;
  std::uint64_t bytes_total() const;

 private:
  struct Session {
    std::string id, user, filename, upload_group_id;
    std::uint64_t file_index = 0, total_size = 0, total_chunks = 0, chunk_size = 0, bytes = 0;
    std::vector<bool> received;
    std::uint64_t chunks_received = 0;
    std::uint64_t conn = 0;
    bool paused = false;
    bool restored = false;  // taken up after a restart: its data is checked on resume
    std::int64_t last_active = 0;
    std::map<std::uint64_t, std::string> chunk_hashes;  // restored only: index -> sha256 hex (the log)
  };
  struct File {
    std::string user, hash, filename;
    std::uint64_t size = 0;
    std::int64_t created = 0;
    std::filesystem::path path;
  };

  UploadReply progress(const Session& s) const;
  UploadReply error(const std::string& session_id, const std::string& error, const std::string& code) const;
  Session* find(const std::string& user, const Json& payload, std::string& session_id);
  std::filesystem::path part_path(const Session& s) const;
  std::filesystem::path meta_path(const std::string& session_id) const;
  std::filesystem::path log_path(const std::string& session_id) const;
  void drop(const std::string& session_id);
  // Takes up the sessions and files a previous gateway left in the directory.
  void restore(std::int64_t now);
  // One {"$file": ...} object `v` of `user`: replaced by its bytes, or (a large one, with
  // `port` and `streamed`) moved to `streamed`; the error otherwise.
  std::optional<std::string> resolve_file_ref(Json& v, const std::string& user, const std::string* port,
                                              std::vector<FileInput>* streamed) const;
  // Whether a restored session's part file still holds every chunk its log lists, unchanged.
  bool data_intact(const Session& s) const;

  std::filesystem::path dir_;
  UploadLimits limits_;
  std::map<std::string, Session> sessions_;
  std::map<std::pair<std::string, std::string>, File> files_;  // (user, "sha256:hex")
  std::uint64_t next_ = 0;
};

}  // namespace muster::gateway
