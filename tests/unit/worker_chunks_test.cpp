// worker_chunks_test.cpp — the C++ worker SDK's chunked values (PROTOCOL.md §7.9) against a
// real musterd, driven by a raw caller (a DEALER speaking ClientMessages, so no client SDK is
// involved): a streamed input granted only as the handler reads; an output given as an
// OutputSource, sent within the caller's credit and checked by its reference; a handler waiting
// for input chunks stalls no other call; a worker that finds musterd restarted mid-stream stops
// the handler's reading. ChunkReceiver's streaming delivery is tested here too (no sockets).
// The example worker's echo and sha256 nodes are tested in tests/integration/test_chunk_worker_cpp.py.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include <sodium.h>
#include <zmq.hpp>

#include "daemon_process.hpp"
#include "running_worker.hpp"
#include "muster/align.hpp"
#include "muster/chunking.hpp"
#include "muster/client.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"
#include "muster/wire/client_generated.h"
#include "muster/worker.hpp"

using namespace muster;
using namespace std::chrono_literals;
using muster::test::DaemonProcess;
using muster::test::options_for;
using muster::test::RunningWorker;
using muster::test::wait_for_node;

namespace {

constexpr std::uint64_t MiB = 1 << 20;

// Byte i of the test values: a pattern whose every MiB differs.
std::uint8_t pattern(std::uint64_t i) { return static_cast<std::uint8_t>((i * 31) ^ (i >> 20)); }

std::vector<std::uint8_t> pattern_bytes(std::uint64_t from, std::size_t n) {
  std::vector<std::uint8_t> out(n);
  for (std::size_t k = 0; k < n; ++k) out[k] = pattern(from + k);
  return out;
}

// Hashed by libsodium: a reference independent of the SDK's own SHA-256 (OpenSSL, sha256.hpp).
std::array<std::uint8_t, 32> pattern_sha256(std::uint64_t size) {
  crypto_hash_sha256_state s;
  crypto_hash_sha256_init(&s);
  for (std::uint64_t at = 0; at < size; at += MiB) {
    auto piece = pattern_bytes(at, static_cast<std::size_t>(std::min(MiB, size - at)));
    crypto_hash_sha256_update(&s, piece.data(), piece.size());
  }
  std::array<std::uint8_t, 32> out{};
  crypto_hash_sha256_final(&s, out.data());
  return out;
}

// A caller speaking the client protocol by hand on its own DEALER.
struct RawCaller {
  zmq::context_t ctx{1};
  zmq::socket_t s{ctx, zmq::socket_type::dealer};
  explicit RawCaller(const DaemonProcess& d) {
    s.set(zmq::sockopt::linger, 0);
    s.connect(d.endpoint("client"));
  }
  void send(std::uint64_t rid, wire::ClientBody type, flatbuffers::FlatBufferBuilder& fbb,
            flatbuffers::Offset<void> body) {
    wire::ClientMessageBuilder b(fbb);
    b.add_request_id(rid);
    b.add_body_type(type);
    b.add_body(body);
    fbb.Finish(b.Finish(), wire::ClientMessageIdentifier());
    s.send(zmq::buffer(fbb.GetBufferPointer(), fbb.GetSize()), zmq::send_flags::none);
  }
  void submit(std::uint64_t rid, const std::string& node, const Map& inputs, std::uint64_t chunk_window) {
    flatbuffers::FlatBufferBuilder fbb;
    auto vec = create_nested_values(fbb, inputs);
    auto name = fbb.CreateString(node);
    send(rid, wire::ClientBody::Submit, fbb,
         wire::CreateSubmit(fbb, name, vec, 0, 30000, false, false, 0, false, false, false, 0, 0, chunk_window).Union());
  }
  void chunk(std::uint64_t rid, std::uint32_t stream, std::uint64_t offset, std::span<const std::uint8_t> data) {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.ForceVectorAlignment(data.size(), 1, 8);
    auto vec = fbb.CreateVector(data.data(), data.size());
    send(rid, wire::ClientBody::Chunk, fbb, wire::CreateChunk(fbb, rid, stream, offset, vec).Union());
  }
  void credit(std::uint64_t rid, std::uint32_t stream, std::uint64_t bytes) {
    flatbuffers::FlatBufferBuilder fbb;
    send(rid, wire::ClientBody::Credit, fbb, wire::CreateCredit(fbb, rid, stream, 0, bytes).Union());
  }
  void cancel(std::uint64_t rid) {
    flatbuffers::FlatBufferBuilder fbb;
    send(rid, wire::ClientBody::Cancel, fbb, wire::CreateCancel(fbb).Union());
  }
  // The next reply within `timeout` (its message kept alive in `keep`), or nullptr.
  const wire::ClientReply* next(zmq::message_t& keep, std::chrono::milliseconds timeout = 10s) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) == 0) return nullptr;
    do {
      REQUIRE(s.recv(keep, zmq::recv_flags::none));
    } while (keep.more());
    align_payload(keep);
    auto* r = read_client_reply(bytes_of(keep));
    REQUIRE(r != nullptr);
    return r;
  }
};

