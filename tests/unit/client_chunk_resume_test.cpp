// client_chunk_resume_test.cpp — the C++ client library's resumption of chunked streams
// (PROTOCOL.md §7.9 R1-R3, R9, R10) against a scripted fake daemon (a ROUTER the Client
// connects to): as the sender of an input stream it goes back to a resume Credit's offset and
// sends the same bytes again, and a source read once that cannot go back that far ends the call
// UNAVAILABLE (cancelled); as the receiver of an output stream it asks once for a gap, asks again
// after resume_after when the last chunks never come, and returns (or writes to its sink) the
// whole value. Every wait is bounded.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <future>
#include <thread>

#include <fmt/format.h>
#include <zmq.hpp>

#include "fake_client_daemon.hpp"
#include "temp_dir.hpp"
#include "muster/align.hpp"
#include "muster/byte_source.hpp"
#include "muster/chunking.hpp"
#include "muster/client.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"
#include "muster/output_sink.hpp"
#include "muster/sha256.hpp"

using namespace muster;
using namespace std::chrono_literals;
using muster::test::FakeClientDaemon;

namespace {

constexpr std::uint64_t MiB = 1 << 20;

Bytes pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 31 + (i >> 20) + seed);
  return Bytes(std::move(v));
}

// A source that can be read once, in order (a pipe), its sha256 given.
struct OnceSource final : ByteSource {
  Bytes data;
  std::uint64_t next = 0;
  explicit OnceSource(Bytes d) : data(std::move(d)) {}
  std::uint64_t size() const override { return data.size(); }
  void read_at(std::uint64_t offset, std::span<std::uint8_t> out) override {
    if (offset != next) throw std::runtime_error("read twice");
    std::copy_n(data.begin() + offset, out.size(), out.begin());
    next += out.size();
  }
  std::optional<std::array<std::uint8_t, 32>> known_sha256() const override { return sha256(data.span()); }
  std::string describe() const override { return "pipe"; }
  bool rereadable() const override { return false; }
};

}  // namespace

TEST_CASE("C++ client resume: an input goes again from the resume Credit's offset; an output's gap and stall are asked for") {
  FakeClientDaemon fake;
  const auto input = pattern(3 * MiB + 100, 1);
  const auto output = pattern(5000, 2);
  muster::test::TempDir out_dir;
  for (bool to_sink : {false, true}) {
    CAPTURE(to_sink);
    Client client({.client_address = fake.address, .chunk_threshold = MiB, .resume_after = 300ms});
    CallOptions options{.timeout_ms = 30000};
    if (to_sink) options.output_sink = std::make_shared<DirectorySink>(out_dir.path);
    auto call = std::async(std::launch::async, [&] { return client.call("echo", {{"data", Value(input)}}, options); });

    auto submit = fake.expect(wire::ClientBody::Submit);
    auto id = submit.msg->request_id();
    auto ref = decode_values(payload_bytes(submit.msg->body_as_Submit()->inputs())).find("data")->as_chunked();
    CHECK(ref.stream == 1);
    CHECK(ref.size == input.size());
    // R9: all sent, then a resume Credit at 1.5 MiB: the same bytes again from there.
    fake.credit(id, 1, input.size());
    auto first = fake.chunks_until(input.size());
    CHECK(first.size() == 4);
    fake.credit(id, 1, input.size(), MiB + MiB / 2);
    auto again = fake.chunks_until(input.size());
    REQUIRE(again.size() >= 1);
    CHECK(again.front().first == MiB + MiB / 2);
    std::uint64_t at = MiB + MiB / 2;
    for (auto& [offset, data] : again) {
      CHECK(offset == at);
      CHECK(data == Bytes(input.begin() + offset, input.begin() + offset + data.size()));
      at += data.size();
    }

    // R2: an output chunk lost between [1000, 2000): one resume Credit at 1000.
    auto piece = [&](std::uint64_t from, std::uint64_t to) { return output.span().subspan(from, to - from); };
    fake.chunk(id, 2, 0, piece(0, 1000));
    fake.chunk(id, 2, 2000, piece(2000, 3000));
    fake.chunk(id, 2, 3000, piece(3000, 4000));
    auto gap = fake.expect(wire::ClientBody::Credit);
    auto* g = gap.msg->body_as_Credit();
    CHECK(g->stream() == 2);
    CHECK(g->resume());
    CHECK(g->resume_offset() == 1000);
    CHECK(g->bytes() >= 1000);
    // Sent again from 500 (overlapping what it has) up to 4000; the last chunk is lost (R3).
    fake.chunk(id, 2, 500, piece(500, 2000));
    fake.chunk(id, 2, 2000, piece(2000, 3000));
    fake.chunk(id, 2, 3000, piece(3000, 4000));
    for (;;) {
      auto stall = fake.expect(wire::ClientBody::Credit);
      auto* s = stall.msg->body_as_Credit();
      REQUIRE(s->stream() == 2);
      REQUIRE(s->resume());
      if (s->resume_offset() == 4000) break;
      CHECK(s->resume_offset() == 1000);  // a slow test: the stall before the resent chunks came
    }
    fake.chunk(id, 2, 4000, piece(4000, 5000));
    ChunkedValue out_ref{2, output.size(), sha256(output.span())};
    fake.result(id, {{"data", Value(out_ref)}});
    auto outputs = call.get();
    if (to_sink) {
      CHECK(outputs.find("data")->as_chunked() == out_ref);
      std::ifstream in(out_dir.path / "data", std::ios::binary);
      std::vector<std::uint8_t> written((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      CHECK(Bytes(written) == output);
    } else {
      CHECK(outputs.find("data")->as_bytes() == output);
    }
  }
}

TEST_CASE("C++ client resume: a source read once cannot go back more than kResumeKeepBytes: cancelled, UNAVAILABLE") {
  FakeClientDaemon fake;
  const auto input = pattern(kResumeKeepBytes + 2 * MiB, 3);
  Client client({.client_address = fake.address, .chunk_threshold = MiB, .resume_after = 300ms});
  CallOptions options{.timeout_ms = 30000};
  options.input_sources.emplace_back("data", std::make_shared<OnceSource>(input));
  auto call = std::async(std::launch::async, [&] { return client.call("echo", {}, options); });
  auto submit = fake.expect(wire::ClientBody::Submit);
  auto id = submit.msg->request_id();
  fake.credit(id, 1, input.size());
  fake.chunks_until(input.size());
  fake.credit(id, 1, input.size(), 2 * MiB);  // the oldest byte kept: sent again
  CHECK(fake.chunks_until(input.size()).front().first == 2 * MiB);
  fake.credit(id, 1, input.size(), MiB);  // further back than what is kept
  fake.expect(wire::ClientBody::Cancel);
  try {
    call.get();
    FAIL("the call returned");
  } catch (const CallError& e) {
    CHECK(e.code() == wire::ErrorCode::Unavailable);
    CHECK(std::string(e.what()) ==
          fmt::format("input data: chunked stream 1: cannot resume at offset {}: pipe cannot be read again and only "
                      "its bytes from offset {} are kept (the last {} sent)",
                      MiB, 2 * MiB, kResumeKeepBytes));
  }
}
