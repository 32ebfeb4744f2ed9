// broker_core_jobs_test.cpp — the core's rules for callers of durable calls (docs/DURABILITY.md
// §6): kept outcomes until JobAck or result_ttl, JobResume, JobGet, JobList, JobCancel, durable
// nodes, restored outcomes, and the workspace scoping of all of them; under a fake clock.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "broker_core.hpp"
#include "muster/messages.hpp"

using namespace muster;
using namespace muster::broker;
using namespace std::chrono_literals;

namespace {

Peer conn(const std::string& id) { return Peer{id, false, "", "", 0}; }

Caller in_workspace(const std::string& ws) {
  Caller c;
  c.identity = "id-" + ws;
  c.name = "user-" + ws;
  c.workspace = ws;
  c.role = "client";
  return c;
}

// A core with one worker "w1" (identity local, workspace "a") serving nodes "n" and "d"
// ("d" declared durable), ready; callers of workspace "a" and "b".
struct Jobs {
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  BrokerCore core;
  Caller a = in_workspace("a"), b = in_workspace("b");
  Caller worker = in_workspace("a");

  static CoreConfig config() {
    CoreConfig c;
    c.instance = "inst-1";
    c.queue_limit = 10;
    c.result_ttl = 10000ms;
    c.journal_expire_interval = 60000ms;
    c.wall_start = journal::WallTime{} + 1'000'000ms;
    return c;
  }

  explicit Jobs(CoreConfig c = config(), std::uint32_t capacity = 1) : core(c, now) {
    NodeSpec n, d;
    n.name = "n";
    d.name = "d";
    d.durable = true;
    AttachEvent ev;
    ev.worker_id = "w1";
    ev.session = "s1";
    ev.capacity = capacity;
    ev.nodes = {n, d};
    core.on_attach(now, conn("wp"), worker, std::move(ev));
    std::uint64_t seq = 0;
    for (auto& act : take())
      if (auto* p = std::get_if<SendPing>(&act)) seq = p->seq;
    core.on_pong(now, conn("wp"), worker, "w1", seq, "inst-1", {});
    take();
    records();
  }

  std::vector<Action> take() {
    std::vector<Action> out;
    out.swap(core.actions());
    return out;
  }

  // The records emitted since the last call, as "Kind job [code]" lines, and forgotten.
  std::vector<std::string> records() {
    std::vector<std::string> out;
    for (auto& op : core.journal_ops()) {
      auto* rec = std::get_if<journal::Record>(&op);
      if (!rec) {
        out.push_back("ExpireKept");
        continue;
      }
      out.push_back(std::visit(
          [](auto& r) -> std::string {
            using T = std::decay_t<decltype(r)>;
            if constexpr (std::is_same_v<T, journal::Submitted>) return fmt::format("Submitted {}", r.call.job_id);
            else if constexpr (std::is_same_v<T, journal::Dispatched>) return fmt::format("Dispatched {}", r.job_id);
            else if constexpr (std::is_same_v<T, journal::Requeued>) return fmt::format("Requeued {}", r.job_id);
            else if constexpr (std::is_same_v<T, journal::Finished>)
              return fmt::format("Finished {} {}", r.job_id, error_code_name(r.outcome.code));
            else return fmt::format("Acked {}", r.job_id);
          },
          *rec));
    }
    core.journal_ops().clear();
    return out;
  }

  std::vector<Action> submit(std::uint64_t rid, const std::string& client, const Caller& who,
                             bool durable = true, const std::string& node = "n") {
    SubmitEvent ev;
    ev.client_request_id = rid;
    ev.node = node;
    ev.durable = durable;
    ev.inputs = Payload::copy_of(std::vector<std::uint8_t>{1, 2, 3});
    core.on_submit(now, conn(client), who, std::move(ev));
    return take();
  }

  std::vector<Action> result(std::uint64_t daemon_id, std::uint8_t byte = 9) {
    core.on_result(now, conn("wp"), worker, "w1", daemon_id, Payload::copy_of(std::vector<std::uint8_t>{byte}));
    return take();
  }

