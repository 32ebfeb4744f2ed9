// journal_recovery_test.cpp — the recovery rules (broker/journal_recovery.hpp) for every state a
// durable call can be in when the daemon dies, under a fake wall clock.
#include <doctest/doctest.h>

#include "journal_recovery.hpp"

using namespace muster::broker;
using namespace muster::broker::journal;
using namespace std::chrono_literals;

namespace {

const WallTime kStart{std::chrono::milliseconds{1'800'000'000'000}};  // the restart

Call queued(JobId id, std::string node = "resize") {
  Call c;
  c.job_id = id;
  c.state = CallState::Queued;
  c.node = std::move(node);
  c.submitted = kStart - 10s;
  c.deadline = kStart + 60s;
  return c;
}

Call running(JobId id, bool idempotent, std::uint32_t attempts = 1) {
  Call c = queued(id);
  c.state = CallState::Running;
  c.idempotent = idempotent;
  c.worker_id = "w1";
  c.worker_identity = "id-w1";
  c.request_id = (std::uint64_t{1} << 40) + id;
  c.attempts = attempts;
  return c;
}

Call finished(JobId id, WallTime expires) {
  Call c = queued(id);
  c.state = CallState::Finished;
  c.outcome = Outcome{ErrorCode::None, Payload::copy_of(std::vector<std::uint8_t>{1, 2}), ""};
  c.finished = kStart - 5s;
  c.expires = expires;
  return c;
}

RecoveryView view_at(WallTime now, std::vector<Reattached> workers = {}) {
  RecoveryView v;
  v.now = now;
  v.reattach_until = kStart + 3s;  // ping 1 s × liveness 3
  v.workers = std::move(workers);
  v.max_attempts = 3;
  v.result_ttl = 1h;
  return v;
}

const Finished& finished_record(const Verdict& v) {
  REQUIRE(v.records.size() == 1);
  REQUIRE(std::holds_alternative<Finished>(v.records[0]));
  return std::get<Finished>(v.records[0]);
}

}  // namespace

TEST_CASE("journal recovery: a queued call goes back to its queue, in submission order") {
  const std::vector<Call> calls{queued(3), queued(7, "other"), queued(9)};
  const auto verdicts = plan(calls, view_at(kStart));
  REQUIRE(verdicts.size() == 3);
  CHECK(verdicts[0].job_id == 3);
  CHECK(verdicts[1].job_id == 7);
  CHECK(verdicts[2].job_id == 9);
  for (const Verdict& v : verdicts) {
    CHECK(v.decision == Decision::Requeue);
    CHECK(v.records.empty());  // it is already journaled as queued
  }
}

TEST_CASE("journal recovery: a queued call whose deadline passed while the daemon was down "
          "times out") {
  Call c = queued(1);
  c.deadline = kStart - 1ms;
  const Verdict v = decide(c, view_at(kStart));
  CHECK(v.decision == Decision::FailTimeout);
  CHECK_FALSE(v.abort_worker);
  const Finished& f = finished_record(v);
  CHECK(f.outcome.code == ErrorCode::Timeout);
  CHECK(f.at == kStart);
  CHECK(f.expires == kStart + 1h);
}

TEST_CASE("journal recovery: a running call is adopted when its worker re-attaches reporting "
          "it in flight") {
  for (bool idempotent : {false, true}) {
    CAPTURE(idempotent);
    const Call c = running(5, idempotent);
    const Verdict v =
        decide(c, view_at(kStart + 1s, {{"w1", "id-w1", {99, c.request_id}}}));
    CHECK(v.decision == Decision::Adopt);
    CHECK(v.records.empty());  // not run again: no new attempt
  }
}

TEST_CASE("journal recovery: a running call waits for its worker within the liveness window") {
  const Call c = running(5, false);
  // Nobody back yet, or only other workers, or a worker with the same id but another identity.
  CHECK(decide(c, view_at(kStart)).decision == Decision::Wait);
  CHECK(decide(c, view_at(kStart + 2999ms, {{"w2", "id-w2", {c.request_id}}})).decision ==
        Decision::Wait);
  CHECK(decide(c, view_at(kStart + 1s, {{"w1", "someone-else", {c.request_id}}})).decision ==
        Decision::Wait);
}

