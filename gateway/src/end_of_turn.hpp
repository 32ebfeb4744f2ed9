// end_of_turn.hpp — work the gateway's Asio thread does once it has run every handler that was
// ready, just before it waits for the next event: the calls read from the WebSockets in that
// turn go to musterd in one burst, and the messages queued for each WebSocket leave in one
// write. Under load a turn holds many messages, so the syscalls and wake-ups (of libzmq's I/O
// thread, of musterd, of the client) are paid per batch instead of per call.
// Owns: the run loop of the io_context (run() replaces io_context::run()).
// Must never: run deferred work from inside the handler that deferred it, or be used from
// another thread.
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include "net.hpp"

namespace muster::gateway {

class EndOfTurn {
 public:
  explicit EndOfTurn(boost::asio::io_context& ioc) : ioc_(ioc) {}

  // Runs `work` at the end of this turn (in the order deferred). Callers defer once per turn
  // (they keep a flag) rather than once per message.
  void defer(std::function<void()> work) { deferred_.push_back(std::move(work)); }

  // io_context::run(), with the deferred work run after each batch of ready handlers. Returns
  // when the io_context is stopped or out of work.
  void run() {
    for (;;) {
      if (ioc_.run_one() == 0) break;  // waits for the next event
      ioc_.poll();                     // and runs everything else that is ready
      flush();
      if (ioc_.stopped()) break;
    }
    flush();
  }

  // Runs the deferred work now (what deferred work defers in turn runs in the same call).
  void flush() {
    while (!deferred_.empty()) {
      running_.swap(deferred_);
      for (auto& work : running_) work();
      running_.clear();
    }
  }

 private:
  boost::asio::io_context& ioc_;
  std::vector<std::function<void()>> deferred_, running_;
};

}  // namespace muster::gateway
