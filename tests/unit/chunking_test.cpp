// chunking_test.cpp — one chunked stream's sender and receiver (worker/cpp/chunking.hpp,
// PROTOCOL.md §7.9): chunks within the credit, in order, and the receiver's size and sha256
// check, including a corrupted chunk; and the SHA-256 they use (sha256.hpp, OpenSSL) against
// the FIPS 180-2 vectors and libsodium's, whole or fed in uneven pieces; the resend keep of a
// source read once (SentBytesKeep), which shares the messages it keeps; a received chunk kept
// in the message that brought it (receive_piece).
#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <map>

#include <sodium.h>

#include <fmt/format.h>
#include <zmq.hpp>

#include "muster/chunking.hpp"
#include "muster/sha256.hpp"

using namespace muster;

namespace {

Bytes pattern(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 131 + (i >> 10));
  return Bytes(std::move(v));
}

std::vector<std::uint8_t> vec(const Bytes& b) { return {b.begin(), b.end()}; }

}  // namespace

namespace {
std::string hex(const Sha256Digest& digest) {
  std::string out;
  for (auto b : digest) out += fmt::format("{:02x}", b);
  return out;
}
std::span<const std::uint8_t> bytes_of(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}
}  // namespace

TEST_CASE("chunking: sha256 gives the FIPS 180-2 SHA-256 of \"\", \"abc\" and a two-block message") {
  CHECK(hex(sha256({})) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hex(Sha256().finish()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hex(sha256(bytes_of("abc"))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex(sha256(bytes_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("chunking: 3 MiB fed to Sha256 in uneven pieces hash as in one call, and as libsodium hashes them") {
  const Bytes value = pattern(3u << 20);
  auto data = value.span();
  Sha256 running;
  std::size_t piece = 1;
  for (std::size_t at = 0; at < data.size(); piece = piece * 7 + 3) {  // 1, 10, 73, ... bytes, then wrapping
    auto n = std::min(data.size() - at, piece % 300000 + 1);
    running.update(data.subspan(at, n));
    at += n;
  }
  running.update({});  // nothing: changes nothing
  auto whole = sha256(data);
  CHECK(running.finish() == whole);
  std::array<std::uint8_t, 32> reference{};
  REQUIRE(sodium_init() >= 0);
  crypto_hash_sha256(reference.data(), data.data(), data.size());
  CHECK(whole == reference);
}

TEST_CASE("chunking: Sha256::finish leaves the hash running, and a copy continues from the same bytes") {
  Sha256 a;
  a.update(bytes_of("ab"));
  CHECK(hex(a.finish()) == hex(sha256(bytes_of("ab"))));
  Sha256 b = a;
  a.update(bytes_of("c"));
  CHECK(hex(a.finish()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(b.finish() == sha256(bytes_of("ab")));  // the copy did not see "c"
  b = a;
  CHECK(hex(b.finish()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 moved = std::move(b);
  b = a;  // a moved-from hash takes a copy again
  CHECK(b.finish() == moved.finish());
}

TEST_CASE("chunking: the sender stays within the credit; the receiver rebuilds and checks the value") {
  const std::size_t size = 5 * 1024 + 7;
  auto data = pattern(size);
  ChunkSender tx(data, 3, 0, 1024);
  CHECK(tx.reference().stream == 3);
  CHECK(tx.reference().size == size);
  CHECK_FALSE(tx.next().has_value());  // no credit yet
  ChunkReceiver rx(tx.reference(), 2048);
  std::size_t chunks = 0;
  while (!tx.done()) {
    tx.on_credit(rx.grant());
    auto c = tx.next();
    REQUIRE(c.has_value());
    CHECK(c->offset + c->data.size() <= rx.grant());  // strict: never past the grant
    CHECK(c->data.size() <= 1024);
    REQUIRE_FALSE(rx.on_chunk(c->offset, c->data));
    ++chunks;
  }
  CHECK(chunks == 6);
  CHECK(rx.complete());
  CHECK(rx.grant() == size);  // never beyond the value
  CHECK_FALSE(rx.check());
  CHECK(rx.take() == data);
}

TEST_CASE("chunking: a grant smaller than a chunk cuts the chunk at the grant") {
  ChunkSender tx(pattern(4096), 1, 100, 1024);
  auto c = tx.next();
  REQUIRE(c.has_value());
  CHECK(c->data.size() == 100);
  CHECK_FALSE(tx.next().has_value());
}

TEST_CASE("chunking: the receiver refuses chunks past the size, and a wrong sha256") {
  auto data = pattern(3000);
  ChunkSender tx(data, 1, 1u << 20, 1000);
  ChunkReceiver rx(tx.reference());
  auto first = *tx.next();
  auto second = *tx.next();
  REQUIRE_FALSE(rx.on_chunk(first.offset, first.data));
  std::vector<std::uint8_t> too_much(2001, 0);
  CHECK(rx.on_chunk(1000, too_much) == "chunked stream 1: 2001 bytes at offset 1000 pass its size of 3000 bytes");
  CHECK(rx.check() == "chunked stream 1: 1000 of 3000 bytes received");
  // A corrupted chunk: right offset and size, one byte flipped.
  std::vector<std::uint8_t> corrupt(second.data.begin(), second.data.end());
  corrupt[17] ^= 0x01;
  REQUIRE_FALSE(rx.on_chunk(second.offset, corrupt));
  auto third = *tx.next();
  REQUIRE_FALSE(rx.on_chunk(third.offset, third.data));
  CHECK(rx.complete());
  CHECK(rx.check() == "chunked stream 1: sha256 mismatch");
}

// ---- resumption (PROTOCOL.md §7.9 R1-R3, R9, R10) -----------------------------------------

using Clock = ResumeRule::Clock;

TEST_CASE("chunking resume: a gap asks once for a resume at R; the resent chunks are trimmed to what is new") {
  auto data = pattern(5000);
  ChunkSender tx(data, 1, 1u << 20, 1000);
  ChunkReceiver rx(tx.reference(), kChunkWindowBytes, ChunkDelivery::Buffer, std::chrono::milliseconds(2000));
  auto t0 = Clock::now();
  auto c0 = *tx.next();
  REQUIRE_FALSE(rx.on_chunk(c0.offset, c0.data, t0));
  CHECK_FALSE(rx.take_resume_due());
  (void)tx.next();  // [1000, 2000) lost on the way
  auto c2 = *tx.next();
  REQUIRE_FALSE(rx.on_chunk(c2.offset, c2.data, t0));  // a gap: dropped, not an error
  CHECK(rx.received() == 1000);
  CHECK(rx.take_resume_due());  // R2: a resume Credit at R = 1000
  auto c3 = *tx.next();
  REQUIRE_FALSE(rx.on_chunk(c3.offset, c3.data, t0 + std::chrono::milliseconds(10)));
  CHECK_FALSE(rx.take_resume_due());  // one per loss, not one per chunk after it
  // The sender goes back to R; a chunk it sent again from a little earlier is trimmed (R1).
  REQUIRE_FALSE(tx.on_resume(rx.received(), rx.grant()));
  CHECK(tx.sent() == 1000);
  auto again = *tx.next();
  CHECK(again.offset == 1000);
  std::vector<std::uint8_t> overlap(data.begin() + 500, data.begin() + 2000);
  REQUIRE_FALSE(rx.on_chunk(500, overlap, t0));
  CHECK(rx.received() == 2000);
  REQUIRE_FALSE(rx.on_chunk(again.offset, again.data, t0));  // had whole: dropped
  CHECK(rx.received() == 2000);
  while (!tx.done()) {
    auto c = *tx.next();
    REQUIRE_FALSE(rx.on_chunk(c.offset, c.data, t0));
  }
  CHECK(tx.reference().sha256 == sha256(data.span()));  // the reference did not change
  CHECK_FALSE(rx.check());
  CHECK(rx.take() == data);
}

TEST_CASE("chunking resume: a second gap after resume_after without a chunk asks again") {
  auto data = pattern(4000);
  ChunkReceiver rx(ChunkSender(data, 1).reference(), kChunkWindowBytes, ChunkDelivery::Buffer,
                   std::chrono::milliseconds(100));
  auto t0 = Clock::now();
  std::vector<std::uint8_t> later(data.begin() + 2000, data.begin() + 3000);
  REQUIRE_FALSE(rx.on_chunk(2000, later, t0));
  CHECK(rx.take_resume_due());
  REQUIRE_FALSE(rx.on_chunk(2000, later, t0 + std::chrono::milliseconds(50)));
  CHECK_FALSE(rx.take_resume_due());
  REQUIRE_FALSE(rx.on_chunk(2000, later, t0 + std::chrono::milliseconds(150)));
  CHECK(rx.take_resume_due());
}

TEST_CASE("chunking resume: a stall (granted bytes not received for resume_after) asks at R, again each resume_after") {
  auto data = pattern(3000);
  ChunkSender tx(data, 1, 1u << 20, 1000);
  ChunkReceiver rx(tx.reference(), kChunkWindowBytes, ChunkDelivery::Buffer, std::chrono::milliseconds(100));
  auto t0 = Clock::now();
  using std::chrono::milliseconds;
  CHECK_FALSE(rx.stalled(3000, t0));
  auto c0 = *tx.next();
  REQUIRE_FALSE(rx.on_chunk(c0.offset, c0.data, t0));
  CHECK_FALSE(rx.stalled(3000, t0 + milliseconds(99)));
  CHECK(rx.stalled(3000, t0 + milliseconds(100)));   // the last chunks were lost
  CHECK_FALSE(rx.stalled(3000, t0 + milliseconds(150)));
  CHECK(rx.stalled(3000, t0 + milliseconds(200)));   // and again
  CHECK_FALSE(rx.stalled(1000, t0 + milliseconds(900)));  // nothing owed beyond what it has
  auto c1 = *tx.next();
  REQUIRE_FALSE(rx.on_chunk(c1.offset, c1.data, t0 + milliseconds(1000)));
  CHECK_FALSE(rx.stalled(3000, t0 + milliseconds(1050)));  // a chunk came: the stall counts from it
}

// A source that can be read once, in order (a pipe): read_at must be called at the next offset.
struct OnceSource final : ByteSource {
  std::vector<std::uint8_t> data;
  std::uint64_t next = 0;
  explicit OnceSource(std::vector<std::uint8_t> d) : data(std::move(d)) {}
  std::uint64_t size() const override { return data.size(); }
  void read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    if (offset != next) throw std::runtime_error("read twice or out of order");
    std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(offset), out.size(), out.begin());
    next += out.size();
  }
  std::optional<std::array<std::uint8_t, 32>> known_sha256() const override { return sha256(std::span<const std::uint8_t>(data)); }
  std::string describe() const override { return "pipe"; }
  bool rereadable() const override { return false; }
};

TEST_CASE("chunking resume: a file source is read again from R; a source read once resends what it kept") {
  auto data = pattern(64 * 1024 + 3);
  SUBCASE("bytes") {
    ChunkSender tx(data, 1, data.size(), 4096);
    while (tx.next()) {
    }
    REQUIRE_FALSE(tx.on_resume(10000, data.size()));
    auto c = *tx.next();
    CHECK(c.offset == 10000);
    CHECK(std::vector<std::uint8_t>(c.data.begin(), c.data.end()) ==
          std::vector<std::uint8_t>(data.begin() + 10000, data.begin() + 14096));
  }
  SUBCASE("a source read once: within what it keeps") {
    auto src = std::make_shared<OnceSource>(vec(data));
    ChunkSender tx(src, 1, data.size(), 4096);
    std::vector<std::uint8_t> first;
    while (auto c = tx.next()) first.insert(first.end(), c->data.begin(), c->data.end());
    CHECK(first == vec(data));
    REQUIRE_FALSE(tx.on_resume(5000, data.size()));
    std::vector<std::uint8_t> again;
    while (auto c = tx.next()) again.insert(again.end(), c->data.begin(), c->data.end());
    CHECK(again == std::vector<std::uint8_t>(data.begin() + 5000, data.end()));
    CHECK(tx.reference().sha256 == sha256(data.span()));
  }
  SUBCASE("a source read once, into the messages it builds: kept shared, sent again as they are") {
    auto src = std::make_shared<OnceSource>(vec(data));
    ChunkSender tx(src, 1, data.size(), 4096);
    // A stand-in for the SDK's Chunk message: 64 header bytes (the offset first), then the data
    // (a message of more than 33 bytes: libzmq counts references to its content).
    BuildChunk build = [](std::uint64_t offset, std::size_t n, const std::function<void(std::span<std::uint8_t>)>& fill) {
      zmq::message_t m(64 + n);
      std::memcpy(m.data(), &offset, 8);
      fill(std::span<std::uint8_t>(static_cast<std::uint8_t*>(m.data()) + 64, n));
      return SentPiece{std::move(m), 64, n};
    };
    std::vector<std::uint8_t> first;
    std::map<std::uint64_t, const void*> content;  // each chunk's message content
    while (auto c = tx.next(build)) {
      REQUIRE(c->message.has_value());
      CHECK(c->data.data() == static_cast<const std::uint8_t*>(c->message->data()) + 64);  // in the message
      content[c->offset] = c->message->data();
      first.insert(first.end(), c->data.begin(), c->data.end());
    }  // every message sent is gone: only the keep holds them
    CHECK(first == vec(data));
    REQUIRE_FALSE(tx.on_resume(4096, data.size()));  // a piece's start: its kept message again
    std::vector<std::uint8_t> again;
    while (auto c = tx.next(build)) {
      REQUIRE(c->message.has_value());
      CHECK(c->message->data() == content.at(c->offset));  // shared, never copied
      std::uint64_t at = 0;
      std::memcpy(&at, c->message->data(), 8);
      CHECK(at == c->offset);
      again.insert(again.end(), c->data.begin(), c->data.end());
    }
    CHECK(again == std::vector<std::uint8_t>(data.begin() + 4096, data.end()));
    REQUIRE_FALSE(tx.on_resume(5000, data.size()));  // inside a piece: the bytes, to build anew
    auto c = tx.next(build);
    REQUIRE(c.has_value());
    CHECK_FALSE(c->message.has_value());
    CHECK(std::vector<std::uint8_t>(c->data.begin(), c->data.end()) ==
          std::vector<std::uint8_t>(data.begin() + 5000, data.begin() + 8192));
    CHECK(tx.reference().sha256 == sha256(data.span()));
  }
  SUBCASE("a resume beyond what was sent is ignored") {
    ChunkSender tx(data, 1, 8192, 4096);
    (void)tx.next();
    REQUIRE_FALSE(tx.on_resume(6000, 1u << 20));
    CHECK(tx.sent() == 4096);
    auto c = *tx.next();
    CHECK(c.offset == 4096);
    CHECK_FALSE(tx.next().has_value());  // the grant was not raised either
  }
  SUBCASE("a source read once needs its sha256") {
    struct NoHash final : ByteSource {
      std::uint64_t size() const override { return 10; }
      void read_at(std::uint64_t, std::span<std::uint8_t>) override {}
      std::string describe() const override { return "pipe"; }
      bool rereadable() const override { return false; }
    };
    CHECK_THROWS_AS(ChunkSender(std::make_shared<NoHash>(), 1), std::invalid_argument);
  }
}

TEST_CASE("chunking resume: a source read once cannot go back more than kResumeKeepBytes") {
  const std::size_t size = kResumeKeepBytes + 3 * kChunkBytes;
  auto src = std::make_shared<OnceSource>(vec(pattern(size)));
  ChunkSender tx(src, 1, size);
  while (tx.next()) {
  }
  auto error = tx.on_resume(kChunkBytes, size);
  REQUIRE(error.has_value());
  CHECK(*error == fmt::format("cannot resume at offset {}: pipe cannot be read again and only its bytes from offset "
                              "{} are kept (the last {} sent)",
                              kChunkBytes, 3 * kChunkBytes, kResumeKeepBytes));
  CHECK(tx.done());  // nothing moved
  REQUIRE_FALSE(tx.on_resume(3 * kChunkBytes, size));  // the oldest byte kept: fine
  CHECK(tx.next()->offset == 3 * kChunkBytes);
}

TEST_CASE("chunking resume: SentBytesKeep keeps at least the last bytes, in the pieces sent") {
  SentBytesKeep keep(10);
  std::vector<std::uint8_t> a{1, 2, 3, 4}, b{5, 6, 7, 8}, c{9, 10, 11, 12};
  keep.append(a);
  keep.append(b);
  CHECK(keep.begin() == 0);
  keep.append(c);
  CHECK(keep.begin() == 0);  // without the first piece, fewer than 10 would be kept
  std::vector<std::uint8_t> d{13, 14, 15, 16};
  keep.append(d);
  CHECK(keep.begin() == 4);  // the last 12 (at least 10) are kept
  CHECK(keep.end() == 16);
  auto v = keep.view(6, 100);
  CHECK(std::vector<std::uint8_t>(v.begin(), v.end()) == std::vector<std::uint8_t>{7, 8});
  CHECK_THROWS(keep.view(3, 1));
}

TEST_CASE("chunking resume: SentBytesKeep keeps a piece as the message that carried it, shared, valid once the "
          "socket released the copy it sent") {
  // A chunk-like message: 40 header bytes, then the piece (1 MiB, at offset 40 of the message).
  const std::size_t header = 40, n = 1 << 20;
  const auto piece = pattern(n);
  zmq::message_t message(header + n);
  std::memset(message.data(), 0xee, header);
  std::memcpy(static_cast<std::uint8_t*>(message.data()) + header, piece.data(), n);
  const void* content = message.data();

  // Sent the way the SDKs send a kept piece: a copy (sharing the content) through a real socket
  // (tcp on loopback: written out, then released by libzmq's I/O thread), received, and dropped.
  zmq::context_t ctx(1);
  zmq::socket_t tx(ctx, zmq::socket_type::push), rx(ctx, zmq::socket_type::pull);
  rx.bind("tcp://127.0.0.1:*");
  tx.connect(rx.get(zmq::sockopt::last_endpoint));
  SentBytesKeep keep(4 * n);
  keep.append(std::span<const std::uint8_t>(piece.data(), 5));  // bytes without a message: 0-5
  keep.append(SentPiece{std::move(message), header, n});         // 5 to 5 + n
  auto sent = keep.message_of(5, n);
  REQUIRE(sent.has_value());
  CHECK(sent->data() == content);  // the same content: nothing was copied
  REQUIRE(tx.send(std::move(*sent), zmq::send_flags::none));
  {
    zmq::message_t got;
    REQUIRE(rx.recv(got));
    REQUIRE(got.size() == header + n);
    CHECK(std::memcmp(static_cast<const std::uint8_t*>(got.data()) + header, piece.data(), n) == 0);
  }
  tx.close();  // linger: the I/O thread has written and released what it sent
  rx.close();
  ctx.close();

  // What is kept is unchanged: the view, and a message to send again (the same one, shared).
  auto v = keep.view(5, n);
  CHECK(v.data() == static_cast<const std::uint8_t*>(content) + header);
  CHECK(std::vector<std::uint8_t>(v.begin(), v.end()) == vec(piece));
  auto again = keep.message_of(5, n);
  REQUIRE(again.has_value());
  CHECK(again->data() == content);
  CHECK(sha256(std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(again->data()) + header, n)) ==
        sha256(piece.span()));
  // Only a whole piece kept with its message is sent as it is.
  CHECK_FALSE(keep.message_of(0, 5).has_value());      // copied bytes: no chunk message
  CHECK_FALSE(keep.message_of(5, n - 1).has_value());  // a cut piece is built anew
  CHECK_FALSE(keep.message_of(6, n - 1).has_value());
}

TEST_CASE("chunking: receive_piece shares a received chunk's message, unchanged once the message is released; "
          "it copies a small chunk and a small part of a message") {
  const std::size_t header = 24, n = kShareReceivedMinBytes + 17, large = 4 * kShareReceivedMinBytes;
  const auto piece = pattern(large);
  auto message_of = [&](std::size_t size) {
    zmq::message_t m(header + size);
    std::memset(m.data(), 0xee, header);
    std::memcpy(static_cast<std::uint8_t*>(m.data()) + header, piece.data(), size);
    return m;
  };
  auto in = [&](zmq::message_t& m, std::size_t size) {
    return std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(m.data()) + header, size);
  };

  auto received = message_of(n);
  const auto* at = static_cast<const std::uint8_t*>(received.data()) + header;
  auto shared = receive_piece(&received, in(received, n));
  CHECK(shared.bytes().data() == at);  // the same content: nothing copied
  received = zmq::message_t();         // the receiver's message released
  // Memory freed now would be handed out again here and overwritten.
  std::vector<std::vector<std::uint8_t>> scribble;
  for (int i = 0; i < 4; ++i) scribble.emplace_back(header + n, 0x11);
  CHECK(std::memcmp(shared.bytes().data(), piece.data(), n) == 0);

  // A small chunk (it may be a slice of libzmq's shared read buffer) is copied.
  auto small_message = message_of(kShareReceivedMinBytes - 1);
  auto small = receive_piece(&small_message, in(small_message, kShareReceivedMinBytes - 1));
  CHECK(small.bytes().data() != static_cast<const std::uint8_t*>(small_message.data()) + header);
  CHECK(small.bytes().size() == kShareReceivedMinBytes - 1);
  CHECK(std::memcmp(small.bytes().data(), piece.data(), small.bytes().size()) == 0);
  // Less than half of its message (a chunk in a Batch, the new end of a resent one): copied.
  auto big = message_of(large);
  const std::size_t from = large - kShareReceivedMinBytes - 1;
  auto part = receive_piece(&big, in(big, large).subspan(from));
  CHECK(part.bytes().size() == kShareReceivedMinBytes + 1);
  CHECK(part.bytes().data() != in(big, large).data() + from);
  CHECK(std::memcmp(part.bytes().data(), piece.data() + from, part.bytes().size()) == 0);
  // More than half: shared, from where it starts in the message.
  auto most = receive_piece(&big, in(big, large).subspan(kShareReceivedMinBytes));
  CHECK(most.bytes().data() == in(big, large).data() + kShareReceivedMinBytes);
  // Without a message: a copy.
  auto alone = receive_piece(nullptr, piece.span());
  CHECK(alone.bytes().data() != piece.data());
  CHECK(std::vector<std::uint8_t>(alone.bytes().begin(), alone.bytes().end()) == vec(piece));
}

TEST_CASE("chunking: stream 0 is the items, never a chunked value") {
  CHECK_THROWS_AS(ChunkSender(pattern(1), 0), std::invalid_argument);
}
