// journal_records.hpp — what the journal tests write: a durable call of a given job id with
// small payloads, byte helpers, one turn of records. Shared by the contract tests (every
// journal) and the tests of one implementation.
#pragma once

#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <string>
#include <vector>

#include "journal.hpp"

namespace muster::test {

using namespace std::chrono_literals;

inline const broker::journal::WallTime kT0{std::chrono::milliseconds{1'800'000'000'000}};

inline broker::Payload bytes_of(const std::string& s) {
  return broker::Payload::copy_of({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
}
inline std::string string_of(const broker::Payload& p) { return {p.bytes.begin(), p.bytes.end()}; }

inline broker::journal::Call call(broker::journal::JobId id, std::string inputs = "in",
                                  std::string parameters = "") {
  broker::journal::Call c;
  c.job_id = id;
  c.node = "resize";
  c.caller = broker::Caller{"id-client", "alice", "ws1", "client"};
  c.trace_id = "trace-" + std::to_string(id);
  c.inputs = bytes_of(inputs);
  c.parameters = bytes_of(parameters);
  c.idempotent = id % 2 == 0;
  c.submitted = kT0 + std::chrono::milliseconds{id};
  c.deadline = kT0 + 30s;
  return c;
}

inline void one_turn(broker::journal::Journal& j, std::initializer_list<broker::journal::Record> records) {
  j.begin_turn();
  for (const auto& r : records) j.append(r);
  j.commit();
}

// The commit-cost benchmark (docs/DURABILITY.md §10), the same for every journal: `turns` turns
// of `per_turn` Submitted records of 64 B, each followed by a turn of their Finished records
// (64 B outputs); the p50 time of one turn of each, in µs (begin_turn to commit returned).
// The records go in with append_all(), as musterd's journal thread sends a batch
// (`one_by_one`: with append() of each, as before the PostgreSQL journal pipelined a batch).
struct TurnCost {
  double submit_us = 0, finish_us = 0;
};
inline TurnCost commit_cost(broker::journal::Journal& j, std::size_t per_turn, int turns, bool one_by_one = false) {
  using namespace broker::journal;
  using Steady = std::chrono::steady_clock;
  auto us_since = [](Steady::time_point t) {
    return std::chrono::duration<double, std::micro>(Steady::now() - t).count();
  };
  auto p50 = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  JobId next = j.load().next_job_id;
  std::vector<double> submit_us, finish_us;
  auto append = [&](const std::vector<JournalOp>& ops) {
    if (!one_by_one) return j.append_all(ops);
    for (auto& op : ops) j.append(std::get<Record>(op));
  };
  for (int t = 0; t < turns; ++t) {
    const JobId first = next;
    auto start = Steady::now();
    std::vector<JournalOp> ops;
    for (std::size_t i = 0; i < per_turn; ++i) ops.push_back(Record{Submitted{call(next++, std::string(64, 'x'))}});
    j.begin_turn();
    append(ops);
    j.commit();
    submit_us.push_back(us_since(start));
    ops.clear();
    for (JobId id = first; id < next; ++id)
      ops.push_back(Record{Finished{id, Outcome{broker::ErrorCode::None, bytes_of(std::string(64, 'r')), ""}, kT0, kT0 + 1h}});
    start = Steady::now();
    j.begin_turn();
    append(ops);
    j.commit();
    finish_us.push_back(us_since(start));
  }
  return {p50(submit_us), p50(finish_us)};
}

}  // namespace muster::test