// Uploads a pattern value of `size` bytes as chunked input `port` (stream 1) of `node`, sending
// chunks as the worker grants; `on_credit` sees each Credit. Returns the terminal reply's type
// and the Failure's message, if any.
struct CallEnd {
  wire::ReplyBody type = wire::ReplyBody::NONE;
  std::string message;
  Map outputs;
};

}  // namespace

TEST_CASE("chunking: a streaming receiver keeps no bytes and checks the sha256 all the same") {
  Bytes value(pattern_bytes(0, 3 * MiB + 5));
  ChunkSender sender(value, 1, 0);
  ChunkReceiver receiver(sender.reference(), kChunkWindowBytes, ChunkDelivery::Stream);
  sender.on_credit(receiver.grant());
  std::uint64_t seen = 0;
  while (auto c = sender.next()) {
    REQUIRE_FALSE(receiver.on_chunk(c->offset, c->data));
    seen += c->data.size();
    sender.on_credit(receiver.grant());
  }
  CHECK(seen == value.size());
  CHECK(receiver.complete());
  CHECK_FALSE(receiver.check());
  CHECK(receiver.take().empty());  // nothing was kept

  auto wrong = sender.reference();
  wrong.sha256[0] ^= 1;
  ChunkReceiver bad(wrong, kChunkWindowBytes, ChunkDelivery::Stream);
  REQUIRE_FALSE(bad.on_chunk(0, value.span()));
  CHECK(bad.check() == std::optional<std::string>("chunked stream 1: sha256 mismatch"));
}

