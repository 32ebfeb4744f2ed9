// gateway_uploads.cpp — the upload store: chunks in any order, the sha256 of the result, pause
// and resume, users kept apart, quotas, expiry, file references in call inputs.
#include <doctest/doctest.h>

#include <sodium.h>

#include <filesystem>

#include <fmt/format.h>

#include "muster/gateway/uploads.hpp"
#include "temp_dir.hpp"

using namespace muster;
using namespace muster::gateway;

namespace {
std::string b64(std::string_view s) { return base64_encode(Bytes(s.begin(), s.end())); }
std::string sha256_of(std::string_view s) {
  unsigned char d[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(d, reinterpret_cast<const unsigned char*>(s.data()), s.size());
  std::string out = "sha256:";
  for (unsigned char c : d) out += fmt::format("{:02x}", c);
  return out;
}
Json start_payload(std::uint64_t size, std::uint64_t chunks, std::uint64_t chunk_size) {
  return Json{{"filename", "f.txt"}, {"total_size", size}, {"total_chunks", chunks}, {"chunk_size", chunk_size},
              {"upload_group_id", "g"}, {"file_index", 0}};
}
Json chunk(const std::string& sid, std::uint64_t i, std::string_view data) {
  return Json{{"session_id", sid}, {"chunk_index", i}, {"data", b64(data)}};
}
}  // namespace

TEST_CASE("gateway uploads: chunks in any order make the file; its sha256 is reported and usable") {
  muster::test::TempDir dir;
  UploadStore store(dir.path / "uploads", UploadLimits{});
  auto started = store.start("alice", 1, start_payload(10, 3, 4), 100);
  REQUIRE(started.type == "file.upload.progress");
  std::string sid = started.payload["session_id"];
  auto r = store.chunk("alice", 1, chunk(sid, 2, "89"), 101);
  REQUIRE(r.size() == 1);
  CHECK(r[0].payload["chunks_received"] == 1);
  CHECK(r[0].payload["bytes_uploaded"] == 2);
  store.chunk("alice", 1, chunk(sid, 0, "0123"), 101);
  store.chunk("alice", 1, chunk(sid, 0, "0123"), 101);  // a repeated chunk counts once
  r = store.chunk("alice", 1, chunk(sid, 1, "4567"), 102);
  REQUIRE(r.size() == 2);
  CHECK(r[0].payload["percentage"] == 100.0);
  CHECK(r[1].type == "file.upload.complete");
  CHECK(r[1].payload["file_hash"] == sha256_of("0123456789"));
  Json inputs = Json{{"data", {{"$file", sha256_of("0123456789")}}}, {"list", Json::array({{{"$file", sha256_of("0123456789")}}})}};
  REQUIRE_FALSE(store.resolve_file_refs(inputs, "alice"));
  CHECK(inputs["data"]["$bytes"] == b64("0123456789"));
  CHECK(inputs["list"][0]["$bytes"] == b64("0123456789"));
  // Another user cannot use it, nor a missing one.
  Json theirs = Json{{"data", {{"$file", sha256_of("0123456789")}}}};
  CHECK(store.resolve_file_refs(theirs, "bob")->find("no uploaded file") != std::string::npos);
  CHECK(store.bytes_of("alice") == 10);
  store.expire(102 + 86400);
  Json later = Json{{"data", {{"$file", sha256_of("0123456789")}}}};
  CHECK(store.resolve_file_refs(later, "alice"));  // expired
  CHECK(store.bytes_total() == 0);
}

TEST_CASE("gateway uploads: sessions belong to their user; pause, close and resume") {
  muster::test::TempDir dir;
  UploadStore store(dir.path / "uploads", UploadLimits{});
  std::string sid = store.start("alice", 1, start_payload(8, 2, 4), 100).payload["session_id"];
  CHECK(store.chunk("bob", 2, chunk(sid, 0, "0123"), 100)[0].payload["code"] == "SESSION_NOT_FOUND");
  CHECK(store.pause("bob", Json{{"session_id", sid}}, 100).payload["code"] == "SESSION_NOT_FOUND");
  store.chunk("alice", 1, chunk(sid, 0, "0123"), 100);
  store.connection_closed(1);
  CHECK(store.chunk("alice", 1, chunk(sid, 1, "4567"), 101)[0].payload["code"] == "SESSION_PAUSED");
  auto resumed = store.resume("alice", 3, Json{{"session_id", sid}}, 102);
  CHECK(resumed.payload["status"] == "uploading");
  CHECK(resumed.payload["chunks_received"] == 1);
  CHECK(store.chunk("alice", 3, chunk(sid, 1, "4567"), 103).back().type == "file.upload.complete");
}

TEST_CASE("gateway uploads: bad starts, bad chunks, quotas, idle sessions") {
  muster::test::TempDir dir;
  UploadLimits limits;
  limits.per_user_bytes = 100;
  limits.total_bytes = 150;
  limits.session_ttl_s = 60;
  UploadStore store(dir.path / "uploads", limits);
  auto code = [](const UploadReply& r) { return r.payload["code"].get<std::string>(); };
  CHECK(code(store.start("a", 1, Json::array(), 0)) == "UPLOAD_START_FAILED");
  CHECK(code(store.start("a", 1, start_payload(10, 2, 4), 0)) == "UPLOAD_START_FAILED");  // 10/4 is 3 chunks
  CHECK(code(store.start("a", 1, start_payload(101, 1, 101), 0)) == "UPLOAD_START_FAILED");  // quota
  auto bad_name = start_payload(1, 1, 1);
  bad_name["filename"] = "a/b";
  CHECK(code(store.start("a", 1, bad_name, 0)) == "UPLOAD_START_FAILED");
  std::string sid = store.start("a", 1, start_payload(100, 1, 100), 0).payload["session_id"];
  CHECK(code(store.start("b", 2, start_payload(60, 1, 60), 0)) == "UPLOAD_START_FAILED");  // total
  CHECK(code(store.chunk("a", 1, Json{{"session_id", sid}, {"chunk_index", 0}, {"data", "%%%"}}, 1)[0]) == "INVALID_ENCODING");
  CHECK(code(store.chunk("a", 1, chunk(sid, 1, "x"), 1)[0]) == "INVALID_ENCODING");  // no chunk 1
  CHECK(code(store.chunk("a", 1, chunk(sid, 0, "x"), 1)[0]) == "INVALID_ENCODING");  // wrong size
  store.expire(61);
  CHECK(code(store.chunk("a", 1, chunk(sid, 0, std::string(100, 'x')), 62)[0]) == "SESSION_NOT_FOUND");
  CHECK(store.bytes_total() == 0);
  CHECK(std::filesystem::is_empty(dir.path / "uploads" / "partial"));
}

TEST_CASE("gateway uploads: finished files and open sessions survive a restart of the store") {
  muster::test::TempDir dir;
  std::string sid, done;
  {
    UploadStore store(dir.path / "uploads", UploadLimits{});
    auto r = store.start("alice", 1, start_payload(4, 1, 4), 100);
    store.chunk("alice", 1, chunk(r.payload["session_id"], 0, "abcd"), 100);
    done = sha256_of("abcd");
    sid = store.start("alice", 1, start_payload(10, 3, 4), 100).payload["session_id"];
    store.chunk("alice", 1, chunk(sid, 0, "0123"), 101);
    store.chunk("alice", 1, chunk(sid, 2, "89"), 101);
  }
  UploadStore store(dir.path / "uploads", UploadLimits{}, 200);
  // The finished file still resolves, for its user only.
  Json inputs = Json{{"f", {{"$file", done}}}};
  REQUIRE_FALSE(store.resolve_file_refs(inputs, "alice"));
  CHECK(inputs["f"]["$bytes"] == b64("abcd"));
  Json theirs = Json{{"f", {{"$file", done}}}};
  CHECK(store.resolve_file_refs(theirs, "bob"));
  // The session is paused, only its user can resume it, with the chunks it had.
  CHECK(store.chunk("alice", 2, chunk(sid, 1, "4567"), 201)[0].payload["code"] == "SESSION_PAUSED");
  CHECK(store.resume("bob", 2, Json{{"session_id", sid}}, 201).payload["code"] == "SESSION_NOT_FOUND");
  auto resumed = store.resume("alice", 2, Json{{"session_id", sid}}, 201);
  REQUIRE(resumed.type == "file.upload.progress");
  CHECK(resumed.payload["chunks_received"] == 2);
  CHECK(resumed.payload["bytes_uploaded"] == 6);
  auto r = store.chunk("alice", 2, chunk(sid, 1, "4567"), 202);
  REQUIRE(r.size() == 2);
  CHECK(r[1].payload["file_hash"] == sha256_of("0123456789"));
  // New sessions do not reuse a restored id.
  CHECK(store.start("alice", 2, start_payload(1, 1, 1), 100).payload["session_id"] != sid);
}

TEST_CASE("gateway uploads: after a restart a session whose data is gone or damaged fails to restore") {
  muster::test::TempDir dir;
  std::string gone, damaged, torn;
  {
    UploadStore store(dir.path / "uploads", UploadLimits{});
    for (auto* id : {&gone, &damaged, &torn}) {
      *id = store.start("alice", 1, start_payload(8, 2, 4), 100).payload["session_id"];
      store.chunk("alice", 1, chunk(*id, 0, "0123"), 100);
    }
  }
  auto partial = dir.path / "uploads" / "partial";
  std::filesystem::remove(partial / (gone + ".part"));
  {
    std::FILE* f = std::fopen((partial / (damaged + ".part")).c_str(), "r+b");
    REQUIRE(f);
    std::fputs("X", f);  // same size, other bytes
    std::fclose(f);
  }
  {
    std::FILE* f = std::fopen((partial / (torn + ".json")).c_str(), "wb");
    REQUIRE(f);
    std::fputs("{\"user\": \"ali", f);  // a description that is not JSON: the session is gone
    std::fclose(f);
  }
  UploadStore store(dir.path / "uploads", UploadLimits{}, 200);
  for (auto* id : {&gone, &damaged}) {
    auto r = store.resume("alice", 2, Json{{"session_id", *id}}, 201);
    CHECK(r.payload["code"] == "SESSION_RESTORE_FAILED");
    // and it is dropped
    CHECK(store.resume("alice", 2, Json{{"session_id", *id}}, 201).payload["code"] == "SESSION_NOT_FOUND");
  }
  CHECK(store.resume("alice", 2, Json{{"session_id", torn}}, 201).payload["code"] == "SESSION_NOT_FOUND");
  CHECK_FALSE(std::filesystem::exists(partial / (torn + ".part")));
  CHECK(store.bytes_of("alice") == 0);
}
