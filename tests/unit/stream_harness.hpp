// stream_harness.hpp — a BrokerCore under a fake clock with workers serving node "n" and one
// caller "c1", for the stream tests (items: stream_credit_test.cpp, chunks:
// broker_core_chunks_test.cpp): helpers that speak for them, and readers of what they were sent.
// Must never: decide anything itself (every rule is the core's).
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "broker_core.hpp"
#include "core_driver.hpp"
#include "muster/messages.hpp"

namespace stream_test {

using namespace muster;
using namespace muster::broker;
using namespace std::chrono_literals;

using testing::peer;

inline CoreConfig stream_config() {
  CoreConfig c;
  c.ping_interval = 1000ms;
  c.liveness = 3;
  c.max_attempts = 3;
  c.confirm_interval = 100ms;
  c.instance = "inst-1";
  return c;
}

// A core with workers serving `n` (idempotent as asked), and helpers that speak for them and
// for one caller "c1"; every action emitted is kept in `log`.
struct StreamHarness : testing::CoreDriver {
  explicit StreamHarness(CoreConfig c = stream_config()) : CoreDriver(c) {}

  std::vector<Action> pong(const std::string& id, std::vector<std::uint64_t> in_flight = {}) {
    core.on_pong(now, peer("wp-" + id), local, id, last_ping_seq(id), "inst-1", in_flight);
    return take();
  }
  void ready(const std::string& id, bool idempotent = false, bool durable = false) {
    AttachEvent ev;
    ev.worker_id = id;
    ev.session = "s1";
    ev.no_answer_acks = true;
    NodeSpec spec;
    spec.name = "n";
    spec.idempotent = idempotent;
    spec.durable = durable;
    ev.nodes = {spec};
    core.on_attach(now, peer("wp-" + id), local, std::move(ev));
    take();
    pong(id);
  }
  std::vector<Action> submit(std::uint64_t rid, std::uint32_t window_items, std::uint64_t window_bytes = 0,
                             bool durable = false, std::uint64_t timeout_ms = 0) {
    SubmitEvent ev;
    ev.client_request_id = rid;
    ev.node = "n";
    ev.timeout_ms = timeout_ms;
    ev.durable = durable;
    ev.stream_window_items = window_items;
    ev.stream_window_bytes = window_bytes;
    core.on_submit(now, peer("c1"), local, std::move(ev));
    return take();
  }
  std::vector<Action> item(const std::string& worker, std::uint64_t id, std::uint64_t seq, std::size_t size = 8) {
    core.on_item(now, peer("wp-" + worker), local, worker, id, seq,
                 Payload::copy_of(std::vector<std::uint8_t>(size, 7)));
    return take();
  }
  std::vector<Action> credit(std::uint64_t rid, std::uint64_t items, std::uint64_t bytes) {
    core.on_credit(now, peer("c1"), CreditEvent{rid, 0, items, bytes});
    return take();
  }
  std::vector<Action> result(const std::string& worker, std::uint64_t id) {
    core.on_result(now, peer("wp-" + worker), local, worker, id, Payload::copy_of(std::vector<std::uint8_t>{9}));
    return take();
  }
};

template <class T>
std::vector<T> all(const std::vector<Action>& actions) {
  std::vector<T> out;
  for (auto& a : actions)
    if (auto* p = std::get_if<T>(&a)) out.push_back(*p);
  return out;
}

// What the caller received, in order: "item <seq>", "result", "failure <CODE>", "accepted".
inline std::vector<std::string> caller_saw(const std::vector<Action>& log) {
  std::vector<std::string> out;
  for (auto& r : all<ReplyToClient>(log)) {
    if (auto* i = std::get_if<ItemBody>(&r.body)) out.push_back("item " + std::to_string(i->seq));
    else if (std::holds_alternative<ResultBody>(r.body)) out.push_back("result");
    else if (auto* f = std::get_if<FailureBody>(&r.body)) out.push_back("failure " + std::string(error_code_name(f->code)));
  }
  return out;
}

inline std::size_t terminal_count(const std::vector<Action>& log) {
  std::size_t n = 0;
  for (auto& s : caller_saw(log)) n += s.rfind("item", 0) != 0;
  return n;
}

inline std::uint64_t dispatched_id(const std::vector<Action>& actions) {
  auto sent = all<SendWorkRequest>(actions);
  REQUIRE(sent.size() == 1);
  return sent[0].request_id;
}

}  // namespace stream_test
