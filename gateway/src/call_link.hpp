// call_link.hpp — the gateway's node calls to musterd, made on the gateway's Asio thread: a
// muster::Client of its own whose ZeroMQ socket the Asio reactor watches, so a call goes from a
// WebSocket or REST request to musterd and its answer back without a hop through another thread
// (the DaemonLink thread only polls the lists). The calls submitted in one Asio turn are sent
// to musterd together at the end of the turn (end_of_turn.hpp): one burst, so libzmq's I/O thread
// and musterd wake once per batch, not once per call.
// Owns: the mapping from the gateway's call ids to the client's request ids, and the rule that
// every submitted call gets exactly one terminal event, never from inside submit().
// Must never: block the Asio thread (the Client is created only once musterd has answered the
// poller, which enrolled first if enrollment was needed), or be used from another thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon_link.hpp"
#include "end_of_turn.hpp"
#include "net.hpp"

namespace muster::gateway {

class CallLink {
 public:
  using OnEvent = std::function<void(CallEvent)>;
  CallLink(bridge::net::io_context& ioc, EndOfTurn& turn, ClientOptions options, OnEvent on_event);
  ~CallLink();

  // Connects if not connected (musterd answered the poller). Throws nothing: a failure leaves it
  // unconnected, and calls fail UNAVAILABLE until the next try.
  void connect();
  bool connected() const { return client_ != nullptr; }
  // The call is `user`'s (ClientMessage.on_behalf_of). Its events come through on_event. It
  // reaches musterd at the end of this Asio turn, with the others submitted in the turn.
  void submit(std::uint64_t call_id, CallRequest request, OnBehalfOf user);
  void cancel(std::uint64_t call_id);
  // musterd is unreachable: every open call ends UNAVAILABLE (`why`), the connection is dropped.
  void reset(const std::string& why);

 private:
  struct Outgoing {
    std::uint64_t call_id;
    CallRequest request;
    OnBehalfOf user;
  };
  // Sends the calls submitted in this turn (in order), then reads what is waiting.
  void send_outbox();
  void send_now(Outgoing& out);
  void arm();
  void drain();
  void schedule_drain();
  void post_event(CallEvent ev);

  bridge::net::io_context& ioc_;
  EndOfTurn& turn_;
  std::vector<Outgoing> outbox_, sending_;
  ClientOptions options_;
  OnEvent on_event_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<bridge::net::posix::stream_descriptor> fd_;  // a dup of the client's ZeroMQ fd
  bool armed_ = false, drain_posted_ = false;
  std::uint64_t generation_ = 0;  // of client_: a wait of an old connection is ignored
  std::unordered_map<std::uint64_t, std::uint64_t> request_of_call_, call_of_request_;
};

}  // namespace muster::gateway
