// wal_sync_probe.cpp — muster-bench-wal-sync-probe: how soon after a WAL-sized write returns a
// completed fdatasync covers it, on the disk under a directory, with one sync at a time or
// several in flight (docs/DURABILITY.md §10 "Session 16"). No musterd, no SQLite: a writer
// thread pwrite()s batches of --bytes at a fixed cadence into a file it first fills (as SQLite
// rewrites its WAL from the start after a checkpoint: overwrites of allocated blocks), or
// appends to a new file (--append); up to --max-syncs threads fdatasync it, a new sync starting
// as soon as a write lands that no started sync covers. A write is covered by the first sync
// that began after its pwrite returned and has completed (the prefix rule of §4).
// Owns: its file (created in --dir, deleted at exit). Must never: be taken for musterd's
// figures — it measures the disk, not the journal.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

namespace {

using Clock = std::chrono::steady_clock;

double us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

struct Options {
  std::string dir = ".";
  std::size_t bytes = 65536;
  int interval_us = 1000;
  int writes = 2000;
  int max_syncs = 1;
  bool sync_file_range = false;
  bool append = false;
  std::size_t region = 4u << 20;
};

struct Result {
  std::vector<double> cover;  // a write's pwrite return → a covering sync's return, µs
  std::vector<double> sync;   // each fdatasync's own time, µs
  std::vector<double> write;  // each pwrite's own time, µs
  double seconds = 0;
  int max_in_flight = 0;
};

Result run(const Options& o) {
  const std::string path = fmt::format("{}/wal-sync-probe.{}", o.dir, ::getpid());
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
  std::vector<char> buf(std::max(o.bytes, o.region), 'w');
  if (!o.append) {  // an allocated file, as a WAL after its first pass
    if (::pwrite(fd, buf.data(), o.region, 0) != static_cast<ssize_t>(o.region)) std::perror("pwrite");
    ::fsync(fd);
  }
  // The directory entry, once (as WalSync does).
  const int dfd = ::open(o.dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }

  Result r;
  std::vector<Clock::time_point> written_at(static_cast<std::size_t>(o.writes) + 1);
  std::mutex m;
  std::condition_variable cv;
  int written = 0;   // writes 1..written have returned
  int started = 0;   // the highest write a started sync covers
  int covered = 0;   // writes 1..covered are covered by a completed sync
  int in_flight = 0;
  bool stop = false;

  auto syncer = [&] {
    std::unique_lock lock(m);
    while (true) {
      cv.wait(lock, [&] { return stop || (written > started && in_flight < o.max_syncs); });
      if (written <= started) return;  // stop, and everything written has a sync started
      const int target = written;
      started = target;
      ++in_flight;
      r.max_in_flight = std::max(r.max_in_flight, in_flight);
      lock.unlock();
      const auto t0 = Clock::now();
      if (::fdatasync(fd) != 0) std::perror("fdatasync");
      const auto t1 = Clock::now();
      lock.lock();
      --in_flight;
      r.sync.push_back(us(t1 - t0));
      for (int i = covered + 1; i <= target; ++i) r.cover.push_back(us(t1 - written_at[static_cast<std::size_t>(i)]));
      covered = std::max(covered, target);
      cv.notify_all();
    }
  };
  std::vector<std::thread> syncers;
  for (int i = 0; i < o.max_syncs; ++i) syncers.emplace_back(syncer);

  const auto begin = Clock::now();
  std::size_t offset = 0;
  auto next = begin;
  for (int i = 1; i <= o.writes; ++i) {
    std::this_thread::sleep_until(next);
    next += std::chrono::microseconds(o.interval_us);
    if (!o.append && offset + o.bytes > o.region) offset = 0;  // the WAL restarts after a checkpoint
    const auto t0 = Clock::now();
    if (::pwrite(fd, buf.data(), o.bytes, static_cast<off_t>(offset)) != static_cast<ssize_t>(o.bytes)) std::perror("pwrite");
    const auto t1 = Clock::now();  // the write returned: a covering sync's wait counts from here, sync_file_range's included
    if (o.sync_file_range &&
        ::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(o.bytes), SYNC_FILE_RANGE_WRITE) != 0)
      std::perror("sync_file_range");
    offset += o.bytes;
    std::lock_guard lock(m);
    r.write.push_back(us(Clock::now() - t0));
    written_at[static_cast<std::size_t>(i)] = t1;
    written = i;
    cv.notify_all();
  }
  {
    std::lock_guard lock(m);
    stop = true;
  }
  cv.notify_all();
  for (auto& t : syncers) t.join();
  r.seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  ::close(fd);
  ::unlink(path.c_str());
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"How soon a completed fdatasync covers a WAL-sized write (one sync at a time, or several)"};
  Options o;
  app.add_option("--dir", o.dir, "directory on the disk to probe (the journal's)")->check(CLI::ExistingDirectory);
  app.add_option("--bytes", o.bytes, "bytes a write (a batch's WAL frames)")->check(CLI::PositiveNumber);
  app.add_option("--interval-us", o.interval_us, "a write every so many µs (the journal thread's cadence)");
  app.add_option("--writes", o.writes, "writes in all")->check(CLI::PositiveNumber);
  app.add_option("--max-syncs", o.max_syncs, "fdatasyncs in flight at most (1: one at a time)")->check(CLI::Range(1, 16));
  app.add_flag("--sync-file-range", o.sync_file_range, "start the write-back of each write at once (sync_file_range WRITE)");
  app.add_flag("--append", o.append, "append to a new file instead of overwriting an allocated one");
  app.add_option("--region", o.region, "bytes of the overwritten region (the WAL's size before it restarts)");
  CLI11_PARSE(app, argc, argv);

  const Result r = run(o);
  fmt::print(
      "bytes {} interval {} µs max-syncs {}{}{}: {} writes in {:.2f} s, {} syncs (max {} in flight)\n"
      "  covered after  p50 {:.0f}  p90 {:.0f}  p99 {:.0f}  mean {:.0f} µs\n"
      "  fdatasync      p50 {:.0f}  p90 {:.0f}  p99 {:.0f} µs\n"
      "  pwrite (+ sync_file_range) p50 {:.0f}  p90 {:.0f} µs\n",
      o.bytes, o.interval_us, o.max_syncs, o.sync_file_range ? " sync_file_range" : "", o.append ? " append" : "",
      o.writes, r.seconds, r.sync.size(), r.max_in_flight, pct(r.cover, 50), pct(r.cover, 90), pct(r.cover, 99),
      r.cover.empty() ? 0.0 : [&] { double s = 0; for (double x : r.cover) s += x; return s / static_cast<double>(r.cover.size()); }(),
      pct(r.sync, 50), pct(r.sync, 90), pct(r.sync, 99), pct(r.write, 50), pct(r.write, 90));
}
