// job_index_test.cpp — JobIndex (job_index.hpp): a value per job id, kept in job order.
// What its users rely on: every id is found with its value whatever order the ids came in
// (appended above the last, inserted below it or below the first, into the place of an erased
// one), an id it has not (never had, or erased) is never found, a second try_emplace of an id
// gives the value it has, and the walks see each entry once, in job order, across erasures and
// the drop of the erased ones.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "job_index.hpp"

namespace muster::test {

using broker::JobIndex;

namespace {
struct Value {
  int v = 0;
  bool operator==(int other) const { return v == other; }
};
using Index = JobIndex<Value>;
std::string entries_of(const Index& index) {
  std::string out;
  index.for_each([&](std::uint64_t job, const Value& value) { out += std::to_string(job) + '=' + std::to_string(value.v) + ' '; });
  return out;
}
void put(Index& index, std::uint64_t job, int value) {
  INFO("job ", job);
  const auto [v, added] = index.try_emplace(job);
  REQUIRE(added);
  CHECK(v->v == 0);  // value-initialised (an erased entry's place reused too)
  v->v = value;
}
}  // namespace

TEST_CASE("job index: ids found with their values in any order of arrival, in job order, "
          "never an id it has not") {
  Index index;
  CHECK(index.find(1) == nullptr);
  CHECK(index.empty());
  put(index, 10, 100);
  put(index, 20, 200);
  put(index, 30, 300);  // appended above the last
  put(index, 25, 250);  // below the last: inserted in order
  put(index, 5, 50);    // below the first
  put(index, 15, 150);
  CHECK(entries_of(index) == "5=50 10=100 15=150 20=200 25=250 30=300 ");
  CHECK(index.size() == 6);
  for (std::uint64_t job : {5, 10, 15, 20, 25, 30}) {
    INFO("job ", job);
    REQUIRE(index.find(job) != nullptr);
    CHECK(*index.find(job) == static_cast<int>(job) * 10);
  }
  for (std::uint64_t job : {0, 4, 6, 11, 19, 21, 26, 29, 31, 1000}) {
    INFO("job ", job);
    CHECK(index.find(job) == nullptr);
  }
  // A second try_emplace of an id gives the value it has, first and last and between.
  for (std::uint64_t job : {5, 20, 30}) {
    const auto [v, added] = index.try_emplace(job);
    CHECK_FALSE(added);
    CHECK(*v == static_cast<int>(job) * 10);
  }
  CHECK(index.size() == 6);
  // Erased: not found, not walked; the others still are.
  index.erase(index.find(15));
  index.erase(index.find(30));  // the last
  CHECK(index.find(15) == nullptr);
  CHECK(index.find(30) == nullptr);
  CHECK(index.size() == 4);
  CHECK(entries_of(index) == "5=50 10=100 20=200 25=250 ");
  CHECK(*index.find(25) == 250);
  // Ids between the erased ones' neighbours take their places, in order; an erased id again.
  put(index, 12, 120);  // just below the erased 15's place
  put(index, 17, 170);
  put(index, 15, 151);
  put(index, 30, 301);
  put(index, 27, 270);
  CHECK(entries_of(index) == "5=50 10=100 12=120 15=151 17=170 20=200 25=250 27=270 30=301 ");
  for (std::uint64_t job : {11, 13, 14, 16, 18, 26, 28, 29, 31}) {
    INFO("job ", job);
    CHECK(index.find(job) == nullptr);
  }
  // Walks from an id on, stopped when asked; between two ids.
  std::string above;
  index.each_after(15, [&](std::uint64_t job, const Value&) {
    above += std::to_string(job) + ' ';
    return job < 25;
  });
  CHECK(above == "17 20 25 ");
  index.erase(index.find(17));
  CHECK(index.any_between(15, 25));
  CHECK_FALSE(index.any_between(15, 20));  // 17 erased
  CHECK_FALSE(index.any_between(30, 1000));
  // Each value changed in place by a walk; the erased one is not walked.
  index.for_each([](std::uint64_t job, Value& value) { value.v = static_cast<int>(job); });
  CHECK(entries_of(index) == "5=5 10=10 12=12 15=15 20=20 25=25 27=27 30=30 ");
  index.for_each([](std::uint64_t job, Value& value) { value.v = static_cast<int>(job) * 10; });
  // erase_if.
  CHECK(index.erase_if([](std::uint64_t, const Value& v) { return v.v % 100 != 0; }) == 5);
  CHECK(entries_of(index) == "10=100 20=200 30=300 ");
  const Index& read = index;
  REQUIRE(read.find(20) != nullptr);
  CHECK(*read.find(20) == 200);
  index.clear();
  CHECK(index.empty());
  CHECK(index.find(10) == nullptr);
  put(index, 7, 70);
  CHECK(entries_of(index) == "7=70 ");
}

TEST_CASE("job index: many erased, out of order, across the drop of the erased ones") {
  Index index;
  // Two interleaved runs, as two workers' answers come: mostly in order, often a little below.
  for (std::uint64_t job = 1; job <= 2000; job += 2) {
    put(index, job + 1, static_cast<int>(job + 1));
    put(index, job, static_cast<int>(job));
    if (job > 50) {  // the earlier ones erased as they go (acked), out of order too
      index.erase(index.find(job - 49));
      index.erase(index.find(job - 50));
    }
  }
  CHECK(index.size() == 50);
  std::uint64_t last = 0, n = 0;
  index.for_each([&](std::uint64_t job, const Value& value) {
    CHECK(job > last);
    CHECK(value.v == static_cast<int>(job));
    last = job;
    ++n;
  });
  CHECK(n == 50);
  for (std::uint64_t job = 1; job <= 2000; ++job) {
    INFO("job ", job);
    if (job > 1950) {
      REQUIRE(index.find(job) != nullptr);
      CHECK(*index.find(job) == static_cast<int>(job));
    } else {
      CHECK(index.find(job) == nullptr);
    }
  }
}

}  // namespace muster::test