TEST_CASE("journal recovery: after the window a running call is re-queued if idempotent, "
          "else fails WORKER_LOST") {
  SUBCASE("idempotent, attempts left: re-queued, one more death counted") {
    Call c = running(5, true, 2);
    c.deaths = 1;
    const Verdict v = decide(c, view_at(kStart + 3s));
    CHECK(v.decision == Decision::Requeue);
    REQUIRE(v.records.size() == 1);
    REQUIRE(std::holds_alternative<Requeued>(v.records[0]));
    CHECK(std::get<Requeued>(v.records[0]).job_id == 5);
    CHECK(std::get<Requeued>(v.records[0]).deaths == 2);
  }
  SUBCASE("idempotent, out of attempts: WORKER_LOST") {
    const Verdict v = decide(running(5, true, 3), view_at(kStart + 3s));
    CHECK(v.decision == Decision::FailWorkerLost);
    const Finished& f = finished_record(v);
    CHECK(f.outcome.code == ErrorCode::WorkerLost);
    CHECK(f.outcome.message.find("out of attempts (3 of 3)") != std::string::npos);
  }
  SUBCASE("not idempotent: WORKER_LOST, never run twice") {
    const Verdict v = decide(running(5, false), view_at(kStart + 3s));
    CHECK(v.decision == Decision::FailWorkerLost);
    const Finished& f = finished_record(v);
    CHECK(f.outcome.code == ErrorCode::WorkerLost);
    CHECK(f.outcome.message.find("not idempotent") != std::string::npos);
    CHECK(f.outcome.message.find("w1") != std::string::npos);
    CHECK(f.expires == kStart + 3s + 1h);
  }
}

TEST_CASE("journal recovery: a worker back without the call lost it: decided at once, not "
          "after the window") {
  const Call c = running(5, false);
  const Verdict v = decide(c, view_at(kStart + 100ms, {{"w1", "id-w1", {c.request_id + 1}}}));
  CHECK(v.decision == Decision::FailWorkerLost);
  CHECK(finished_record(v).outcome.message.find("came back without it") != std::string::npos);
  const Verdict again = decide(running(6, true), view_at(kStart + 100ms, {{"w1", "id-w1", {}}}));
  CHECK(again.decision == Decision::Requeue);
}

TEST_CASE("journal recovery: a running call whose deadline passed times out, and its worker "
          "is told to abort when it still holds it") {
  Call c = running(5, true);
  c.deadline = kStart + 500ms;
  const Verdict held = decide(c, view_at(kStart + 1s, {{"w1", "id-w1", {c.request_id}}}));
  CHECK(held.decision == Decision::FailTimeout);
  CHECK(held.abort_worker);
  CHECK(finished_record(held).outcome.code == ErrorCode::Timeout);
  const Verdict gone = decide(c, view_at(kStart + 1s));
  CHECK(gone.decision == Decision::FailTimeout);
  CHECK_FALSE(gone.abort_worker);
}

TEST_CASE("journal recovery: a finished result is redelivered until its time to live, then "
          "expires") {
  const Call c = finished(4, kStart + 30min);
  CHECK(decide(c, view_at(kStart)).decision == Decision::Redeliver);
  CHECK(decide(c, view_at(kStart + 30min - 1ms)).decision == Decision::Redeliver);
  CHECK(decide(c, view_at(kStart + 30min)).decision == Decision::Expire);
  // A finished call never times out or waits, whatever its deadline and worker.
  Call late = finished(8, kStart + 1h);
  late.deadline = kStart - 1h;
  late.worker_id = "w1";
  const Verdict v = decide(late, view_at(kStart));
  CHECK(v.decision == Decision::Redeliver);
  CHECK(v.records.empty());
}

TEST_CASE("journal recovery: one plan over a journal holding every state") {
  Call expired = finished(1, kStart - 1s);
  Call kept = finished(2, kStart + 1h);
  Call adopted = running(3, false);
  Call waiting = running(4, false);
  waiting.worker_id = "w9";
  waiting.worker_identity = "id-w9";
  Call requeued = queued(5);
  const auto verdicts = plan({expired, kept, adopted, waiting, requeued},
                             view_at(kStart + 1s, {{"w1", "id-w1", {adopted.request_id}}}));
  REQUIRE(verdicts.size() == 5);
  CHECK(verdicts[0].decision == Decision::Expire);
  CHECK(verdicts[1].decision == Decision::Redeliver);
  CHECK(verdicts[2].decision == Decision::Adopt);
  CHECK(verdicts[3].decision == Decision::Wait);
  CHECK(verdicts[4].decision == Decision::Requeue);
  CHECK(std::string(to_string(verdicts[3].decision)) == "wait");
}
