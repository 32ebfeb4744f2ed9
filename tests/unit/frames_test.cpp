// frames_test.cpp — received frames are 8-byte aligned before FlatBuffers reads them in place
// (transport/include/muster/align.hpp, align_payload). libzmq's zero-copy receive hands out frames at any
// offset of its read buffer; reading a FlatBuffer there is undefined behaviour (UBSan:
// "misaligned address", docs/RELIABILITY.md section 7).
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "muster/align.hpp"
#include "muster/frames.hpp"

namespace {
bool aligned8(const zmq::message_t& m) { return reinterpret_cast<std::uintptr_t>(m.data()) % 8 == 0; }
}  // namespace

TEST_CASE("align_payload copies a frame that does not start 8-byte aligned, and only that") {
  alignas(8) std::uint8_t buffer[128];
  for (std::size_t i = 0; i < sizeof buffer; ++i) buffer[i] = static_cast<std::uint8_t>(i);

  zmq::message_t odd(buffer + 3, 100, nullptr);  // zero-copy: points into `buffer`, as libzmq's do
  REQUIRE_FALSE(aligned8(odd));
  muster::align_payload(odd);
  CHECK(aligned8(odd));
  REQUIRE(odd.size() == 100);
  CHECK(std::memcmp(odd.data(), buffer + 3, 100) == 0);

  zmq::message_t even(buffer + 8, 100, nullptr);
  muster::align_payload(even);
  CHECK(even.data() == buffer + 8);  // already aligned: left alone, no copy
}

TEST_CASE("recv_router hands out aligned payloads however the frames sat in libzmq's buffer") {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router), dealer(ctx, zmq::socket_type::dealer);
  router.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::linger, 0);
  router.bind("tcp://127.0.0.1:*");
  dealer.connect(router.get(zmq::sockopt::last_endpoint));
  // Odd sizes above libzmq's small-message limit (33 bytes), sent in one burst so that they
  // arrive in one read and are handed out zero-copy at odd offsets.
  std::vector<std::string> sent;
  for (int i = 0; i < 64; ++i) {
    sent.push_back(std::string(35 + 2 * i, static_cast<char>('a' + i % 26)));
    dealer.send(zmq::buffer(sent.back()), zmq::send_flags::none);
  }
  std::size_t received = 0;
  zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
  while (received < sent.size() && zmq::poll(&item, 1, std::chrono::milliseconds(5000)) > 0) {
    muster::RouterMessage m;
    while (received < sent.size() && muster::recv_router(router, m)) {
      CHECK(aligned8(m.payload));
      CHECK(m.payload.to_string() == sent[received]);
      ++received;
    }
  }
  CHECK(received == sent.size());
}

// recv_router's `user_ids` (frames.hpp): musterd does not ask for a User-Id when it has no ZAP
// handler. That changes nothing only while libzmq gives no User-Id without one: checked here,
// over tcp and ipc. `peer_addresses`: the Peer-Address is read only when asked (musterd asks on
// its enrollment socket alone).
TEST_CASE("recv_router: no User-Id without a ZAP handler, so not asking for one changes nothing") {
  auto received = [](const std::string& transport, bool user_ids, bool peer_addresses = true) {
    zmq::context_t ctx;
    zmq::socket_t router(ctx, zmq::socket_type::router), dealer(ctx, zmq::socket_type::dealer);
    router.set(zmq::sockopt::linger, 0);
    dealer.set(zmq::sockopt::linger, 0);
    router.bind(transport == "tcp" ? std::string("tcp://127.0.0.1:*")
                                   : "ipc://@muster-frames-test-" + std::to_string(::getpid()));
    dealer.connect(router.get(zmq::sockopt::last_endpoint));
    dealer.send(zmq::buffer(std::string("hello")), zmq::send_flags::none);
    zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
    REQUIRE(zmq::poll(&item, 1, std::chrono::milliseconds(10'000)) == 1);  // bound, not timing
    muster::RouterMessage m;
    m.peer.address = "left from the previous message";
    REQUIRE(muster::recv_router(router, m, user_ids, peer_addresses));
    CHECK(m.payload.to_string() == "hello");
    return m.peer;
  };
  for (const std::string transport : {"tcp", "ipc"}) {
    CAPTURE(transport);
    const auto asked = received(transport, true), not_asked = received(transport, false);
    CHECK(asked.identity.empty());  // no ZAP handler: no User-Id for the skip to lose
    CHECK(not_asked.identity.empty());
    CHECK_FALSE(not_asked.address.empty());  // the Peer-Address is read either way
    CHECK(received(transport, true, false).address.empty());  // not asked: none, nothing left over
  }
  CHECK(received("tcp", false).address == "127.0.0.1");
}

// take_message / MessageBuilders (frames.hpp): the send paths of musterd, the worker SDK and the
// client library reuse one builder per thread; what goes out must be exactly what was built,
// and a builder handed back must start empty whatever the last message was.
TEST_CASE("take_message copies a small message out of a reused builder and hands a large one over") {
  muster::MessageBuilders builders;
  auto build = [&](std::size_t bytes) {
    auto& fbb = builders.get(bytes + 64);
    CHECK(fbb.GetSize() == 0);  // cleared, whatever was built in it before
    std::vector<std::uint8_t> data(bytes, static_cast<std::uint8_t>(bytes));
    fbb.Finish(fbb.CreateVector(data));
    std::vector<std::uint8_t> expected(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
    const void* built_at = fbb.GetBufferPointer();
    zmq::message_t m = muster::take_message(fbb);
    CHECK(fbb.GetSize() == 0);  // reusable at once
    REQUIRE(m.size() == expected.size());
    CHECK(std::memcmp(m.data(), expected.data(), expected.size()) == 0);
    struct Taken {
      bool in_place;
      zmq::message_t message;
      std::vector<std::uint8_t> expected;
    };
    return Taken{built_at == m.data(), std::move(m), std::move(expected)};
  };
  auto small = build(100);
  CHECK_FALSE(small.in_place);  // copied: the builder keeps its buffer for the next message
  auto large = build(muster::kCopyMessageMax + 1000);
  CHECK(large.in_place);  // handed over: a large payload is not copied again
  auto again = build(200);
  CHECK_FALSE(again.in_place);
  // The messages taken earlier are untouched by the builders' later use.
  for (auto* t : {&small, &large, &again})
    CHECK(std::memcmp(t->message.data(), t->expected.data(), t->expected.size()) == 0);
}