TEST_CASE("C++ worker chunks: a streamed input is granted only as the handler reads, and checked") {
  DaemonProcess daemon;
  auto opt = options_for(daemon, "chunks-reader");
  opt.capacity = 2;
  RunningWorker w(opt);
  std::atomic<std::uint64_t> read_so_far{0};
  std::atomic<bool> release{false};
  w.worker.node({.name = "slow_hash", .inputs = {{.name = "data", .type = "bytes", .required = true}}},
                [&](Context& ctx) {
                  auto& in = ctx.input_stream("data");
                  CHECK(ctx.input("data").kind() == ValueKind::Chunked);  // unread: still the reference
                  CHECK(in.size() == 24 * MiB);
                  std::vector<std::uint8_t> buffer(300 * 1024);  // reads that do not match the chunks
                  crypto_hash_sha256_state s;
                  crypto_hash_sha256_init(&s);
                  while (!release) std::this_thread::sleep_for(5ms);
                  for (std::size_t n; (n = in.read(buffer)) > 0;) {
                    crypto_hash_sha256_update(&s, buffer.data(), n);
                    read_so_far += n;
                  }
                  std::array<std::uint8_t, 32> digest{};
                  crypto_hash_sha256_final(&s, digest.data());
                  return Map{{"sha256", Value(Bytes(digest.begin(), digest.end()))}};
                },
                NodeOptions{.streamed_inputs = {"data"}});
  w.worker.node({.name = "quick"}, [](Context& ctx) { return ctx.take_inputs(); }, HandlerThread::Socket);
  w.start();
  Client client({.client_address = daemon.endpoint("client")});
  wait_for_node(client, "slow_hash");

  const std::uint64_t size = 24 * MiB;
  auto digest = pattern_sha256(size);
  RawCaller caller(daemon);
  caller.submit(1, "slow_hash", Map{{"data", Value(ChunkedValue{1, size, digest})}}, 0);
  zmq::message_t keep;
  auto* first = caller.next(keep);
  REQUIRE(first != nullptr);
  REQUIRE(first->body_type() == wire::ReplyBody::Credit);
  CHECK(first->body_as_Credit()->bytes() == kChunkWindowBytes);  // the first window, before any read
  std::uint64_t granted = first->body_as_Credit()->bytes(), sent = 0;
  while (sent < granted) {
    caller.chunk(1, 1, sent, pattern_bytes(sent, MiB));
    sent += MiB;
  }
  // While the handler holds its input unread, the worker grants nothing more and serves others.
  CHECK(caller.next(keep, 500ms) == nullptr);
  CHECK(client.call("quick", {{"x", Value(1LL)}}, {.timeout_ms = 5000}) == Map{{"x", Value(1LL)}});
  release = true;
  CallEnd end;
  while (end.type == wire::ReplyBody::NONE) {
    auto* r = caller.next(keep);
    REQUIRE(r != nullptr);
    if (r->body_type() == wire::ReplyBody::Credit) {
      auto bytes = r->body_as_Credit()->bytes();
      // Never more than one window ahead of what the handler took (read, or the one chunk its
      // InputStream holds for the next read).
      CHECK(bytes <= read_so_far.load() + kChunkWindowBytes + kChunkBytes);
      for (granted = std::max(granted, bytes); sent < granted; sent += MiB) caller.chunk(1, 1, sent, pattern_bytes(sent, MiB));
    } else if (r->body_type() == wire::ReplyBody::Result) {
      end.type = r->body_type();
      end.outputs = decode_values(payload_bytes(r->body_as_Result()->outputs()));
    } else {
      FAIL("unexpected reply ", static_cast<int>(r->body_type()));
    }
  }
  CHECK(end.outputs == Map{{"sha256", Value(Bytes(digest.begin(), digest.end()))}});
}

namespace {
// An output of `size` pattern bytes, made as it is read (never held whole).
struct PatternSource : OutputSource {
  std::uint64_t size, at = 0;
  std::atomic<std::uint64_t>* produced;
  PatternSource(std::uint64_t n, std::atomic<std::uint64_t>* p) : size(n), produced(p) {}
  std::size_t read(std::span<std::uint8_t> buffer) override {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), std::min<std::uint64_t>(size - at, 100000)));
    for (std::size_t k = 0; k < n; ++k) buffer[k] = pattern(at + k);
    at += n;
    *produced = at;
    return n;
  }
};
}  // namespace

