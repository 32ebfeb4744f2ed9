// leadership_test.cpp — the lease rules of a failover pair (broker/leadership.hpp) under a fake
// clock: a store that applies each decision under the row's lock, as PostgreSQL does, and two
// daemons that take, renew, pause, and fence their turns.
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "leadership.hpp"

using namespace muster::broker::leadership;
using namespace std::chrono_literals;

namespace {

const WallTime kT0{std::chrono::milliseconds{1'800'000'000'000}};
constexpr Millis kTerm = 4000ms;

// One lease row; each daemon's step reads it and writes its decision in one go (the row lock
// of journal_postgres.cpp serialises them exactly like this).
struct FakeStore {
  Lease row;
  WallTime now = kT0;
};

// A daemon as journal_postgres.cpp drives the rules: `mine` is the epoch it leads at.
struct FakeDaemon {
  std::string name;
  std::uint64_t mine = 0;
  Tenure tenure{kTerm};

  // try_lead (standby) or keep (leader): one decision on the row, written when it takes or renews.
  Claim step(FakeStore& store, SteadyTime steady) {
    const Decision d = decide(store.row, name, mine, store.now, kTerm);
    if (d.claim == Claim::Take || d.claim == Claim::Renew) {
      store.row = d.next;
      mine = d.next.epoch;
      tenure.renewed(steady);
    }
    if (d.claim == Claim::Lost) mine = 0;
    return d.claim;
  }
  // The fencing read at the start of a turn.
  bool may_commit(const FakeStore& store) const { return may_write(store.row.epoch, mine); }
};

SteadyTime steady(Millis since_start) { return SteadyTime{} + 1h + since_start; }

}  // namespace

TEST_CASE("leadership: a free lease is taken with the next epoch; held, it makes others wait") {
  FakeStore store;
  FakeDaemon a{"a"}, b{"b"};
  CHECK(a.step(store, steady(0ms)) == Claim::Take);
  CHECK(store.row == Lease{"a", 1, kT0 + kTerm});
  CHECK(b.step(store, steady(0ms)) == Claim::Wait);
  CHECK(b.mine == 0);
  CHECK_FALSE(b.may_commit(store));
  CHECK(a.may_commit(store));
  // The standby looks again when the lease can end, but at least every poll.
  CHECK(retry_in(store.row, store.now, 500ms) == 500ms);
  CHECK(retry_in(store.row, store.now + kTerm - 120ms, 500ms) == 120ms);
  CHECK(retry_in(store.row, store.now + kTerm + 1s, 500ms) == 10ms);
}

TEST_CASE("leadership: both daemons started at once: exactly one leads") {
  // Whichever order the row lock grants them, the second sees the first's row.
  for (bool a_first : {true, false}) {
    FakeStore store;
    FakeDaemon a{"a"}, b{"b"};
    FakeDaemon& first = a_first ? a : b;
    FakeDaemon& second = a_first ? b : a;
    CHECK(first.step(store, steady(0ms)) == Claim::Take);
    CHECK(second.step(store, steady(0ms)) == Claim::Wait);
    CHECK((a.mine != 0) != (b.mine != 0));
    CHECK(store.row.holder == first.name);
  }
}

TEST_CASE("leadership: renewals keep the epoch and the lease; a standby never takes a renewed one") {
  FakeStore store;
  FakeDaemon a{"a"}, b{"b"};
  a.step(store, steady(0ms));
  for (int i = 1; i <= 20; ++i) {
    store.now = kT0 + i * (kTerm / 4);
    const SteadyTime t = steady(i * (kTerm / 4));
    CHECK(a.tenure.renew_due(t));
    CHECK(a.step(store, t) == Claim::Renew);
    CHECK(store.row == Lease{"a", 1, store.now + kTerm});
    CHECK(b.step(store, t) == Claim::Wait);
  }
  CHECK_FALSE(a.tenure.renew_due(steady(20 * (kTerm / 4)) + 999ms));
  CHECK_FALSE(a.tenure.expired(steady(20 * (kTerm / 4)) + kTerm - 1ms));
}

TEST_CASE("leadership: the standby takes over once the leader's lease ran out, never before") {
  FakeStore store;
  FakeDaemon a{"a"}, b{"b"};
  a.step(store, steady(0ms));  // a leads, then dies (SIGKILL): no more renewals
  store.now = kT0 + kTerm - 1ms;
  CHECK(b.step(store, steady(kTerm - 1ms)) == Claim::Wait);
  store.now = kT0 + kTerm;
  CHECK(b.step(store, steady(kTerm)) == Claim::Take);
  CHECK(store.row == Lease{"b", 2, kT0 + 2 * kTerm});
}

TEST_CASE("leadership: a leader that stops cleanly frees the lease: the standby takes it at once") {
  FakeStore store;
  FakeDaemon a{"a"}, b{"b"};
  a.step(store, steady(0ms));
  store.row = Lease{"", 1, WallTime{}};  // journal_postgres release(): holder '', epoch kept
  CHECK(b.step(store, steady(10ms)) == Claim::Take);
  CHECK(store.row.epoch == 2);  // never reused, even after a release
}

TEST_CASE("leadership: a paused old leader's writes are refused once the standby took over") {
  FakeStore store;
  FakeDaemon a{"a"}, b{"b"};
  a.step(store, steady(0ms));
  CHECK(a.may_commit(store));
  // a is SIGSTOPped: it renews nothing; its term runs out and b takes over.
  store.now = kT0 + kTerm + 1ms;
  CHECK(b.step(store, steady(kTerm + 1ms)) == Claim::Take);
  CHECK(b.may_commit(store));
  // a wakes (SIGCONT) believing it leads at epoch 1: its own clock already says it cannot
  // know, its next turn is refused by the fencing read, and a renewal tells it it lost.
  const SteadyTime woke = steady(kTerm + 5s);
  CHECK(a.tenure.expired(woke));
  CHECK_FALSE(a.may_commit(store));
  CHECK(a.step(store, woke) == Claim::Lost);
  CHECK(a.mine == 0);
  CHECK(store.row.holder == "b");  // a wrote nothing
  CHECK(store.row.epoch == 2);
}

TEST_CASE("leadership: a leader is lost when its row changed hands, even back to a free row") {
  FakeStore store;
  FakeDaemon a{"a"};
  a.step(store, steady(0ms));
  SUBCASE("another daemon holds it") { store.row = Lease{"b", 2, kT0 + kTerm}; }
  SUBCASE("it was released and taken and released again meanwhile") { store.row = Lease{"", 3, WallTime{}}; }
  SUBCASE("a daemon of the same name at another epoch") { store.row = Lease{"a", 5, kT0 + kTerm}; }
  CHECK(a.step(store, steady(1s)) == Claim::Lost);
  CHECK_FALSE(may_write(store.row.epoch, 1));
}

TEST_CASE("leadership: a leader that cannot renew gives up on its own clock within one term") {
  Tenure t(kTerm);
  t.renewed(steady(0ms));
  CHECK_FALSE(t.renew_due(steady(999ms)));
  CHECK(t.renew_due(steady(1000ms)));
  CHECK_FALSE(t.expired(steady(kTerm - 1ms)));
  CHECK(t.expired(steady(kTerm)));  // the store's expiry is at least this late: stop now
  CHECK(t.since_renewal(steady(kTerm)) == kTerm);
  CHECK_FALSE(may_write(0, 0));  // a daemon that never led writes nothing
}