  std::vector<Action> resume(const std::string& client, const Caller& who, std::vector<JobRef> jobs,
                             std::uint64_t rid = 1000) {
    core.on_job_resume(now, conn(client), who, JobResumeEvent{rid, std::move(jobs)});
    return take();
  }
  std::vector<Action> get(const std::string& client, const Caller& who, std::uint64_t job, std::uint64_t rid = 2000) {
    core.on_job_get(now, conn(client), who, JobGetEvent{rid, job});
    return take();
  }
  std::vector<Action> list(const std::string& client, const Caller& who, std::uint64_t rid = 3000,
                           std::uint32_t limit = 0, std::uint64_t after = 0) {
    core.on_job_list(now, conn(client), who, JobListEvent{rid, limit, after});
    return take();
  }
  std::vector<Action> cancel(const std::string& client, const Caller& who, std::uint64_t job, std::uint64_t rid = 4000) {
    core.on_job_cancel(now, conn(client), who, JobCancelEvent{rid, job});
    return take();
  }
  std::vector<Action> ack(const Caller& who, std::vector<std::uint64_t> jobs) {
    core.on_job_ack(now, who, JobAckEvent{5000, std::move(jobs)});
    return take();
  }
  std::vector<Action> advance(Millis d) {
    now += d;
    core.tick(now);
    return take();
  }
};

template <class T>
std::vector<T> all(const std::vector<Action>& actions) {
  std::vector<T> out;
  for (auto& act : actions)
    if (auto* p = std::get_if<T>(&act)) out.push_back(*p);
  return out;
}

// The one reply to a client in `actions`, which must be there.
ReplyToClient only_reply(const std::vector<Action>& actions) {
  auto replies = all<ReplyToClient>(actions);
  REQUIRE(replies.size() == 1);
  return replies[0];
}

template <class Body>
Body body_of(const ReplyToClient& r) {
  auto* b = std::get_if<Body>(&r.body);
  REQUIRE(b != nullptr);
  return *b;
}

bool is_no_such_job(const ReplyToClient& r) {
  auto* f = std::get_if<FailureBody>(&r.body);
  return f && f->code == ErrorCode::InvalidRequest && f->message.starts_with("no such job") && f->job_id == 0;
}

using Lines = std::vector<std::string>;

}  // namespace

TEST_CASE("jobs: a durable call's Result carries its job id and is kept until JobAck, which is journaled") {
  Jobs j;
  auto out = j.submit(1, "c1", j.a);
  CHECK(body_of<AcceptedBody>(only_reply(out)).job_id == 1);
  auto id = all<SendWorkRequest>(out).at(0).request_id;
  auto done = only_reply(j.result(id, 42));
  CHECK(done.request_id == 1);
  auto res = body_of<ResultBody>(done);
  CHECK(res.job_id == 1);
  CHECK(j.records() == Lines{"Submitted 1", "Dispatched 1", "Finished 1 NONE"});
  CHECK(j.core.jobs().kept_count() == 1);
  // Delivered, yet kept: another connection of the workspace fetches it, as often as it asks.
  for (int i = 0; i < 2; ++i) {
    auto got = only_reply(j.get("c2", j.a, 1, 77));
    CHECK(got.request_id == 77);
    auto again = body_of<ResultBody>(got);
    CHECK(again.job_id == 1);
    CHECK(std::vector<std::uint8_t>(again.outputs.bytes.begin(), again.outputs.bytes.end()) ==
          std::vector<std::uint8_t>{42});
  }
  CHECK(j.ack(j.a, {1}).empty());  // never answered
  CHECK(j.records() == Lines{"Acked 1"});
  CHECK(is_no_such_job(only_reply(j.get("c2", j.a, 1))));
  // A second ack (the SDK's after a redelivery) journals nothing: the journal holds no job 1.
  j.ack(j.a, {1});
  CHECK(j.records().empty());
  CHECK(j.core.jobs().kept_count() == 0);
}

