// registry_test.cpp — the node index of broker/registry: what node() finds, while entries come
// and go (it remembers the entry it found last, and must never hand out one that was erased).
#include <doctest/doctest.h>

#include <string>
#include <utility>

#include "registry.hpp"

using namespace muster;
using namespace muster::broker;

namespace {
WorkerEntry worker(const std::string& id, const std::string& workspace, std::vector<std::string> nodes) {
  WorkerEntry w;
  w.id = id;
  w.owner.workspace = workspace;
  for (auto& n : nodes) {
    NodeSpec spec;
    spec.name = n;
    w.nodes.push_back(spec);
  }
  return w;
}
}  // namespace

TEST_CASE("registry: node() finds each (workspace, name) and nothing else, asked again and again") {
  Registry reg;
  auto& a = reg.add(worker("w1", "ws", {"echo", "sum"}));
  reg.add(worker("w2", "other", {"echo"}));
  for (int round = 0; round < 2; ++round) {
    const NodeEntry* echo = reg.node("ws", "echo");
    REQUIRE(echo != nullptr);
    CHECK(echo->workers == std::vector<WorkerEntry*>{&a});
    CHECK(reg.node("ws", "echo") == echo);                   // a repeat: the same entry
    CHECK(reg.node(NodeKey{"ws", "sum"}) != echo);           // another name
    CHECK(reg.node("other", "echo") != echo);                // another workspace
    CHECK(reg.node("other", "echo") != nullptr);
    CHECK(reg.node("ws", "ech") == nullptr);                 // a prefix of a known name
    CHECK(reg.node("w", "secho") == nullptr);
    CHECK(std::as_const(reg).node("ws", "sum") == reg.node(NodeKey{"ws", "sum"}));
  }
}

TEST_CASE("registry: an entry erased while it was the last one found is not found again") {
  Registry reg;
  reg.add(worker("w1", "ws", {"echo"}));
  REQUIRE(reg.node("ws", "echo") != nullptr);  // remembered
  reg.remove("w1");                            // its only worker leaves: the entry is erased
  CHECK(reg.node("ws", "echo") == nullptr);
  CHECK(reg.node(NodeKey{"ws", "echo"}) == nullptr);
  // A new worker makes a new entry, found with it (not the erased one).
  auto& again = reg.add(worker("w2", "ws", {"echo"}));
  const NodeEntry* entry = reg.node("ws", "echo");
  REQUIRE(entry != nullptr);
  CHECK(entry->workers == std::vector<WorkerEntry*>{&again});
  // drop_if_unused erases only an entry with neither workers nor a queue.
  reg.drop_if_unused(NodeKey{"ws", "echo"});
  CHECK(reg.node("ws", "echo") == entry);
  reg.unindex(again);  // no worker, nothing queued: erased by unindex's drop
  CHECK(reg.node("ws", "echo") == nullptr);
}

TEST_CASE("registry: a registry moved to finds the entries; the one moved from keeps none of them") {
  Registry from;
  auto& w = from.add(worker("w1", "ws", {"echo"}));
  const NodeEntry* echo = from.node("ws", "echo");  // remembered
  REQUIRE(echo != nullptr);
  Registry to = std::move(from);
  CHECK(to.node("ws", "echo") == echo);  // std::map's nodes stay where they were
  CHECK(to.node("ws", "echo")->workers == std::vector<WorkerEntry*>{&w});
  // The moved-from registry's map is empty: its remembered entry, now the other registry's,
  // must not be handed out.
  CHECK(from.node("ws", "echo") == nullptr);
  Registry assigned;
  assigned.add(worker("w9", "ws", {"sum"}));
  assigned = std::move(to);
  CHECK(assigned.node("ws", "echo") == echo);
  CHECK(assigned.node("ws", "sum") == nullptr);
  CHECK(to.node("ws", "echo") == nullptr);
}
