// gateway_coalescing.cpp — the gateway's WebSocket write path (gateway/src/coalescing_stream.hpp,
// end_of_turn.hpp, ws_write.hpp): messages written in one Asio turn reach the next layer in one
// write, in order, with the frames Beast writes itself (pings, close) kept whole, and none after
// a Close; deferred work runs after every ready handler. Beast's in-memory test stream counts
// the writes.
#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <boost/beast/_experimental/test/stream.hpp>

#include "coalescing_stream.hpp"
#include "end_of_turn.hpp"
#include "ws_write.hpp"

using namespace muster::gateway;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

namespace {
struct Pair {
  net::io_context ioc;
  beast::test::stream server_end{ioc}, client_end{ioc};
  std::optional<websocket::stream<CoalescingStream<beast::test::stream>>> server;
  std::optional<websocket::stream<beast::test::stream>> client;
  EndOfTurn turn{ioc};
  bool flush_deferred = false;

  Pair() {
    server_end.connect(client_end);
    server.emplace(std::move(server_end));
    client.emplace(std::move(client_end));
    // As the gateway's session does: one flush at the end of each turn that wrote something.
    server->next_layer().on_written([this] {
      if (flush_deferred) return;
      flush_deferred = true;
      turn.defer([this] {
        flush_deferred = false;
        server->next_layer().async_flush([](beast::error_code) {});
      });
    });
    bool accepted = false, connected = false;
    server->async_accept([&](beast::error_code ec) { accepted = !ec; });
    client->async_handshake("localhost", "/", [&](beast::error_code ec) { connected = !ec; });
    turn_until_idle();
    REQUIRE(accepted);
    REQUIRE(connected);
    server->text(true);
  }
  // Runs turns (handlers, then the deferred flushes) until nothing is ready; bounded.
  void turn_until_idle() {
    for (int i = 0; i < 100; ++i) {
      ioc.restart();
      auto ran = ioc.run_for(std::chrono::milliseconds(20));
      turn.flush();
      if (ran == 0 && !flush_deferred) {
        ioc.restart();
        if (ioc.poll() == 0) return;
      }
    }
  }
  std::size_t writes() { return server->next_layer().next_layer().nwrite(); }
  std::string read() {
    beast::flat_buffer b;
    client->read(b);
    return beast::buffers_to_string(b.data());
  }
};
}  // namespace

TEST_CASE("gateway coalescing: the messages of one turn reach the socket in one write, in order") {
  Pair p;
  auto before = p.writes();
  for (std::string m : {"one", "two", "three"}) p.server->write(net::buffer(m));
  CHECK(p.writes() == before);  // framed into memory only
  CHECK(p.server->next_layer().unsent() > 0);
  p.turn.flush();
  p.turn_until_idle();
  CHECK(p.writes() == before + 1);
  CHECK(p.server->next_layer().buffered() == 0);
  CHECK(p.read() == "one");
  CHECK(p.read() == "two");
  CHECK(p.read() == "three");
}

TEST_CASE("gateway coalescing: Beast's own frames (a ping) go in the same write, whole") {
  Pair p;
  auto before = p.writes();
  bool pinged = false;
  p.server->async_ping({}, [&](beast::error_code ec) { pinged = !ec; });
  std::string m = "after the ping";
  p.server->write(net::buffer(m));
  p.turn_until_idle();
  CHECK(pinged);
  CHECK(p.writes() == before + 1);
  bool got_ping = false;
  p.client->control_callback([&](websocket::frame_type kind, beast::string_view) { got_ping |= kind == websocket::frame_type::ping; });
  CHECK(p.read() == m);
  CHECK(got_ping);
}

TEST_CASE("gateway coalescing: a close is flushed before the teardown") {
  Pair p;
  std::string m = "last words";
  p.server->write(net::buffer(m));
  bool closed = false;
  p.server->async_close(websocket::close_code::going_away, [&](beast::error_code ec) { closed = !ec; });
  p.turn_until_idle();
  CHECK(p.read() == m);
  beast::flat_buffer b;
  beast::error_code ec;
  p.client->read(b, ec);  // the close frame: the client answers it
  CHECK(ec == websocket::error::closed);
  CHECK(p.client->reason().code == websocket::close_code::going_away);
  p.turn_until_idle();
  CHECK(closed);
}

TEST_CASE("gateway WebSocket: no message is framed after the Close that answers the peer's Close") {
  // A browser that closes its socket (the dashboard's logout) while pushes flow: Beast's pending
  // read answers the Close, and a push framed in that same turn must not follow it on the wire
  // (the browser would fail the socket: "Data frame received after close").
  Pair p;
  const unsigned char peer_close[] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8};  // masked (zero key), 1000
  p.client->next_layer().write_some(net::buffer(peer_close));
  beast::flat_buffer b;
  std::optional<beast::error_code> read_ec;
  p.server->async_read(b, [&](beast::error_code ec, std::size_t) { read_ec = ec; });
  for (int i = 0; i < 100 && p.server->is_open(); ++i) {  // one handler at a time, until Beast is closing
    p.ioc.restart();
    p.ioc.run_one_for(std::chrono::milliseconds(20));
  }
  REQUIRE_FALSE(p.server->is_open());
  REQUIRE(p.server->next_layer().unsent() > 0);  // its Close reply, not on the wire yet
  beast::error_code ec;
  CHECK_FALSE(write_message(*p.server, "a late push", ec));
  p.turn_until_idle();
  REQUIRE(read_ec.has_value());
  CHECK(*read_ec == websocket::error::closed);
  // What reached the peer after the handshake: the Close reply (unmasked, code 1000), and nothing more.
  CHECK(p.client->next_layer().str() == std::string("\x88\x02\x03\xE8", 4));
}

TEST_CASE("gateway WebSocket: a message is framed while the socket is open") {
  Pair p;
  beast::error_code ec;
  CHECK(write_message(*p.server, "hello", ec));
  CHECK(!ec);
  p.turn_until_idle();
  CHECK(p.read() == "hello");
}

TEST_CASE("gateway end of turn: deferred work runs after every ready handler, then what it defers") {
  net::io_context ioc;
  EndOfTurn turn(ioc);
  std::vector<std::string> order;
  net::post(ioc, [&] {
    order.push_back("a");
    turn.defer([&] {
      order.push_back("deferred");
      turn.defer([&] { order.push_back("deferred by deferred"); });
    });
    net::post(ioc, [&] { order.push_back("posted by a"); });
  });
  net::post(ioc, [&] { order.push_back("b"); });
  turn.run();
  CHECK(order == std::vector<std::string>{"a", "b", "posted by a", "deferred", "deferred by deferred"});
}