TEST_CASE("jobs: a durable call's Submitted record holds the call as accepted, its inputs shared, not copied") {
  Jobs j;
  auto submitted = [&] {
    auto& op = j.core.journal_ops().at(0);
    return std::get<journal::Submitted>(std::get<journal::Record>(op)).call;
  };
  SubmitEvent ev;
  ev.client_request_id = 1;
  ev.node = "n";
  ev.durable = true;
  ev.inputs = Payload::copy_of(std::vector<std::uint8_t>{1, 2, 3});
  const auto* bytes = ev.inputs.bytes.data();
  j.core.on_submit(j.now, conn("c1"), j.a, std::move(ev));
  auto id = all<SendWorkRequest>(j.take()).at(0).request_id;
  auto call = submitted();
  CHECK(call.job_id == 1);
  CHECK(call.node == "n");
  CHECK(call.caller == j.a);
  CHECK(call.inputs.bytes.data() == bytes);  // the request's bytes, shared with the record
  CHECK(call.inputs.bytes.size() == 3);
  CHECK(call.trace_id == fmt::format("inst-1-{}", id));  // the default: "<instance>-<request id>"
  CHECK(call.submitted == journal::WallTime{} + 1'000'000ms);
  j.records();
  SubmitEvent traced;
  traced.client_request_id = 2;
  traced.node = "n";
  traced.durable = true;
  traced.trace_id = "the-callers-trace";
  j.core.on_submit(j.now, conn("c1"), j.a, std::move(traced));
  CHECK(submitted().trace_id == "the-callers-trace");
}

TEST_CASE("jobs: a non-durable call carries no job id and is not kept") {
  Jobs j;
  auto out = j.submit(1, "c1", j.a, false);
  CHECK(all<ReplyToClient>(out).empty());
  auto res = body_of<ResultBody>(only_reply(j.result(all<SendWorkRequest>(out).at(0).request_id)));
  CHECK(res.job_id == 0);
  CHECK(j.core.jobs().kept_count() == 0);
  CHECK(j.records().empty());
}

TEST_CASE("jobs: an outcome not acked is forgotten after result_ttl, with the journal's expiry in the same turn") {
  auto cfg = Jobs::config();
  cfg.journal_expire_interval = 15000ms;
  Jobs j(cfg);
  auto id = all<SendWorkRequest>(j.submit(1, "c1", j.a)).at(0).request_id;
  j.core.on_failure(j.now, conn("wp"), j.worker, "w1", id, ErrorCode::WorkerError, "boom");
  auto failed = body_of<FailureBody>(only_reply(j.take()));
  CHECK(failed.job_id == 1);
  CHECK(failed.code == ErrorCode::WorkerError);
  j.records();
  j.advance(9999ms);
  CHECK(body_of<FailureBody>(only_reply(j.get("c2", j.a, 1))).message == "boom");
  j.advance(1ms);  // result_ttl (10 s) has passed: no longer answered...
  CHECK(is_no_such_job(only_reply(j.get("c2", j.a, 1))));
  CHECK(j.core.jobs().kept_count() == 1);  // ...but held until the journal forgets it too
  j.advance(5000ms);
  CHECK(j.records() == Lines{"ExpireKept"});
  CHECK(j.core.jobs().kept_count() == 0);
  j.ack(j.a, {1});  // too late: no Acked for a job the journal no longer holds
  CHECK(j.records().empty());
}

TEST_CASE("jobs: JobResume binds an open job to the new connection; its terminal reply goes there only") {
  Jobs j;
  auto running = all<SendWorkRequest>(j.submit(1, "c1", j.a)).at(0).request_id;
  j.submit(2, "c1", j.a);  // queued behind it (capacity 1)
  j.records();
  // c1 went away; its client reconnects as c2 and resumes both under new request ids.
  auto out = j.resume("c2", j.a, {{2, 12}, {1, 11}});
  auto replies = all<ReplyToClient>(out);
  REQUIRE(replies.size() == 2);
  // Answered in job order, each under its JobRef's request id.
  CHECK(replies[0].peer->routing_id == "c2");
  CHECK(replies[0].request_id == 11);
  CHECK(body_of<AcceptedBody>(replies[0]).job_id == 1);
  CHECK_FALSE(body_of<AcceptedBody>(replies[0]).queued);
  CHECK(replies[1].request_id == 12);
  CHECK(body_of<AcceptedBody>(replies[1]).job_id == 2);
  CHECK(body_of<AcceptedBody>(replies[1]).queued);
  CHECK(j.records().empty());  // binding a caller changes nothing in the journal
  // The running one finishes: its reply goes to c2 under 11; the queued one is dispatched.
  out = j.result(running);
  auto done = only_reply(out);
  CHECK(done.peer->routing_id == "c2");
  CHECK(done.request_id == 11);
  CHECK(body_of<ResultBody>(done).job_id == 1);
  auto next = all<SendWorkRequest>(out);
  REQUIRE(next.size() == 1);
  done = only_reply(j.result(next[0].request_id));
  CHECK(done.peer->routing_id == "c2");
  CHECK(done.request_id == 12);
  // c1's old request ids are free again: nothing of the jobs is bound to them.
  auto again = j.submit(1, "c1", j.a, false);
  CHECK(all<SendWorkRequest>(again).size() == 1);
}

