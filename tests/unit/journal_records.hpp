// journal_records.hpp — what the journal tests write: a durable call of a given job id with
// small payloads, byte helpers, one turn of records. Shared by the contract tests (every
// journal) and the tests of one implementation.
#pragma once

#include <chrono>
#include <initializer_list>
#include <string>

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

}  // namespace muster::test
