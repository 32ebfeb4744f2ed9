// chunking_test.cpp — one chunked stream's sender and receiver (worker/cpp/chunking.hpp,
// PROTOCOL.md §7.9): chunks within the credit, in order, and the receiver's size and sha256
// check, including a corrupted chunk; and the SHA-256 they use (sha256.hpp, OpenSSL) against
// the FIPS 180-2 vectors and libsodium's, whole or fed in uneven pieces.
#include <doctest/doctest.h>

#include <sodium.h>

#include <fmt/format.h>

#include "muster/chunking.hpp"
#include "muster/sha256.hpp"

using namespace muster;

namespace {

Bytes pattern(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 131 + (i >> 10));
  return Bytes(std::move(v));
}

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

TEST_CASE("chunking: the receiver refuses chunks out of order or past the size, and a wrong sha256") {
  auto data = pattern(3000);
  ChunkSender tx(data, 1, 1u << 20, 1000);
  ChunkReceiver rx(tx.reference());
  auto first = *tx.next();
  auto second = *tx.next();
  CHECK(rx.on_chunk(second.offset, second.data) == "chunked stream 1: a chunk at offset 1000, expected offset 0");
  REQUIRE_FALSE(rx.on_chunk(first.offset, first.data));
  CHECK(rx.on_chunk(first.offset, first.data) == "chunked stream 1: a chunk at offset 0, expected offset 1000");
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

TEST_CASE("chunking: stream 0 is the items, never a chunked value") {
  CHECK_THROWS_AS(ChunkSender(pattern(1), 0), std::invalid_argument);
}