TEST_CASE("jobs: JobResume redelivers a kept outcome, and answers an unknown job no such job") {
  Jobs j;
  auto id = all<SendWorkRequest>(j.submit(1, "c1", j.a)).at(0).request_id;
  j.result(id, 5);
  auto replies = all<ReplyToClient>(j.resume("c2", j.a, {{1, 21}, {99, 22}}));
  REQUIRE(replies.size() == 2);
  CHECK(replies[0].request_id == 21);
  CHECK(body_of<ResultBody>(replies[0]).job_id == 1);
  CHECK_FALSE(replies[0].refusal);  // the terminal reply of a request: never dropped
  CHECK(replies[1].request_id == 22);
  CHECK(is_no_such_job(replies[1]));
  CHECK(j.core.jobs().kept_count() == 1);  // until the caller acks it
}

TEST_CASE("jobs: JobResume under a request id open on the connection is refused; too many refs are refused") {
  auto cfg = Jobs::config();
  cfg.max_client_outstanding = 3;
  Jobs j(cfg);
  j.submit(1, "c1", j.a);      // job 1, request 1 of c1
  j.submit(2, "c2", j.a, false);  // request 2 of c2, not durable
  auto r = only_reply(j.resume("c2", j.a, {{1, 2}}));
  CHECK(r.request_id == 2);
  CHECK(body_of<FailureBody>(r).code == ErrorCode::InvalidRequest);
  CHECK(body_of<FailureBody>(r).message.find("already open") != std::string::npos);
  // Resuming a job on the connection and id it is already bound to answers Accepted again.
  CHECK(body_of<AcceptedBody>(only_reply(j.resume("c1", j.a, {{1, 1}}))).job_id == 1);
  r = only_reply(j.resume("c2", j.a, {{1, 10}, {2, 11}, {3, 12}, {4, 13}}, 55));
  CHECK(r.request_id == 55);
  CHECK(body_of<FailureBody>(r).code == ErrorCode::InvalidRequest);
}

TEST_CASE("jobs: JobResume under a request id held by an open Watch is refused; the watch keeps it") {
  Jobs j;
  auto running = all<SendWorkRequest>(j.submit(1, "c1", j.a)).at(0).request_id;  // job 1, request 1 of c1
  j.core.on_watch(j.now, conn("c2"), j.a, 5, WatchScope{true, false, false});
  j.take();  // the watch's snapshot
  auto r = only_reply(j.resume("c2", j.a, {{1, 5}}));
  CHECK(r.request_id == 5);
  CHECK(body_of<FailureBody>(r).code == ErrorCode::InvalidRequest);
  CHECK(body_of<FailureBody>(r).message.find("request id 5 is already open on this connection") != std::string::npos);
  // The job stayed with its first connection: its result goes to c1's request 1.
  auto done = only_reply(j.result(running));
  CHECK(done.peer->routing_id == "c1");
  CHECK(done.request_id == 1);
  CHECK(body_of<ResultBody>(done).job_id == 1);
}

