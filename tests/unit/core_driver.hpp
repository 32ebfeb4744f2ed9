// core_driver.hpp — a BrokerCore under a fake clock for the core's unit tests: the clock, the
// log of every action emitted, and the readers every harness needs (broker_core_test.cpp's
// Harness and stream_harness.hpp's StreamHarness build their events on it).
// Must never: decide anything itself (every rule is the core's) or send an event on its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "broker_core.hpp"

namespace muster::broker::testing {

inline Peer peer(const std::string& id) { return Peer{id, false, ""}; }

struct CoreDriver {
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  BrokerCore core;
  Caller local;
  std::vector<Action> log;  // everything emitted, in order

  explicit CoreDriver(const CoreConfig& c) : core(c, now) { take(); }

  // What the core emitted since the last take (also appended to `log`).
  std::vector<Action> take() {
    std::vector<Action> out;
    out.swap(core.actions());
    log.insert(log.end(), out.begin(), out.end());
    return out;
  }

  // The clock moves on by `d` and the core's timers run.
  std::vector<Action> advance(Millis d) {
    now += d;
    core.tick(now);
    return take();
  }

  // The seq of the newest ping addressed to this worker (or broadcast).
  std::uint64_t last_ping_seq(const std::string& id) const {
    std::uint64_t seq = 0;
    for (auto& a : log)
      if (auto* p = std::get_if<SendPing>(&a); p && (p->worker_id == id || p->worker_id.empty())) seq = p->seq;
    return seq;
  }
};

}  // namespace muster::broker::testing
