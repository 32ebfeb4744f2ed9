// chunk_sources_test.cpp — the caller's side of chunked values without sockets: a ChunkSender
// fed from a ByteSource (a file read per chunk, hashed in one pass or with a known sha256),
// FileSource's errors, the caller's output streams (ChunkedOutputs: order, credit as taken,
// size and sha256 checks) and DirectorySink (nothing left under a port's name but a checked
// value). worker/cpp/include/muster/{byte_source,chunked_outputs,output_sink}.hpp.
#include <doctest/doctest.h>

#include <fstream>

#include "muster/byte_source.hpp"
#include "muster/chunked_outputs.hpp"
#include "muster/chunking.hpp"
#include "muster/output_sink.hpp"
#include "temp_dir.hpp"

using namespace muster;
namespace fs = std::filesystem;

namespace {

std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed = 0) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 131 + (i >> 10) + seed);
  return v;
}

fs::path write(const fs::path& path, const std::vector<std::uint8_t>& data) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  return path;
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// What the sender sends under the given credit steps, reassembled.
std::vector<std::uint8_t> drain(ChunkSender& tx, std::uint64_t step) {
  std::vector<std::uint8_t> got;
  std::uint64_t granted = 0;
  while (!tx.done()) {
    granted += step;
    tx.on_credit(granted);
    while (auto c = tx.next()) {
      CHECK(c->offset == got.size());
      CHECK(c->offset + c->data.size() <= granted);  // strict: never past the grant
      got.insert(got.end(), c->data.begin(), c->data.end());
    }
  }
  return got;
}

}  // namespace

TEST_CASE("chunk sources: a file is sent chunk by chunk within the credit, with the sha256 of its bytes") {
  test::TempDir dir;
  auto data = pattern(5 * 1024 + 7);
  auto source = std::make_shared<FileSource>(write(dir.path / "in.bin", data));
  CHECK(source->size() == data.size());
  ChunkSender tx(source, 3, 0, 1024);
  CHECK(tx.reference().stream == 3);
  CHECK(tx.reference().size == data.size());
  CHECK(tx.reference().sha256 == sha256(data));  // hashed in one pass before the first chunk
  CHECK_FALSE(tx.next().has_value());            // no credit, no chunk
  CHECK(drain(tx, 700) == data);
  // The same bytes from memory: the same reference.
  ChunkSender from_bytes(Bytes(data), 3);
  CHECK(from_bytes.reference() == tx.reference());
}

TEST_CASE("chunk sources: a known sha256 is taken as given (the receiver checks it)") {
  test::TempDir dir;
  auto data = pattern(3000);
  std::array<std::uint8_t, 32> claimed{};
  claimed[0] = 1;
  ChunkSender tx(std::make_shared<FileSource>(write(dir.path / "in.bin", data), claimed), 1);
  CHECK(tx.reference().sha256 == claimed);
  ChunkSender mem(std::make_shared<BytesSource>(Bytes(data)), 1, 1 << 20);
  CHECK(mem.reference().sha256 == sha256(data));
  CHECK(drain(mem, 1 << 20) == data);
}

TEST_CASE("chunk sources: a file that cannot be read, or shrinks while sent, is a clear error") {
  test::TempDir dir;
  CHECK_THROWS_WITH_AS(FileSource(dir.path / "missing"),
                       doctest::Contains(("cannot read " + (dir.path / "missing").string() + ": No such file or directory").c_str()),
                       std::runtime_error);
  CHECK_THROWS_WITH_AS(FileSource(dir.path), doctest::Contains("it is a directory"), std::runtime_error);
  auto path = write(dir.path / "in.bin", pattern(4096));
  ChunkSender tx(std::make_shared<FileSource>(path), 1, 1 << 20, 1024);
  REQUIRE(tx.next().has_value());
  fs::resize_file(path, 1500);
  CHECK_THROWS_WITH_AS(tx.next(), doctest::Contains("it ends at 1500 bytes, 4096 were expected"), std::runtime_error);
  CHECK(tx.sent() == 1024);  // the failed read counts as nothing sent
}