TEST_CASE("jobs: JobGet and JobList describe open and finished jobs, oldest first") {
  Jobs j;
  auto first = all<SendWorkRequest>(j.submit(1, "c1", j.a)).at(0).request_id;
  j.now += 1000ms;
  j.submit(2, "c1", j.a);          // queued
  j.submit(3, "c1", j.a, false);   // not durable: no job
  auto info = body_of<JobInfoBody>(only_reply(j.get("c9", j.a, 1)));
  CHECK(info.state == JobState::Running);
  CHECK(info.node == "n");
  CHECK(info.workspace == "a");
  CHECK(info.worker_id == "w1");
  CHECK(info.attempts == 1);
  CHECK(info.submitted_ms == 1'000'000);  // the core's wall clock at submission
  info = body_of<JobInfoBody>(only_reply(j.get("c9", j.a, 2)));
  CHECK(info.state == JobState::Queued);
  CHECK(info.submitted_ms == 1'001'000);
  CHECK(info.worker_id.empty());
  j.now += 500ms;
  j.result(first);
  auto listed = body_of<JobInfoListBody>(only_reply(j.list("c9", j.a))).jobs;
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].job_id == 1);
  CHECK(listed[0].state == JobState::Finished);
  CHECK(listed[0].code == ErrorCode::None);
  CHECK(listed[0].finished_ms == 1'001'500);
  CHECK(listed[0].attempts == 1);
  CHECK(listed[1].job_id == 2);
  CHECK(listed[1].state == JobState::Running);  // dispatched once job 1 freed the worker
}

TEST_CASE("jobs: JobCancel of a running job aborts it, its caller gets Failure{Cancelled}, the canceller JobInfo") {
  Jobs j;
  auto running = all<SendWorkRequest>(j.submit(1, "c1", j.a)).at(0).request_id;
  j.records();
  auto out = j.cancel("c2", j.a, 1, 31);
  auto aborts = all<SendAbort>(out);
  REQUIRE(aborts.size() == 1);
  CHECK(aborts[0].request_id == running);
  CHECK(aborts[0].code == ErrorCode::Cancelled);
  auto replies = all<ReplyToClient>(out);
  REQUIRE(replies.size() == 2);
  CHECK(replies[0].peer->routing_id == "c1");  // the call's own caller: its terminal reply
  auto failed = body_of<FailureBody>(replies[0]);
  CHECK(failed.code == ErrorCode::Cancelled);
  CHECK(failed.job_id == 1);
  CHECK(replies[1].peer->routing_id == "c2");
  CHECK(replies[1].request_id == 31);
  auto info = body_of<JobInfoBody>(replies[1]);
  CHECK(info.state == JobState::Finished);
  CHECK(info.code == ErrorCode::Cancelled);
  CHECK(j.records() == Lines{"Finished 1 CANCELLED"});
  // The worker's late result changes nothing; a second cancel answers the same JobInfo.
  CHECK(all<ReplyToClient>(j.result(running)).empty());
  CHECK(body_of<JobInfoBody>(only_reply(j.cancel("c2", j.a, 1))).code == ErrorCode::Cancelled);
  CHECK(j.records().empty());
}

TEST_CASE("jobs: JobCancel of a queued job takes it off the queue; of a finished one changes nothing") {
  Jobs j;
  auto first = all<SendWorkRequest>(j.submit(1, "c1", j.a)).at(0).request_id;
  j.submit(2, "c1", j.a);
  auto out = j.cancel("c2", j.a, 2);
  CHECK(all<SendAbort>(out).empty());
  CHECK(body_of<JobInfoBody>(all<ReplyToClient>(out).at(1)).code == ErrorCode::Cancelled);
  CHECK(j.core.status(j.now).queued == 0);
  j.result(first);
  j.records();
  auto info = body_of<JobInfoBody>(only_reply(j.cancel("c2", j.a, 1)));
  CHECK(info.code == ErrorCode::None);  // it had finished with a Result
  CHECK(j.records().empty());
}

