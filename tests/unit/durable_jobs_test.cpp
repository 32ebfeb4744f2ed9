// durable_jobs_test.cpp — DurableJobs (durable_jobs.hpp) on its own: the core's open and kept
// durable calls by job id. What the core relies on (its rules are in broker_core_jobs_test.cpp):
// an open job is found until it is kept, a kept outcome until it is forgotten or expires, each
// only in its workspace, whatever order calls finish and are acknowledged in; ids_of lists both
// in job order from an id on, up to a count.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "durable_jobs.hpp"

using namespace muster::broker;
using namespace std::chrono_literals;

namespace {

const journal::WallTime t0 = journal::WallTime{} + 1000h;

KeptJob finished(journal::JobId job, const std::string& ws, journal::WallTime expires) {
  KeptJob k;
  k.job_id = job;
  k.workspace = ws;
  k.expires = expires;
  k.outcome.message = "m" + std::to_string(job);  // bytes: what forget() returns
  return k;
}

std::vector<journal::JobId> ids(std::initializer_list<journal::JobId> l) { return l; }

}  // namespace

TEST_CASE("durable jobs: open then kept, in any order of finishing, found in their workspace "
          "until acknowledged or expired; listed in job order") {
  DurableJobs jobs;
  for (journal::JobId job = 1; job <= 6; ++job)
    jobs.opened(job, OpenJob{job * 10, job % 2 ? "a" : "b", t0 + std::chrono::milliseconds(job)});
  CHECK(jobs.open_count() == 6);
  REQUIRE(jobs.open(3, "a") != nullptr);
  CHECK(jobs.open(3, "a")->request_id == 30);
  CHECK(jobs.open(3, "b") == nullptr);  // another workspace's
  CHECK(jobs.open(7, "a") == nullptr);
  // Finished out of job order: 5, then 1, then 4; each keeps its open job's submit time.
  jobs.keep(finished(5, "a", t0 + 10s));
  jobs.keep(finished(1, "a", t0 + 20s));
  jobs.keep(finished(4, "b", t0 + 30s));
  CHECK(jobs.open_count() == 3);
  CHECK(jobs.kept_count() == 3);
  CHECK(jobs.open(5, "a") == nullptr);
  REQUIRE(jobs.kept(5, "a", t0) != nullptr);
  CHECK(jobs.kept(5, "a", t0)->submitted == t0 + 5ms);
  CHECK(jobs.kept(1, "a", t0)->submitted == t0 + 1ms);
  CHECK(jobs.kept(4, "a", t0) == nullptr);  // b's
  CHECK(jobs.kept(5, "a", t0 + 10s) == nullptr);  // its time ran out
  CHECK(jobs.ids_of("a", t0) == ids({1, 3, 5}));
  CHECK(jobs.ids_of("b", t0) == ids({2, 4, 6}));
  CHECK(jobs.ids_of("a", t0 + 15s) == ids({1, 3}));  // 5 expired by then
  CHECK(jobs.ids_of("a", t0, 1) == ids({3, 5}));
  CHECK(jobs.ids_of("b", t0, 0, 2) == ids({2, 4}));
  CHECK(jobs.ids_of("b", t0, 2, 1) == ids({4}));
  CHECK(jobs.ids_of("b", t0, 0, 0).empty());
  // Forgotten: only in its workspace, once.
  CHECK_FALSE(jobs.forget(1, "b"));
  CHECK(jobs.forget(1, "a") == std::optional<std::uint64_t>{2});
  CHECK_FALSE(jobs.forget(1, "a"));
  CHECK(jobs.kept(1, "a", t0) == nullptr);
  // Kept again (a restored outcome replaces one kept for the same job).
  jobs.keep(finished(4, "b", t0 + 40s));
  CHECK(jobs.kept_count() == 2);
  CHECK(jobs.kept(4, "b", t0 + 35s) != nullptr);
  // Expired: those at or before `now`.
  CHECK(jobs.expire(t0 + 10s) == 1);  // 5
  CHECK(jobs.kept_count() == 1);
  jobs.closed(3);
  CHECK(jobs.open(3, "a") == nullptr);
  CHECK(jobs.ids_of("a", t0).empty());
  CHECK(jobs.ids_of("b", t0) == ids({2, 4, 6}));
}

TEST_CASE("durable jobs: many calls opened, finished out of order and acknowledged, across the "
          "drop of the forgotten ones") {
  DurableJobs jobs;
  journal::JobId next = 1;
  for (int round = 0; round < 100; ++round) {
    for (int i = 0; i < 20; ++i, ++next) jobs.opened(next, OpenJob{next, "a", t0});
    // The round's calls finish two at a time, the higher of each pair first; the round before
    // is acknowledged.
    for (journal::JobId job = next - 20; job < next; job += 2) {
      jobs.keep(finished(job + 1, "a", t0 + 1h));
      jobs.keep(finished(job, "a", t0 + 1h));
    }
    if (round > 0)
      for (journal::JobId job = next - 40; job < next - 20; ++job) CHECK(jobs.forget(job, "a"));
  }
  CHECK(jobs.open_count() == 0);
  CHECK(jobs.kept_count() == 20);
  std::vector<journal::JobId> last;
  for (journal::JobId job = next - 20; job < next; ++job) last.push_back(job);
  CHECK(jobs.ids_of("a", t0) == last);
  for (journal::JobId job = 1; job < next - 20; ++job) CHECK(jobs.kept(job, "a", t0) == nullptr);
}

TEST_CASE("durable jobs: an outcome kept in place takes its open job's submit time (or the one "
          "given), in a fresh slot or in a forgotten outcome's") {
  DurableJobs jobs;
  jobs.opened(1, OpenJob{10, "a", t0 + 1ms});
  KeptJob& first = jobs.keep(1, t0 + 9s);
  CHECK(first.job_id == 1);
  CHECK(first.submitted == t0 + 1ms);  // the open job's, not the time given
  first.workspace = "a";
  first.node = "resize";
  first.expires = t0 + 1h;
  first.outcome.message = "boom";
  CHECK(jobs.open_count() == 0);
  REQUIRE(jobs.kept(1, "a", t0) != nullptr);
  CHECK(jobs.kept(1, "a", t0)->node == "resize");
  CHECK(jobs.forget(1, "a") == std::optional<std::uint64_t>{4});
  // Job 2 was never open (a restored outcome): the time given; it takes job 1's slot.
  KeptJob& second = jobs.keep(2, t0 + 2s);
  CHECK(&second == &first);
  CHECK(second.job_id == 2);
  CHECK(second.submitted == t0 + 2s);
  second.workspace = "b";
  second.expires = t0 + 1h;
  second.outcome = {};
  CHECK(jobs.kept(2, "b", t0) != nullptr);
  CHECK(jobs.kept(1, "a", t0) == nullptr);
  CHECK(jobs.kept_count() == 1);
}