TEST_CASE("chunked outputs: held in memory and returned as Bytes once size and sha256 check out") {
  ChunkedOutputs rx(2048);
  auto data = pattern(5000);
  ChunkSender tx(Bytes(data), 2, 2048, 1000);
  std::vector<ChunkedOutputs::Grant> grants;
  while (!tx.done()) {
    while (auto c = tx.next()) {
      std::optional<ChunkedOutputs::Grant> g;
      REQUIRE_FALSE(rx.on_chunk(2, c->offset, c->data, g));
      if (g) {
        grants.push_back(*g);
        tx.on_credit(g->bytes);
      }
    }
  }
  // Credit as taken, one window ahead, in steps of half a window at least.
  REQUIRE(grants.size() >= 2);
  CHECK(grants.front().stream == 2);
  CHECK(grants.front().bytes == 2000 + 2048);  // 1000 taken is under half a window: no grant yet
  Map outputs{{"data", Value(tx.reference())}, {"n", Value(std::int64_t{1})}};
  REQUIRE_FALSE(rx.resolve(outputs));
  CHECK(outputs.find("data")->as_bytes() == Bytes(data));
  CHECK(outputs.find("n")->as_int() == 1);
}

TEST_CASE("chunked outputs: an odd stream, short, a wrong sha256, a stream named twice are refused") {
  auto data = pattern(3000);
  ChunkSender tx(Bytes(data), 2, 1 << 20, 1000);
  auto a = *tx.next();
  auto b = *tx.next();
  auto c = *tx.next();
  std::optional<ChunkedOutputs::Grant> g;
  {
    ChunkedOutputs rx(1 << 20);
    CHECK(rx.on_chunk(1, 0, a.data, g) == "a chunk of stream 1, not one of the worker's (even) streams");
    REQUIRE_FALSE(rx.on_chunk(2, a.offset, a.data, g));
    Map outputs{{"data", Value(tx.reference())}};
    CHECK(rx.resolve(outputs) == "output data: chunked stream 2: 1000 of 3000 bytes received");
  }
  {
    ChunkedOutputs rx(1 << 20);
    std::vector<std::uint8_t> corrupt(b.data.begin(), b.data.end());
    corrupt[5] ^= 1;
    REQUIRE_FALSE(rx.on_chunk(2, a.offset, a.data, g));
    REQUIRE_FALSE(rx.on_chunk(2, b.offset, corrupt, g));
    REQUIRE_FALSE(rx.on_chunk(2, c.offset, c.data, g));
    Map outputs{{"data", Value(tx.reference())}};
    CHECK(rx.resolve(outputs) == "output data: chunked stream 2: sha256 mismatch");
  }
  {
    ChunkedOutputs rx(1 << 20);
    for (auto* x : {&a, &b, &c}) REQUIRE_FALSE(rx.on_chunk(2, x->offset, x->data, g));
    Map outputs{{"one", Value(tx.reference())}, {"two", Value(tx.reference())}};
    CHECK(rx.resolve(outputs) == "output two: chunked stream 2 is named by another output too");
  }
  // An empty value has no chunks: its reference checks against nothing received.
  ChunkedOutputs rx(1 << 20);
  Map outputs{{"empty", Value(ChunkedValue{4, 0, sha256({})})}};
  REQUIRE_FALSE(rx.resolve(outputs));
  CHECK(outputs.find("empty")->as_bytes().empty());
}

TEST_CASE("chunked outputs resume (§7.9 R1-R3): a gap asks once at what was taken; overlaps are trimmed; a stall asks again") {
  auto data = pattern(5000);
  ChunkSender tx(Bytes(data), 2, 1 << 20, 1000);
  std::vector<std::vector<std::uint8_t>> copies;
  while (auto c = tx.next()) copies.emplace_back(c->data.begin(), c->data.end());
  using std::chrono::milliseconds;
  auto t0 = ResumeRule::Clock::now();
  test::TempDir dir;
  for (bool to_sink : {false, true}) {
    CAPTURE(to_sink);
    auto sink = to_sink ? std::make_shared<DirectorySink>(dir.path) : nullptr;
    ChunkedOutputs rx(8192, sink, milliseconds(100));
    std::optional<ChunkedOutputs::Grant> g;
    REQUIRE_FALSE(rx.on_chunk(2, 0, copies[0], g, t0));
    CHECK_FALSE(g);
    REQUIRE_FALSE(rx.on_chunk(2, 2000, copies[2], g, t0));  // [1000, 2000) lost: dropped, not an error
    REQUIRE(g);
    CHECK(g->resume);
    CHECK(g->resume_offset == 1000);
    CHECK(g->bytes == 8192);
    g.reset();
    REQUIRE_FALSE(rx.on_chunk(2, 3000, copies[3], g, t0 + milliseconds(5)));
    CHECK_FALSE(g);  // one resume Credit per loss
    CHECK(rx.stalled(t0 + milliseconds(50)).empty());
    // The worker goes back to 1000; a chunk it sends from 500 is trimmed, one taken is dropped.
    std::vector<std::uint8_t> overlap(data.begin() + 500, data.begin() + 2000);
    REQUIRE_FALSE(rx.on_chunk(2, 500, overlap, g, t0));
    REQUIRE_FALSE(rx.on_chunk(2, 1000, copies[1], g, t0));
    REQUIRE_FALSE(rx.on_chunk(2, 2000, copies[2], g, t0 + milliseconds(10)));
    CHECK(rx.received() == 3000);
    // The last two chunks lost: no chunk reveals it; the stall does, after resume_after, and again.
    CHECK(rx.stalled(t0 + milliseconds(60)).empty());
    auto due = rx.stalled(t0 + milliseconds(120));
    REQUIRE(due.size() == 1);
    CHECK(due[0].stream == 2);
    CHECK(due[0].resume);
    CHECK(due[0].resume_offset == 3000);
    CHECK(rx.stalled(t0 + milliseconds(150)).empty());
    CHECK(rx.stalled(t0 + milliseconds(230)).size() == 1);
    REQUIRE_FALSE(rx.on_chunk(2, 3000, copies[3], g, t0 + milliseconds(240)));
    REQUIRE_FALSE(rx.on_chunk(2, 4000, copies[4], g, t0 + milliseconds(240)));
    Map outputs{{"data", Value(tx.reference())}};
    REQUIRE_FALSE(rx.resolve(outputs));
    if (to_sink) {
      CHECK(slurp(dir.path / "data") == std::string(data.begin(), data.end()));
    } else {
      CHECK(outputs.find("data")->as_bytes() == Bytes(data));
    }
    CHECK(rx.stalled(t0 + milliseconds(900)).empty());  // resolved: nothing more to ask
  }
}