TEST_CASE("jobs: every job message is scoped to the caller's workspace") {
  Jobs j;
  auto id = all<SendWorkRequest>(j.submit(1, "c1", j.a)).at(0).request_id;
  j.submit(2, "c1", j.a);  // queued
  j.result(id);            // job 1 kept, job 2 running
  j.records();
  // Workspace b sees neither, can cancel neither, resume neither, ack neither.
  CHECK(is_no_such_job(only_reply(j.get("cb", j.b, 1))));
  CHECK(is_no_such_job(only_reply(j.get("cb", j.b, 2))));
  CHECK(body_of<JobInfoListBody>(only_reply(j.list("cb", j.b))).jobs.empty());
  auto out = j.cancel("cb", j.b, 2);
  CHECK(all<SendAbort>(out).empty());
  CHECK(is_no_such_job(only_reply(out)));
  auto replies = all<ReplyToClient>(j.resume("cb", j.b, {{1, 1}, {2, 2}}));
  REQUIRE(replies.size() == 2);
  CHECK(is_no_such_job(replies[0]));
  CHECK(is_no_such_job(replies[1]));
  j.ack(j.b, {1});
  CHECK(j.records().empty());
  // Workspace a still has both, bound where they were.
  CHECK(body_of<JobInfoListBody>(only_reply(j.list("c1", j.a))).jobs.size() == 2);
  CHECK(body_of<ResultBody>(only_reply(j.get("c1", j.a, 1))).job_id == 1);
}

TEST_CASE("jobs: a node declared durable makes every call to it durable") {
  Jobs j;
  CHECK(j.core.node_is_durable("a", "d"));
  CHECK_FALSE(j.core.node_is_durable("a", "n"));
  CHECK_FALSE(j.core.node_is_durable("b", "d"));
  auto out = j.submit(1, "c1", j.a, /*durable=*/false, "d");
  CHECK(body_of<AcceptedBody>(only_reply(out)).job_id == 1);
  CHECK(j.records() == Lines{"Submitted 1", "Dispatched 1"});
  auto res = body_of<ResultBody>(only_reply(j.result(all<SendWorkRequest>(out).at(0).request_id)));
  CHECK(res.job_id == 1);
}

TEST_CASE("jobs: a durable call whose caller went away keeps running; its outcome waits for JobGet") {
  Jobs j;
  auto id = all<SendWorkRequest>(j.submit(1, "gone", j.a)).at(0).request_id;
  // Its connection is gone (the socket loop finds out only when a send fails); time passes
  // and the call is neither failed nor aborted.
  auto out = j.advance(5000ms);
  CHECK(all<SendAbort>(out).empty());
  CHECK(all<ReplyToClient>(out).empty());
  j.result(id, 7);
  auto res = body_of<ResultBody>(only_reply(j.get("later", j.a, 1)));
  CHECK(res.outputs.bytes[0] == 7);
}

namespace {

journal::Call held(journal::JobId job, journal::CallState state, const std::string& workspace = "a") {
  journal::Call c;
  c.job_id = job;
  c.state = state;
  c.node = "n";
  c.caller = in_workspace(workspace);
  c.inputs = Payload::copy_of(std::vector<std::uint8_t>{1, 2, 3});
  c.submitted = journal::WallTime{} + 900'000ms;
  c.deadline = journal::WallTime{} + 2'000'000ms;
  if (state == journal::CallState::Running) {
    c.worker_id = "old";
    c.worker_identity = "local";
    c.request_id = 5;
    c.attempts = 1;
  }
  return c;
}

}  // namespace

