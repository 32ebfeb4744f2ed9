// subscription_policy_test.cpp — which subscriptions musterd applies on its request socket
// (issue 12, item 1): the broadcast topic and the subscriber's own worker topics, nothing else.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "subscription_policy.hpp"

using namespace muster::broker;

namespace {
std::vector<std::uint8_t> msg(std::uint8_t kind, const std::string& topic) {
  std::vector<std::uint8_t> out{kind};
  out.insert(out.end(), topic.begin(), topic.end());
  return out;
}
SubscriptionDecision subscribe(const std::string& topic, const std::string& identity) {
  return decide_subscription(msg(1, topic), identity);
}
const std::string kAlice = "7d3c6a52-8d0e-4f7e-9a3b-0c1d2e3f4a5b";
const std::string kBob = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
}  // namespace

TEST_CASE("worker topics are named after the attaching identity") {
  CHECK(worker_topic("local", "w1") == "w:local:w1:");
  CHECK(worker_topic(kAlice, "gpu-1") == "w:" + kAlice + ":gpu-1:");
}

TEST_CASE("the broadcast topic and the subscriber's own worker topics are applied") {
  for (auto& id : {kAlice, std::string("local"), std::string("anonymous")}) {
    auto b = subscribe("b:", id);
    CHECK(b.apply);
    CHECK(b.subscribe);
    CHECK(b.topic == "b:");
    auto w = subscribe(worker_topic(id, "w-1.a_B"), id);
    CHECK(w.apply);
    CHECK(w.topic == worker_topic(id, "w-1.a_B"));
    CHECK(w.reason.empty());
  }
}

TEST_CASE("prefixes, other identities' topics and malformed topics are refused") {
  const std::vector<std::string> refused = {
       std::string(""), std::string("w"), std::string("w:"), "w:" + kBob, "w:" + kBob + ":",
        worker_topic(kBob, "w1"), "w:" + kAlice, "w:" + kAlice + ":",  // no worker id
        "w:" + kAlice + "::", "w:" + kAlice + ":w1", "w:" + kAlice + ":w:1:",
        "w:" + kAlice + ":" + std::string(65, 'x') + ":", "w:" + kAlice + ":w\x01:",
        std::string("b"), std::string("b:x"), std::string("x:"), "w:" + kAlice.substr(0, 8) + ":w1:", std::string("w:local:w1:"),
        std::string("b:\0", 3)};
  for (auto& topic : refused) {
    INFO("topic: " << topic);
    auto d = subscribe(topic, kAlice);
    CHECK_FALSE(d.apply);
    CHECK_FALSE(d.reason.empty());
  }
  // An identity that is a prefix of another's names none of its topics.
  CHECK_FALSE(subscribe(worker_topic("local2", "w1"), "local").apply);
  CHECK_FALSE(subscribe(worker_topic("local", "w1"), "local2").apply);
  CHECK_FALSE(subscribe(worker_topic("local", "w1"), "anonymous").apply);
}

TEST_CASE("unsubscriptions are applied (they remove only the sender's own) and junk is refused") {
  auto u = decide_subscription(msg(0, ""), kAlice);
  CHECK(u.apply);
  CHECK_FALSE(u.subscribe);
  CHECK(decide_subscription(msg(0, worker_topic(kBob, "w1")), kAlice).apply);
  CHECK_FALSE(decide_subscription(std::vector<std::uint8_t>{}, kAlice).apply);
  CHECK_FALSE(decide_subscription(msg(2, "b:"), kAlice).apply);
  CHECK_FALSE(decide_subscription(msg('b', ":"), kAlice).apply);
}