TEST_CASE("directory sink: a stream becomes dir/<port> only once committed; otherwise nothing is left") {
  test::TempDir dir;
  auto out = dir.path / "out";
  auto data = pattern(2500);
  ChunkSender tx(Bytes(data), 2, 1 << 20, 1000);
  ChunkSender other(Bytes(pattern(10, 9)), 4, 1 << 20);
  {
    auto sink = std::make_shared<DirectorySink>(out);  // created
    ChunkedOutputs rx(1 << 20, sink);
    std::optional<ChunkedOutputs::Grant> g;
    while (auto c = tx.next()) REQUIRE_FALSE(rx.on_chunk(2, c->offset, c->data, g));
    while (auto c = other.next()) REQUIRE_FALSE(rx.on_chunk(4, c->offset, c->data, g));
    CHECK_FALSE(fs::exists(out / "data"));  // not before the Result named it
    Map outputs{{"data", Value(tx.reference())}};
    REQUIRE_FALSE(rx.resolve(outputs));
    CHECK(outputs.find("data")->as_chunked() == tx.reference());  // the reference stays
    CHECK(slurp(out / "data") == std::string(data.begin(), data.end()));
  }  // stream 4, never named, is discarded
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(out)) names.push_back(e.path().filename().string());
  CHECK(names == std::vector<std::string>{"data"});

  // A call that ends before its Result (cancel, deadline, lost connection): nothing is left.
  fs::remove(out / "data");
  {
    auto sink = std::make_shared<DirectorySink>(out);
    ChunkedOutputs rx(1 << 20, sink);
    std::optional<ChunkedOutputs::Grant> g;
    ChunkSender again(Bytes(data), 2, 1 << 20, 1000);
    auto c = *again.next();
    REQUIRE_FALSE(rx.on_chunk(2, c.offset, c.data, g));
    CHECK_FALSE(fs::is_empty(out));  // the partial stream, aside
  }
  CHECK(fs::is_empty(out));
}

TEST_CASE("directory sink: a dir that cannot be written, and a port that cannot name a file, are refused") {
  test::TempDir dir;
  write(dir.path / "a-file", {1});
  CHECK_THROWS_WITH_AS(DirectorySink(dir.path / "a-file" / "out"),
                       doctest::Contains(("cannot write to " + (dir.path / "a-file" / "out").string()).c_str()), std::runtime_error);
  DirectorySink sink(dir.path);
  CHECK_THROWS_WITH_AS(sink.path_of("../escape"), doctest::Contains("cannot name a file"), std::runtime_error);
  CHECK_THROWS_AS(sink.path_of(".."), std::runtime_error);
  CHECK_THROWS_AS(sink.path_of(""), std::runtime_error);
  auto small = pattern(10);
  CHECK(sink.write_file("small", small) == dir.path / "small");
  CHECK(slurp(dir.path / "small") == std::string(small.begin(), small.end()));
}
