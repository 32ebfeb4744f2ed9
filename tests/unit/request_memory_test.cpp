// request_memory_test.cpp — the pieces that keep an open request small: the Interner (shared
// copies of what many requests have in common), the DeadlineQueue (a heap with stale entries
// dropped lazily), Payload::copy_of_both (both payloads in one block) and SpareNodes (the
// request map's nodes reused).
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "deadline_queue.hpp"
#include "events.hpp"
#include "interner.hpp"
#include "spare_nodes.hpp"
#include "allocation_counter.hpp"

using namespace muster::broker;

namespace {
struct StringHash {
  std::size_t operator()(const std::string& s) const { return hash_parts(s); }
};
}  // namespace

TEST_CASE("interner: equal values share one copy, different ones do not") {
  Interner<std::string, StringHash> in;
  auto a = in.get("connection-a");
  auto a2 = in.get(std::string("connection-a"));
  auto b = in.get("connection-b");
  CHECK(a.get() == a2.get());
  CHECK(a.get() != b.get());
  CHECK(*a == "connection-a");
  CHECK(*b == "connection-b");
  CHECK(in.size() == 2);
}

TEST_CASE("interner: values nobody holds are forgotten, held ones survive the sweep") {
  Interner<std::string, StringHash> in;
  auto kept = in.get("kept");
  for (int i = 0; i < 10000; ++i) (void)in.get("gone-" + std::to_string(i));  // released at once
  CHECK(in.size() <= 2 * 1 + 64);  // within twice the values in use, plus the slack
  auto again = in.get("kept");
  CHECK(again.get() == kept.get());
  CHECK(*kept == "kept");
}

TEST_CASE("hash_parts: the order of the parts matters") {
  const std::string a = "a", b = "b";
  CHECK(hash_parts(a, b) != hash_parts(b, a));
  CHECK(hash_parts(std::string("a"), 1) == hash_parts(std::string("a"), 1));
}

TEST_CASE("deadline queue: live entries come out in (deadline, id) order, stale ones never") {
  using TP = std::chrono::steady_clock::time_point;
  using std::chrono::milliseconds;
  DeadlineQueue<TP> q;
  std::set<std::uint64_t> live;
  auto is_live = [&](std::uint64_t id) { return live.contains(id); };
  std::mt19937_64 rng(7);
  std::set<std::pair<TP, std::uint64_t>> expected;  // what the std::set it replaced would hold
  for (std::uint64_t id = 1; id <= 5000; ++id) {
    TP t = TP{} + milliseconds(rng() % 200);  // many equal deadlines: the id breaks the tie
    live.insert(id);
    expected.emplace(t, id);
    q.push(t, id, live.size(), is_live);
    if (rng() % 3 != 0) {  // most requests end before their deadline
      auto victim = 1 + rng() % id;
      if (live.erase(victim))
        std::erase_if(expected, [&](auto& e) { return e.second == victim; });
      q.drop_stale_front(is_live);
    }
    // Stale entries are swept: never more than twice the open requests plus the slack.
    CHECK(q.size() <= 2 * live.size() + 65);
    if (!q.empty()) CHECK(q.front() == *expected.begin());
  }
  std::vector<std::pair<TP, std::uint64_t>> out;
  for (q.drop_stale_front(is_live); !q.empty(); q.drop_stale_front(is_live)) {
    out.push_back(q.front());
    q.pop();
  }
  CHECK(out == std::vector<std::pair<TP, std::uint64_t>>(expected.begin(), expected.end()));
}

TEST_CASE("payload: copy_of_both keeps both in one block, 8-byte aligned, equal to the originals") {
  std::vector<std::uint8_t> in{1, 2, 3, 4, 5}, params{9, 8, 7};
  auto [a, b] = Payload::copy_of_both(in, params);
  CHECK(a.owner == b.owner);
  CHECK(std::vector<std::uint8_t>(a.bytes.begin(), a.bytes.end()) == in);
  CHECK(std::vector<std::uint8_t>(b.bytes.begin(), b.bytes.end()) == params);
  CHECK(reinterpret_cast<std::uintptr_t>(a.bytes.data()) % 8 == 0);
  CHECK(reinterpret_cast<std::uintptr_t>(b.bytes.data()) % 8 == 0);
  CHECK(a.bytes.data() != in.data());  // a copy, not a view
  auto [e, p] = Payload::copy_of_both({}, params);
  CHECK(e.bytes.empty());
  CHECK(std::vector<std::uint8_t>(p.bytes.begin(), p.bytes.end()) == params);
  auto one = Payload::copy_of(in);
  CHECK(std::vector<std::uint8_t>(one.bytes.begin(), one.bytes.end()) == in);
}

TEST_CASE("spare nodes: an erased entry's node comes back for the next one, its value made anew") {
  struct Value {
    std::shared_ptr<int> held;
    std::string name = "fresh";
  };
  using Map = std::unordered_map<std::uint64_t, Value>;
  Map map;
  SpareNodes<Map> spare(2);
  auto payload = std::make_shared<int>(7);
  Value& a = spare.insert(map, 1);  // none spare yet: a new node
  a.held = payload;
  a.name = "a name longer than the small-string buffer";
  const Value* at = &a;
  spare.erase(map, map.find(1));
  CHECK(map.empty());
  CHECK(spare.spare() == 1);
  CHECK(payload.use_count() == 1);  // released at erase, as erase() would
  auto before = muster::test::allocations_on_this_thread();
  Value& b = spare.insert(map, 5);
  CHECK(muster::test::allocations_on_this_thread() == before);  // no malloc: the spare node
  CHECK(&b == at);
  CHECK(b.held == nullptr);
  CHECK(b.name == "fresh");
  CHECK(map.size() == 1);
  CHECK(map.at(5).name == "fresh");
  CHECK(spare.spare() == 0);
  // At most `keep` are kept: beyond that an erased node is freed.
  for (std::uint64_t k = 10; k < 14; ++k) spare.insert(map, k);
  for (std::uint64_t k = 10; k < 14; ++k) spare.erase(map, map.find(k));
  CHECK(spare.spare() == 2);
  CHECK(map.size() == 1);
}