TEST_CASE("jobs restore: finished and restart-failed calls are kept for their callers; a restored queued one is resumed") {
  auto cfg = Jobs::config();
  Jobs j(cfg);
  auto done = held(3, journal::CallState::Finished);
  done.outcome = journal::Outcome{ErrorCode::None, Payload::copy_of(std::vector<std::uint8_t>{8}), {}};
  done.finished = journal::WallTime{} + 950'000ms;
  done.expires = journal::WallTime{} + 1'100'000ms;
  auto expired = held(4, journal::CallState::Finished);
  expired.outcome = journal::Outcome{ErrorCode::WorkerError, {}, "x"};
  expired.expires = journal::WallTime{} + 999'000ms;  // before the core's wall start
  std::vector<journal::Call> calls{done, expired, held(5, journal::CallState::Running),
                                   held(6, journal::CallState::Queued, "a")};
  j.core.on_journal_epoch(2);
  CHECK(j.core.restore(j.now, calls) == 1);
  CHECK(j.records().empty());  // job 5 was running: it waits for its worker to re-attach
  auto recovering = body_of<JobInfoBody>(only_reply(j.get("c1", j.a, 5)));
  CHECK(recovering.state == JobState::Recovering);
  CHECK(recovering.worker_id == "old");
  // Its worker never comes back: at the end of the re-attach window it is lost (not idempotent).
  j.advance(cfg.ping_interval * cfg.liveness);
  auto records = j.records();
  REQUIRE(records.size() == 1);
  CHECK(records.at(0) == "Finished 5 WORKER_LOST");
  // The kept result of job 3, redelivered to whoever of workspace a asks; job 4 expired.
  auto got = body_of<ResultBody>(only_reply(j.get("c1", j.a, 3)));
  CHECK(got.job_id == 3);
  CHECK(got.outputs.bytes[0] == 8);
  CHECK(is_no_such_job(only_reply(j.get("c1", j.a, 4))));
  // Job 5 failed WORKER_LOST after the restart (not idempotent): kept as that failure.
  auto lost = body_of<FailureBody>(only_reply(j.get("c1", j.a, 5)));
  CHECK(lost.code == ErrorCode::WorkerLost);
  CHECK(lost.job_id == 5);
  // Job 6 went back to its queue, listed with the submission time the journal kept.
  auto listed = body_of<JobInfoListBody>(only_reply(j.list("c1", j.a))).jobs;
  REQUIRE(listed.size() == 3);
  CHECK(listed[2].job_id == 6);
  CHECK(listed[2].submitted_ms == 900'000);
  auto resumed = only_reply(j.resume("c2", j.a, {{6, 61}}));
  CHECK(body_of<AcceptedBody>(resumed).job_id == 6);
}

TEST_CASE("jobs: JobList answers at most its limit (and never more than kJobListMax) and says more follow") {
  Jobs j;
  auto cfg = Jobs::config();
  cfg.queue_limit = 2 * kJobListMax;
  Jobs big(cfg);
  for (std::uint64_t i = 1; i <= kJobListMax + 5; ++i) big.submit(i, "c1", big.a);
  auto page = body_of<JobInfoListBody>(only_reply(big.list("c9", big.a)));
  CHECK(page.jobs.size() == kJobListMax);  // limit 0: the maximum
  CHECK(page.more);
  CHECK(page.jobs.front().job_id == 1);
  CHECK(page.jobs.back().job_id == kJobListMax);
  page = body_of<JobInfoListBody>(only_reply(big.list("c9", big.a, 3001, 5000)));  // above the maximum: capped
  CHECK(page.jobs.size() == kJobListMax);
  // The next page starts after the last job listed; the last page says no more.
  page = body_of<JobInfoListBody>(only_reply(big.list("c9", big.a, 3002, 0, kJobListMax)));
  REQUIRE(page.jobs.size() == 5);
  CHECK(page.jobs.front().job_id == kJobListMax + 1);
  CHECK_FALSE(page.more);
  page = body_of<JobInfoListBody>(only_reply(big.list("c9", big.a, 3003, 2, 3)));
  REQUIRE(page.jobs.size() == 2);
  CHECK(page.jobs[0].job_id == 4);
  CHECK(page.jobs[1].job_id == 5);
  CHECK(page.more);
  // Kept outcomes and open jobs are merged in job order.
  auto first = all<SendWorkRequest>(j.submit(1, "c1", j.a)).at(0).request_id;
  j.submit(2, "c1", j.a);
  j.result(first);  // job 1 finished and kept, job 2 running
  page = body_of<JobInfoListBody>(only_reply(j.list("c9", j.a, 3004, 1)));
  REQUIRE(page.jobs.size() == 1);
  CHECK(page.jobs[0].job_id == 1);
  CHECK(page.jobs[0].state == JobState::Finished);
  CHECK(page.more);
  page = body_of<JobInfoListBody>(only_reply(j.list("c9", j.a, 3005, 1, 1)));
  REQUIRE(page.jobs.size() == 1);
  CHECK(page.jobs[0].job_id == 2);
  CHECK(page.jobs[0].state == JobState::Running);
  CHECK_FALSE(page.more);
}

TEST_CASE("jobs restore: a call waiting for its worker counts as recovering in the status, neither queued nor in flight") {
  auto cfg = Jobs::config();
  Jobs j(cfg);
  j.core.on_journal_epoch(2);
  auto other = held(6, journal::CallState::Running);
  other.request_id = 6;
  j.core.restore(j.now, {held(5, journal::CallState::Running), other});
  j.records();
  auto s = j.core.status(j.now);
  CHECK(s.recovering == 2);
  CHECK(s.in_flight == 0);
  CHECK(s.queued == 0);
  CHECK(j.core.status(j.now, "a").recovering == 2);
  CHECK(j.core.status(j.now, "b").recovering == 0);  // another workspace's status
  j.advance(cfg.ping_interval * cfg.liveness);  // the window ends: lost, no longer recovering
  CHECK(j.core.status(j.now).recovering == 0);
}

TEST_CASE("jobs restore: JobCancel of a call waiting for its worker (Recovering) finishes it at once, no Abort") {
  auto cfg = Jobs::config();
  Jobs j(cfg);
  j.core.on_journal_epoch(2);
  CHECK(j.core.restore(j.now, {held(5, journal::CallState::Running)}) == 0);
  j.records();
  auto out = j.cancel("c2", j.a, 5, 31);
  CHECK(all<SendAbort>(out).empty());  // no worker holds it yet
  auto info = body_of<JobInfoBody>(only_reply(out));
  CHECK(info.state == JobState::Finished);
  CHECK(info.code == ErrorCode::Cancelled);
  CHECK(j.records() == Lines{"Finished 5 CANCELLED"});
  // The end of the re-attach window finds it finished: nothing more is journaled.
  j.advance(cfg.ping_interval * cfg.liveness);
  CHECK(j.records().empty());
  CHECK(body_of<FailureBody>(only_reply(j.get("c1", j.a, 5))).code == ErrorCode::Cancelled);
}

TEST_CASE("jobs restore: a restored queued call, resumed, gets its result on the resuming connection") {
  Jobs j;
  // Nothing dispatched yet: the worker is busy with a non-durable call.
  auto busy = all<SendWorkRequest>(j.submit(1, "c0", j.a, false)).at(0).request_id;
  j.core.on_journal_epoch(2);
  CHECK(j.core.restore(j.now, {held(6, journal::CallState::Queued)}) == 1);
  auto accepted = body_of<AcceptedBody>(only_reply(j.resume("c2", j.a, {{6, 61}})));
  CHECK(accepted.queued);
  auto out = j.result(busy);  // frees w1: job 6 is dispatched
  auto sent = all<SendWorkRequest>(out);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].request_id >= (2ull << 40));
  auto done = only_reply(j.result(sent[0].request_id));
  CHECK(done.peer->routing_id == "c2");
  CHECK(done.request_id == 61);
  CHECK(body_of<ResultBody>(done).job_id == 6);
}

