// uploads.cpp — see uploads.hpp.
#include "muster/gateway/uploads.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

#include "muster/secure_file.hpp"
#include "muster/sha256.hpp"

namespace muster::gateway {

namespace fs = std::filesystem;

namespace {
std::optional<std::uint64_t> uint_field(const Json& p, const char* key) {
  auto it = p.find(key);
  if (it == p.end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<std::uint64_t>();
}
std::string string_field(const Json& p, const char* key) {
  auto it = p.find(key);
  return it != p.end() && it->is_string() ? it->get<std::string>() : std::string();
}
std::string hex(const unsigned char* data, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += fmt::format("{:02x}", data[i]);
  return out;
}
std::string hex(const Sha256Digest& digest) { return hex(digest.data(), digest.size()); }
std::string sha256_hex(const void* data, std::size_t n) {
  return hex(sha256({static_cast<const std::uint8_t*>(data), n}));
}
// The JSON in `path`, or a discarded value when it is missing or not JSON.
Json read_json(const fs::path& path) {
  try {
    auto text = keys::read_file(path);
    return text ? Json::parse(*text, nullptr, false) : Json(Json::value_t::discarded);
  } catch (const std::exception&) {
    return Json(Json::value_t::discarded);
  }
}
void remove_quietly(const fs::path& path) {
  std::error_code ec;
  fs::remove(path, ec);
}
}  // namespace

UploadStore::UploadStore(fs::path dir, UploadLimits limits, std::int64_t now) : dir_(std::move(dir)), limits_(limits) {
  std::error_code ec;
  fs::create_directories(dir_ / "partial", ec);
  fs::create_directories(dir_ / "files", ec);
  if (ec) throw std::runtime_error(fmt::format("cannot create the upload dir '{}': {}", dir_.string(), ec.message()));
  ::chmod(dir_.c_str(), 0700);
  if (sodium_init() < 0) throw std::runtime_error("libsodium could not be initialised");
  restore(now);
}

fs::path UploadStore::part_path(const Session& s) const { return dir_ / "partial" / (s.id + ".part"); }
fs::path UploadStore::meta_path(const std::string& id) const { return dir_ / "partial" / (id + ".json"); }
fs::path UploadStore::log_path(const std::string& id) const { return dir_ / "partial" / (id + ".chunks"); }

// On disk, per session: <id>.part (the bytes at their offsets), <id>.json (what file.upload.start
// said, written once) and <id>.chunks (one line "<index> <sha256 hex>" appended per chunk
// written; the last line of an index wins). Per finished file: files/<name> and <name>.json.
void UploadStore::restore(std::int64_t now) {
  std::error_code ec;
  std::vector<fs::path> entries;
  for (auto& e : fs::directory_iterator(dir_ / "partial", ec)) entries.push_back(e.path());
  for (auto& path : entries) {
    if (path.extension() != ".json") {
      // A part or chunk log without its description cannot be resumed by anyone.
      if (!fs::exists(meta_path(path.stem().string()))) remove_quietly(path);
      continue;
    }
    std::string id = path.stem().string();
    Json m = read_json(path);
    Session s;
    bool ok = m.is_object() && id.rfind("upload-", 0) == 0;
    if (ok) {
      s.id = id;
      s.user = m.value("user", "");
      s.filename = m.value("filename", "");
      s.upload_group_id = m.value("upload_group_id", "");
      s.file_index = m.value("file_index", std::uint64_t{0});
      s.total_size = m.value("total_size", std::uint64_t{0});
      s.total_chunks = m.value("total_chunks", std::uint64_t{0});
      s.chunk_size = m.value("chunk_size", std::uint64_t{0});
      ok = !s.user.empty() && s.chunk_size > 0 && s.total_chunks == (s.total_size + s.chunk_size - 1) / s.chunk_size;
    }
    if (!ok) {
      for (auto* ext : {".json", ".part", ".chunks"}) remove_quietly(dir_ / "partial" / (id + ext));
      continue;
    }
    s.received.assign(s.total_chunks, false);
    if (auto text = keys::read_file(log_path(id))) {
      std::size_t at = 0;
      while (at < text->size()) {
        auto end = text->find('\n', at);
        if (end == std::string::npos) break;  // a torn last line: that chunk counts as not received
        std::string line = text->substr(at, end - at);
        at = end + 1;
        auto space = line.find(' ');
        if (space == std::string::npos || line.size() - space - 1 != 2 * std::tuple_size_v<Sha256Digest>) continue;
        std::uint64_t index = 0;
        try {
          index = std::stoull(line.substr(0, space));
        } catch (const std::exception&) {
          continue;
        }
        if (index >= s.total_chunks) continue;
        s.chunk_hashes[index] = line.substr(space + 1);
      }
    }
    for (auto& [index, hash] : s.chunk_hashes) {
      s.received[index] = true;
      ++s.chunks_received;
      s.bytes += std::min(s.chunk_size, s.total_size - index * s.chunk_size);
    }
    s.paused = true;  // its connection is gone: resumable from any connection of its user
    s.restored = true;
    s.last_active = now;
    if (auto dash = id.rfind('-'); dash != std::string::npos) {
      try {
        next_ = std::max<std::uint64_t>(next_, std::stoull(id.substr(dash + 1)));
      } catch (const std::exception&) {
      }
    }
    sessions_.emplace(id, std::move(s));
  }
  entries.clear();
  for (auto& e : fs::directory_iterator(dir_ / "files", ec)) entries.push_back(e.path());
  for (auto& path : entries) {
    auto data = path;
    data.replace_extension();
    if (path.extension() != ".json") {
      if (!fs::exists(fs::path(path.string() + ".json"))) remove_quietly(path);  // never described
      continue;
    }
    Json m = read_json(path);
    File f;
    if (m.is_object()) {
      f.user = m.value("user", "");
      f.hash = m.value("hash", "");
      f.filename = m.value("filename", "");
      f.size = m.value("size", std::uint64_t{0});
      f.created = m.value("created", std::int64_t{0});
      f.path = data;
    }
    auto size = fs::file_size(data, ec);
    if (!m.is_object() || f.user.empty() || f.hash.rfind("sha256:", 0) != 0 || ec || size != f.size) {
      remove_quietly(path);
      remove_quietly(data);
      continue;
    }
    files_[{f.user, f.hash}] = std::move(f);
  }
}

bool UploadStore::data_intact(const Session& s) const {
  std::ifstream in(part_path(s), std::ios::binary);
  if (!in) return false;
  std::vector<char> buf;
  for (auto& [index, hash] : s.chunk_hashes) {
    std::uint64_t offset = index * s.chunk_size, n = std::min(s.chunk_size, s.total_size - offset);
    buf.resize(n);
    in.seekg(static_cast<std::streamoff>(offset));
    if (!in.read(buf.data(), static_cast<std::streamsize>(n))) return false;
    if (sha256_hex(buf.data(), n) != hash) return false;
  }
  return true;
}

UploadReply UploadStore::error(const std::string& session_id, const std::string& error, const std::string& code) const {
  return {"file.upload.error", Json{{"session_id", session_id}, {"error", error}, {"code", code}}};
}

UploadReply UploadStore::progress(const Session& s) const {
  double pct = s.total_chunks ? 100.0 * static_cast<double>(s.chunks_received) / static_cast<double>(s.total_chunks) : 100.0;
  return {"file.upload.progress",
          Json{{"session_id", s.id}, {"chunks_received", s.chunks_received}, {"bytes_uploaded", s.bytes},
               {"percentage", pct}, {"total_chunks", s.total_chunks}, {"total_size", s.total_size},
               {"filename", s.filename}, {"upload_group_id", s.upload_group_id}, {"file_index", s.file_index},
               {"status", s.paused ? "paused" : "uploading"}}};
}

std::uint64_t UploadStore::bytes_of(const std::string& user) const {
  std::uint64_t n = 0;
  for (auto& [id, s] : sessions_)
    if (s.user == user) n += s.total_size;
  for (auto& [key, f] : files_)
    if (f.user == user) n += f.size;
  return n;
}

std::uint64_t UploadStore::bytes_total() const {
  std::uint64_t n = 0;
  for (auto& [id, s] : sessions_) n += s.total_size;
  for (auto& [key, f] : files_) n += f.size;
  return n;
}

UploadReply UploadStore::start(const std::string& user, std::uint64_t conn, const Json& p, std::int64_t now) {
  auto refuse = [&](const std::string& why) { return error("", why, "UPLOAD_START_FAILED"); };
  if (!p.is_object()) return refuse("payload must be an object {filename, total_size, total_chunks, chunk_size, ...}");
  Session s;
  s.filename = string_field(p, "filename");
  if (s.filename.empty() || s.filename.size() > 255 || s.filename.find('/') != std::string::npos || s.filename == "." ||
      s.filename == "..")
    return refuse("'filename' must be a file name (1 to 255 characters, no '/')");
  auto total_size = uint_field(p, "total_size"), total_chunks = uint_field(p, "total_chunks"),
       chunk_size = uint_field(p, "chunk_size");
  if (!total_size || !total_chunks || !chunk_size)
    return refuse("'total_size', 'total_chunks' and 'chunk_size' must be non-negative integers");
  if (*chunk_size == 0) return refuse("'chunk_size' must be at least 1");
  if (*total_size > limits_.max_file_bytes)
    return refuse(fmt::format("the file is {} bytes; at most {} are accepted", *total_size, limits_.max_file_bytes));
  std::uint64_t need = (*total_size + *chunk_size - 1) / *chunk_size;
  if (*total_size == 0) need = 0;
  if (*total_chunks != need)
    return refuse(fmt::format("{} bytes in chunks of {} make {} chunk(s), not {}", *total_size, *chunk_size, need, *total_chunks));
  expire(now);
  if (bytes_of(user) + *total_size > limits_.per_user_bytes)
    return refuse(fmt::format("this upload would take user '{}' over the {} bytes they may keep", user, limits_.per_user_bytes));
  if (bytes_total() + *total_size > limits_.total_bytes)
    return refuse(fmt::format("the gateway's upload space ({} bytes) is full", limits_.total_bytes));
  s.id = fmt::format("upload-{}-{}", now, ++next_);
  s.user = user;
  s.upload_group_id = string_field(p, "upload_group_id");
  s.file_index = uint_field(p, "file_index").value_or(0);
  s.total_size = *total_size;
  s.total_chunks = *total_chunks;
  s.chunk_size = *chunk_size;
  s.received.assign(*total_chunks, false);
  s.conn = conn;
  s.last_active = now;
  int fd = ::open(part_path(s).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return refuse(fmt::format("cannot create the upload file: {}", std::strerror(errno)));
  ::close(fd);
  try {
    // What a restarted gateway needs to take the session up again.
    keys::write_file_atomic(meta_path(s.id),
                            Json{{"user", s.user}, {"filename", s.filename}, {"upload_group_id", s.upload_group_id},
                                 {"file_index", s.file_index}, {"total_size", s.total_size},
                                 {"total_chunks", s.total_chunks}, {"chunk_size", s.chunk_size}, {"started_at", now}}
                                .dump());
  } catch (const std::exception& e) {
    remove_quietly(part_path(s));
    return refuse(fmt::format("cannot write the upload session: {}", e.what()));
  }
  auto& stored = sessions_.emplace(s.id, std::move(s)).first->second;
  return progress(stored);
}

UploadStore::Session* UploadStore::find(const std::string& user, const Json& p, std::string& session_id) {
  session_id = p.is_object() ? string_field(p, "session_id") : std::string();
  auto it = sessions_.find(session_id);
  if (it == sessions_.end() || it->second.user != user) return nullptr;  // another user's: not found
  return &it->second;
}

void UploadStore::drop(const std::string& session_id) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;
  remove_quietly(part_path(it->second));
  remove_quietly(meta_path(session_id));
  remove_quietly(log_path(session_id));
  sessions_.erase(it);
}

std::vector<UploadReply> UploadStore::chunk(const std::string& user, std::uint64_t conn, const Json& p, std::int64_t now) {
  std::string sid;
  Session* s = find(user, p, sid);
  if (!s) return {error(sid, "Upload session not found", "SESSION_NOT_FOUND")};
  if (s->paused)
    return {error(sid, "the upload session is paused: send file.upload.resume first", "SESSION_PAUSED")};
  auto index = uint_field(p, "chunk_index");
  if (!index || *index >= s->total_chunks)
    return {error(sid, fmt::format("'chunk_index' must be an integer from 0 to {}", s->total_chunks ? s->total_chunks - 1 : 0),
                  "INVALID_ENCODING")};
  auto data_it = p.find("data");
  if (data_it == p.end() || !data_it->is_string()) return {error(sid, "'data' must be a base64 string", "INVALID_ENCODING")};
  Bytes data;
  try {
    data = base64_decode(data_it->get_ref<const std::string&>());
  } catch (const std::exception&) {
    return {error(sid, "Chunk data encoding is invalid (not base64)", "INVALID_ENCODING")};
  }
  std::uint64_t offset = *index * s->chunk_size;
  std::uint64_t expected = std::min(s->chunk_size, s->total_size - offset);
  if (data.size() != expected)
    return {error(sid, fmt::format("chunk {} holds {} bytes; it must hold {}", *index, data.size(), expected), "INVALID_ENCODING")};
  int fd = ::open(part_path(*s).c_str(), O_WRONLY | O_CLOEXEC);
  bool ok = fd >= 0;
  for (std::size_t done = 0; ok && done < data.size();) {
    auto n = ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n <= 0) ok = false;
    else done += static_cast<std::size_t>(n);
  }
  int saved = errno;
  if (fd >= 0) ::close(fd);
  if (ok) {
    // The chunk's record, for a restarted gateway (appended: a torn line only loses this chunk).
    std::string line = fmt::format("{} {}\n", *index, sha256_hex(data.data(), data.size()));
    int log = ::open(log_path(sid).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    ok = log >= 0 && ::write(log, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    saved = errno;
    if (log >= 0) ::close(log);
  }
  if (!ok) {
    auto reply = error(sid, fmt::format("Failed to write chunk to disk: {}", std::strerror(saved)), "WRITE_FAILED");
    drop(sid);
    return {reply};
  }
  s->conn = conn;
  s->last_active = now;
  if (!s->received[*index]) {
    s->received[*index] = true;
    ++s->chunks_received;
    s->bytes += data.size();
  }
  std::vector<UploadReply> out{progress(*s)};
  if (s->chunks_received < s->total_chunks) return out;

  // Every chunk is in: hash the file and keep it.
  Sha256 hasher;
  std::ifstream in(part_path(*s), std::ios::binary);
  std::vector<char> buf(1 << 20);
  std::uint64_t read_total = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    auto n = static_cast<std::size_t>(in.gcount());
    read_total += n;
    hasher.update({reinterpret_cast<const std::uint8_t*>(buf.data()), n});
  }
  if (read_total != s->total_size) {
    out.push_back(error(sid, "the upload file changed on disk while it was written", "WRITE_FAILED"));
    drop(sid);
    return out;
  }
  const std::string digest = hex(hasher.finish());
  std::string hash = "sha256:" + digest;
  File f{.user = s->user, .hash = hash, .filename = s->filename, .size = s->total_size, .created = now};
  f.path = dir_ / "files" / fmt::format("{}-{}", s->id, digest);
  std::error_code ec;
  fs::rename(part_path(*s), f.path, ec);
  if (ec) {
    out.push_back(error(sid, fmt::format("Failed to keep the finished file: {}", ec.message()), "WRITE_FAILED"));
    drop(sid);
    return out;
  }
  try {
    keys::write_file_atomic(fs::path(f.path.string() + ".json"),
                            Json{{"user", f.user}, {"hash", hash}, {"filename", f.filename}, {"size", f.size},
                                 {"created", f.created}}
                                .dump());
  } catch (const std::exception& e) {
    remove_quietly(f.path);
    out.push_back(error(sid, fmt::format("Failed to keep the finished file: {}", e.what()), "WRITE_FAILED"));
    drop(sid);
    return out;
  }
  auto key = std::make_pair(f.user, hash);
  if (auto old = files_.find(key); old != files_.end()) {  // the same content again
    remove_quietly(old->second.path);
    remove_quietly(fs::path(old->second.path.string() + ".json"));
  }
  out.push_back({"file.upload.complete", Json{{"session_id", sid}, {"file_hash", hash}, {"size", f.size},
                                              {"filename", f.filename}, {"upload_group_id", s->upload_group_id},
                                              {"file_index", s->file_index}}});
  files_[key] = std::move(f);
  remove_quietly(meta_path(sid));
  remove_quietly(log_path(sid));
  sessions_.erase(sid);
  return out;
}

UploadReply UploadStore::pause(const std::string& user, const Json& p, std::int64_t now) {
  std::string sid;
  Session* s = find(user, p, sid);
  if (!s) return error(sid, "Upload session not found", "SESSION_NOT_FOUND");
  s->paused = true;
  s->last_active = now;
  return progress(*s);
}

UploadReply UploadStore::resume(const std::string& user, std::uint64_t conn, const Json& p, std::int64_t now) {
  std::string sid;
  Session* s = find(user, p, sid);
  if (!s) return error(sid, "Upload session not found", "SESSION_NOT_FOUND");
  // The part file must still hold what was received.
  std::uint64_t needed = 0;
  for (std::uint64_t i = 0; i < s->total_chunks; ++i)
    if (s->received[i]) needed = std::max(needed, i * s->chunk_size + std::min(s->chunk_size, s->total_size - i * s->chunk_size));
  std::error_code ec;
  auto size = fs::file_size(part_path(*s), ec);
  if (ec || !fs::is_regular_file(part_path(*s)) || size < needed) {
    drop(sid);
    return error(sid, "Failed to restore paused session: its data is gone; start the upload again", "SESSION_RESTORE_FAILED");
  }
  if (s->restored) {
    // Taken up after a restart: every chunk the log lists must still be there, unchanged.
    if (!data_intact(*s)) {
      drop(sid);
      return error(sid, "Failed to restore paused session: its data changed on disk; start the upload again",
                   "SESSION_RESTORE_FAILED");
    }
    s->restored = false;
    s->chunk_hashes.clear();
  }
  s->paused = false;
  s->conn = conn;
  s->last_active = now;
  return progress(*s);
}

void UploadStore::connection_closed(std::uint64_t conn) {
  for (auto& [id, s] : sessions_)
    if (s.conn == conn) s.paused = true;
}

void UploadStore::expire(std::int64_t now) {
  std::vector<std::string> idle;
  for (auto& [id, s] : sessions_)
    if (now - s.last_active >= limits_.session_ttl_s) idle.push_back(id);
  for (auto& id : idle) drop(id);
  for (auto it = files_.begin(); it != files_.end();) {
    if (now - it->second.created >= limits_.file_ttl_s) {
      remove_quietly(it->second.path);
      remove_quietly(fs::path(it->second.path.string() + ".json"));
      it = files_.erase(it);
    } else {
      ++it;
    }
  }
}

namespace {
bool is_file_ref(const Json& v) { return v.is_object() && v.size() == 1 && v.contains("$file"); }
}  // namespace

std::optional<std::string> UploadStore::resolve_file_ref(Json& v, const std::string& user, const std::string* port,
                                                         std::vector<FileInput>* streamed) const {
  if (!v["$file"].is_string()) return std::string("{\"$file\": ...} must name a file as \"sha256:<hex>\"");
  auto ref = v["$file"].get<std::string>();
  auto it = files_.find({user, ref});
  if (it == files_.end()) return fmt::format("no uploaded file {} (finished uploads of this user only; they expire)", ref);
  const File& file = it->second;
  if (limits_.max_file_input_bytes && file.size > limits_.max_file_input_bytes)
    return fmt::format("file {} is {} bytes; a call takes files of at most {} bytes (--max-file-input-bytes)", ref,
                       file.size, limits_.max_file_input_bytes);
  if (file.size > limits_.max_inline_file_bytes) {
    if (!port || !streamed)
      return fmt::format("file {} is {} bytes: a file over {} bytes travels chunked, so it must be a top-level input "
                         "({{\"inputs\": {{\"name\": {{\"$file\": ...}}}}}}), not inside a list or map",
                         ref, file.size, limits_.max_inline_file_bytes);
    std::error_code ec;
    if (fs::file_size(file.path, ec) != file.size || ec)
      return fmt::format("file {} cannot be read back intact (changed or damaged on disk); upload it again", ref);
    FileInput in{*port, file.path, file.size, {}};
    if (sodium_hex2bin(in.sha256.data(), in.sha256.size(), ref.c_str() + 7, ref.size() - 7, nullptr, nullptr, nullptr) != 0)
      return fmt::format("file {} has no valid sha256", ref);
    streamed->push_back(std::move(in));
    return std::nullopt;
  }
  std::ifstream in(file.path, std::ios::binary);
  Bytes bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() != file.size || "sha256:" + sha256_hex(bytes.data(), bytes.size()) != ref)
    return fmt::format("file {} cannot be read back intact (changed or damaged on disk); upload it again", ref);
  v = Json{{"$bytes", base64_encode(bytes)}};
  return std::nullopt;
}

std::optional<std::string> UploadStore::resolve_file_refs(Json& v, const std::string& user,
                                                          std::vector<FileInput>* streamed) const {
  if (streamed && v.is_object() && !is_file_ref(v)) {  // the top level: inputs by name
    for (auto it = v.begin(); it != v.end();) {
      const std::string port = it.key();
      std::size_t before = streamed->size();
      auto err = is_file_ref(*it) ? resolve_file_ref(*it, user, &port, streamed) : resolve_file_refs(*it, user);
      if (err) return err;
      it = streamed->size() > before ? v.erase(it) : std::next(it);  // streamed: not in the message
    }
    return std::nullopt;
  }
  if (v.is_array()) {
    for (auto& e : v)
      if (auto err = resolve_file_refs(e, user)) return err;
    return std::nullopt;
  }
  if (!v.is_object()) return std::nullopt;
  if (is_file_ref(v)) return resolve_file_ref(v, user, nullptr, nullptr);
  for (auto& [k, e] : v.items())
    if (auto err = resolve_file_refs(e, user)) return err;
  return std::nullopt;
}

}  // namespace muster::gateway
