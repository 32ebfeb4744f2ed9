// leadership.hpp — who of a failover pair writes the shared journal (docs/DURABILITY.md §12):
// the rules for one lease row with a fencing epoch, as pure functions of the row, the daemon's
// own name and epoch, and a time that is passed in.
// Owns: when a daemon takes, renews or has lost the lease; when a turn may commit (fencing);
// when a standby looks again; when a leader must give up on its own clock (it cannot renew).
// Must never: read a clock, touch a store or a socket. The store applies a decision under the
// row's lock (journal_postgres.cpp: SELECT … FOR UPDATE, then UPDATE), so two daemons deciding
// at once are serialised there and exactly one of them takes the lease.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace muster::broker::leadership {

// Wall-clock time in ms since the Unix epoch (the store's clock: both daemons read the same one).
using WallTime = std::chrono::sys_time<std::chrono::milliseconds>;
using Millis = std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock::time_point;

// The lease row of one shard. An empty holder: free (released by a daemon that stopped cleanly).
// The epoch only grows: every take adds one, renewals keep it, a release keeps it.
struct Lease {
  std::string holder;
  std::uint64_t epoch = 0;
  WallTime expires{};
  bool operator==(const Lease&) const = default;
};

enum class Claim {
  Take,   // the lease is free or expired: take it, with the next epoch
  Renew,  // it is ours (same holder, same epoch): extend it
  Wait,   // another daemon holds it and it has not expired: stay standby
  Lost,   // we led at an epoch the row no longer holds: another daemon took over; stop at once
};

struct Decision {
  Claim claim = Claim::Wait;
  Lease next;  // Take and Renew: the row to write; Wait and Lost: the row as read
};

// What daemon `me`, leading at epoch `mine` (0: it does not lead), does with `row`, read at the
// store's time `now`; `term` is how long a take or a renewal holds the lease.
Decision decide(const Lease& row, const std::string& me, std::uint64_t mine, WallTime now, Millis term);

// What a daemon learnt when it tried to lead (journal.hpp Journal::try_lead).
struct Standing {
  bool leading = true;
  Lease lease;            // the row as it was read (not leading: who holds it, until when)
  Millis retry_in{0};     // not leading: when to try again
};

// Fencing: a turn of a daemon leading at `mine` may commit only while the row holds that
// epoch (read FOR SHARE at the start of the turn, so no take can pass it before the commit).
bool may_write(std::uint64_t row_epoch, std::uint64_t mine);

// When a standby looks at the row again: when it expires, but at most `poll` from now (a
// leader that stops cleanly frees it early), at least 10 ms.
Millis retry_in(const Lease& row, WallTime now, Millis poll);

// A leader's own view of its term, on its steady clock (between renewals it reads no other).
// A renewal asked at time t makes the row's expiry at least t + term (the store stamps it
// later), so a leader whose last successful renewal was asked `term` ago can no longer know
// that the lease is its own: it must stop, even if the store cannot be reached.
class Tenure {
 public:
  explicit Tenure(Millis term) : term_(term) {}
  void renewed(SteadyTime asked_at) { asked_ = asked_at; }
  // Renew every quarter term: three renewals may fail or come late before the term runs out.
  bool renew_due(SteadyTime now) const { return now - asked_ >= term_ / 4; }
  bool expired(SteadyTime now) const { return now - asked_ >= term_; }
  Millis since_renewal(SteadyTime now) const {
    return std::chrono::duration_cast<Millis>(now - asked_);
  }
  Millis term() const { return term_; }

 private:
  Millis term_;
  SteadyTime asked_{};
};

}  // namespace muster::broker::leadership