TEST_CASE("C++ worker chunks: an OutputSource output is sent within the caller's credit, then its reference") {
  DaemonProcess daemon;
  RunningWorker w(options_for(daemon, "chunks-source"));
  std::atomic<std::uint64_t> produced{0};
  const std::uint64_t size = 20 * MiB + 12345;
  w.worker.node({.name = "make", .outputs = {{.name = "blob", .type = "bytes"}}}, [&](Context& ctx) {
    ctx.output_stream("blob", std::make_unique<PatternSource>(size, &produced));
    return Map{{"blob", Value("replaced by the stream")}, {"note", Value("inline")}};
  });
  w.start();
  Client client({.client_address = daemon.endpoint("client")});
  wait_for_node(client, "make");

  SUBCASE("the caller takes chunks") {
    RawCaller caller(daemon);
    caller.submit(2, "make", {}, 2 * MiB);  // an initial window of 2 MiB
    zmq::message_t keep;
    std::uint64_t received = 0, granted = 2 * MiB;
    crypto_hash_sha256_state s;
    crypto_hash_sha256_init(&s);
    Map outputs;
    for (bool done = false; !done;) {
      auto* r = caller.next(keep);
      REQUIRE(r != nullptr);
      switch (r->body_type()) {
        case wire::ReplyBody::Chunk: {
          auto* c = r->body_as_Chunk();
          REQUIRE(c->stream() == 2);
          REQUIRE(c->offset() == received);
          CHECK(c->offset() + c->data()->size() <= granted);  // the strict send rule
          CHECK(c->data()->size() <= kChunkBytes);
          crypto_hash_sha256_update(&s, c->data()->data(), c->data()->size());
          received += c->data()->size();
          // The source is read at most one chunk beyond the credit (the piece that waits for it).
          CHECK(produced.load() <= granted + kChunkBytes);
          if (received == granted) {  // grant only once the window is used up: the worker must wait
            CHECK(caller.next(keep, 300ms) == nullptr);
            granted += 3 * MiB;
            caller.credit(2, 2, granted);
          }
          break;
        }
        case wire::ReplyBody::Result:
          outputs = decode_values(payload_bytes(r->body_as_Result()->outputs()));
          done = true;
          break;
        default:
          FAIL("unexpected reply ", static_cast<int>(r->body_type()));
      }
    }
    std::array<std::uint8_t, 32> digest{};
    crypto_hash_sha256_final(&s, digest.data());
    CHECK(received == size);
    CHECK(digest == pattern_sha256(size));
    CHECK(outputs == Map{{"note", Value("inline")}, {"blob", Value(ChunkedValue{2, size, digest})}});
  }
  SUBCASE("the caller takes no chunks (chunk_window_bytes 0): WorkerError saying so") {
    RawCaller caller(daemon);
    caller.submit(3, "make", {}, 0);
    zmq::message_t keep;
    auto* r = caller.next(keep);
    REQUIRE(r != nullptr);
    REQUIRE(r->body_type() == wire::ReplyBody::Failure);
    CHECK(r->body_as_Failure()->code() == wire::ErrorCode::WorkerError);
    CHECK(std::string(r->body_as_Failure()->message()->str()).find("the caller takes no chunked outputs") !=
          std::string::npos);
    CHECK(produced.load() == 0);
  }
}

TEST_CASE("C++ worker chunks: musterd restarted mid-upload (another instance) stops the handler's read") {
  auto daemon = std::make_unique<DaemonProcess>();
  RunningWorker w(options_for(*daemon, "chunks-lost"));
  std::mutex mu;
  std::string error;
  std::atomic<bool> ended{false};
  w.worker.node({.name = "hash", .inputs = {{.name = "data", .type = "bytes", .required = true}}},
                [&](Context& ctx) {
                  try {
                    auto& in = ctx.input_stream("data");
                    while (!in.next().empty()) {
                    }
                  } catch (const WorkError& e) {
                    std::lock_guard lock(mu);
                    error = e.what();
                  }
                  ended = true;
                  return Map{};
                },
                NodeOptions{.streamed_inputs = {"data"}});
  w.start();
  {
    Client client({.client_address = daemon->endpoint("client")});
    wait_for_node(client, "hash");
  }
  RawCaller caller(*daemon);
  caller.submit(4, "hash", Map{{"data", Value(ChunkedValue{1, 64 * MiB, {}})}}, 0);
  zmq::message_t keep;
  auto* r = caller.next(keep);
  REQUIRE(r != nullptr);
  REQUIRE(r->body_type() == wire::ReplyBody::Credit);
  caller.chunk(4, 1, 0, pattern_bytes(0, MiB));
  std::this_thread::sleep_for(200ms);
  CHECK_FALSE(ended.load());  // waiting for the next chunk
  ::kill(daemon->pid, SIGKILL);  // musterd is gone: no ping, the worker reconnects
  ::waitpid(daemon->pid, nullptr, 0);
  // A new musterd on the same address: the worker attaches to another instance, which does not
  // know the stream (§7.9 R4: aborted, not resumed).
  daemon->pid = muster::test::spawn_musterd(daemon->dir / "run", {"--data-dir", (daemon->dir / "data").string(),
                                                                  "--ping-interval-ms", "300", "--log-level", "warn"});
  for (int i = 0; i < 1000 && !ended; ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(ended.load());
  std::lock_guard lock(mu);
  CHECK(error == "the request was aborted while input data was read (1048576 of 67108864 bytes)");
}
