// journal_held_test.cpp — HeldRows (journal_held.hpp): the rows a journal holds, by job id.
// What the SQLite journal relies on: a row is found until it is forgotten, whatever the order
// rows came in and however many were forgotten and dropped since; for_each sees each row held
// once, in job order.
#include <doctest/doctest.h>

#include <string>

#include "journal_held.hpp"

namespace muster::test {

using broker::journal::HeldRows;

namespace {
std::string jobs_of(const HeldRows& held) {
  std::string out;
  held.for_each([&](std::uint64_t job, const HeldRows::Row&) { out += std::to_string(job) + ' '; });
  return out;
}
}  // namespace

TEST_CASE("journal held rows: found until forgotten, in any order of arrival, across the drop "
          "of the forgotten ones") {
  HeldRows held;
  CHECK(held.find(1) == nullptr);
  held.put(10, 100);
  held.put(12, 120, 5000);
  held.put(11, 110);  // below the last: inserted in order
  held.put(5, 50);    // below the first
  CHECK(jobs_of(held) == "5 10 11 12 ");
  REQUIRE(held.find(11) != nullptr);
  CHECK(held.find(11)->bytes == 110);
  CHECK(held.find(12)->expires_ms == 5000);
  CHECK(held.find(10)->expires_ms == HeldRows::kNeverExpires);
  CHECK(held.find(13) == nullptr);
  CHECK(held.find(7) == nullptr);
  held.forget(held.find(10));
  CHECK(held.find(10) == nullptr);
  CHECK(jobs_of(held) == "5 11 12 ");
  held.put(10, 101);  // held again (a rolled-back turn's rows are read again)
  CHECK(held.find(10)->bytes == 101);
  held.put(11, 111, 7000);  // replaced
  CHECK(held.find(11)->bytes == 111);
  CHECK(held.find(11)->expires_ms == 7000);
  // Many rows forgotten (the gone ones are dropped together, more than once): the others stay.
  for (std::uint64_t job = 100; job < 1100; ++job) held.put(job, static_cast<std::int64_t>(job));
  for (std::uint64_t job = 100; job < 1100; ++job)
    if (job % 10 != 0) held.forget(held.find(job));
  for (std::uint64_t job = 100; job < 1100; ++job) {
    INFO("job ", job);
    if (job % 10 == 0) {
      REQUIRE(held.find(job) != nullptr);
      CHECK(held.find(job)->bytes == static_cast<std::int64_t>(job));
    } else {
      CHECK(held.find(job) == nullptr);
    }
  }
  std::size_t n = 0;
  std::uint64_t last = 0;
  held.for_each([&](std::uint64_t job, const HeldRows::Row&) {
    CHECK(job > last);
    last = job;
    ++n;
  });
  CHECK(n == 4 + 100);
  CHECK(held.find(12)->bytes == 120);
  held.clear();
  CHECK(held.find(12) == nullptr);
  CHECK(jobs_of(held).empty());
}

}  // namespace muster::test