TEST_CASE("jobs restore: restored queued calls run in job order, whatever order their callers resume them in") {
  Jobs j;
  auto busy = all<SendWorkRequest>(j.submit(1, "c0", j.a, false)).at(0).request_id;
  j.core.on_journal_epoch(2);
  CHECK(j.core.restore(j.now, {held(6, journal::CallState::Queued), held(7, journal::CallState::Queued),
                               held(8, journal::CallState::Queued)}) == 3);
  j.resume("c8", j.a, {{8, 1}});
  j.resume("c6", j.a, {{6, 1}});
  j.resume("c7", j.a, {{7, 1}});
  std::vector<std::string> served;
  auto out = j.result(busy);
  for (int i = 0; i < 3; ++i) {
    auto sent = all<SendWorkRequest>(out);
    REQUIRE(sent.size() == 1);
    out = j.result(sent[0].request_id);
    served.push_back(only_reply(out).peer->routing_id);
  }
  CHECK(served == std::vector<std::string>{"c6", "c7", "c8"});
  // A restored job, resumed, then cancelled while it waits, leaves the restored lane.
  CHECK(j.core.restore(j.now, {held(9, journal::CallState::Queued)}) == 1);
  j.resume("c9", j.a, {{9, 1}});
  CHECK(j.core.status(j.now).queued == 1);
  CHECK(body_of<JobInfoBody>(all<ReplyToClient>(j.cancel("cx", j.a, 9)).at(1)).code == ErrorCode::Cancelled);
  CHECK(j.core.status(j.now).queued == 0);
}
