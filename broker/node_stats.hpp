// node_stats.hpp — what musterd counts per node and per workspace for `muster nodes --stats`,
// GetNodeStats and /metrics: requests by outcome, queue wait and service time as histograms,
// a one-minute rate, and each workspace's most recent failures.
// Owns: the statistics entries (one per (workspace, node) and per workspace), their latency
// histograms, the recent-failure rings, and the shared copy of each NodeKey that open requests
// point at (the entry replaces an interner: one lookup at submit, none at the terminal reply).
// Must never: read a clock (callers pass times), allocate on the recording path (record() and
// count_terminal() touch fixed arrays only), or forget an entry an open request points at.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "events.hpp"
#include "interner.hpp"
#include "registry.hpp"
#include "request_stats.hpp"

namespace muster::broker {

// Durations in microseconds, counted in fixed log-spaced buckets: two per octave (upper bounds
// 32, 48, 64, 96, 128, 192, ... µs up to 1.5 × 2^26 µs ≈ 101 s) and one for everything above. The
// bucket of a value is found with a few bit operations; quantiles are interpolated within the
// bucket, so they are exact to within a bucket's width (a third of the value at most).
class LatencyHistogram {
 public:
  static constexpr std::size_t kBounds = 44;       // finite upper bounds
  static constexpr std::size_t kBuckets = kBounds + 1;  // the last one: above every bound
  static constexpr std::array<std::uint64_t, kBounds> upper_bounds_us() {
    std::array<std::uint64_t, kBounds> b{};
    for (std::size_t i = 0; i < kBounds; ++i) {
      std::uint64_t octave = std::uint64_t{32} << (i / 2);  // 32 µs, 64 µs, ...
      b[i] = i % 2 == 0 ? octave : octave + octave / 2;    // 2^k, then 1.5 × 2^k
    }
    return b;
  }
  static std::size_t bucket_of(std::uint64_t us);

  void record(std::uint64_t us) {
    ++counts_[bucket_of(us)];
    ++count_;
    sum_us_ += us;
  }
  std::uint64_t count() const { return count_; }
  std::uint64_t sum_us() const { return sum_us_; }
  const std::array<std::uint64_t, kBuckets>& counts() const { return counts_; }
  // The q-quantile (0 < q <= 1) in µs, interpolated inside its bucket; 0 when empty. A
  // quantile in the last bucket is reported as the last finite bound.
  std::uint64_t quantile_us(double q) const;

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0, sum_us_ = 0;
};

// One failure as the dashboard lists it.
struct RecentFailure {
  std::string workspace;  // filled in by the core's query, not kept in the ring
  std::string node;
  ErrorCode code = ErrorCode::None;
  std::string message;
  TimePoint at{};
};

// The newest kCapacity failures of one workspace; older ones are overwritten. Messages are
// kept to their first kMaxMessageBytes (cut on a UTF-8 character boundary).
class FailureRing {
 public:
  static constexpr std::size_t kCapacity = 32;
  static constexpr std::size_t kMaxMessageBytes = 512;
  void push(std::string_view node, ErrorCode code, std::string_view message, TimePoint at);
  std::vector<RecentFailure> newest_first() const;
  std::size_t size() const { return size_; }

 private:
  std::array<RecentFailure, kCapacity> ring_{};
  std::size_t next_ = 0, size_ = 0;
};

struct WorkspaceStats {
  RequestStats counts;  // every request of the workspace (GetStatus)
  FailureRing recent_failures;
};

struct NodeStats {
  RequestStats outcomes;  // completed, failed by code, the one-minute rate (submitted unused)
  LatencyHistogram queue_wait;  // submit (or re-queue) to dispatch, per dispatch
  LatencyHistogram service;     // dispatch to the worker's Result or Failure
  WorkspaceStats* workspace = nullptr;  // the node's workspace, never null once made
};

// The statistics entries. References and pointers handed out stay valid as long as the entry
// lives; an entry lives while a shared key from key_of() is held (open requests hold theirs)
// or `keep` says so, and is forgotten by a sweep otherwise (amortised: the table stays within
// twice the entries in use, plus a few).
class StatsTable {
 public:
  struct Entry {
    NodeKey key;
    NodeStats stats;
  };
  // The entry of `key`, made on first use: the shared key (it keeps the entry alive) and the
  // statistics, at the cost of one hash lookup. `keep(key)` tells the sweep which entries
  // without open requests to keep (those of nodes still registered).
  template <class Keep>
  std::pair<std::shared_ptr<const NodeKey>, NodeStats*> node(const NodeKey& key, Keep&& keep) {
    auto it = nodes_.find(key);
    if (it == nodes_.end()) {
      if (nodes_.size() >= sweep_at_) sweep(keep);
      auto entry = std::make_shared<Entry>(Entry{key, {}});
      entry->stats.workspace = &workspace(key.first);
      it = nodes_.emplace(key, std::move(entry)).first;
    }
    return {std::shared_ptr<const NodeKey>(it->second, &it->second->key), &it->second->stats};
  }
  // The entry of `key` if it exists (no entry is made: for refusals of unknown nodes).
  NodeStats* find_node(const NodeKey& key) {
    auto it = nodes_.find(key);
    return it == nodes_.end() ? nullptr : &it->second->stats;
  }
  WorkspaceStats& workspace(const std::string& name) { return workspaces_[name]; }
  const WorkspaceStats* find_workspace(const std::string& name) const {
    auto it = workspaces_.find(name);
    return it == workspaces_.end() ? nullptr : &it->second;
  }
  // Every entry, in no particular order.
  template <class F>
  void for_each_node(F&& f) const {
    for (auto& [key, entry] : nodes_) f(entry->key, entry->stats);
  }
  template <class F>
  void for_each_workspace(F&& f) const {
    for (auto& [name, ws] : workspaces_) f(name, ws);
  }
  std::size_t size() const { return nodes_.size(); }

 private:
  struct KeyHash {
    std::size_t operator()(const NodeKey& k) const { return hash_parts(k.first, k.second); }
  };
  template <class Keep>
  void sweep(Keep& keep) {
    std::erase_if(nodes_, [&](auto& kv) { return kv.second.use_count() == 1 && !keep(kv.first); });
    sweep_at_ = std::max<std::size_t>(kMinSweep, 2 * nodes_.size());
  }
  static constexpr std::size_t kMinSweep = 64;
  std::unordered_map<NodeKey, std::shared_ptr<Entry>, KeyHash> nodes_;
  std::unordered_map<std::string, WorkspaceStats> workspaces_;
  std::size_t sweep_at_ = kMinSweep;
};

// What GetNodeStats and /metrics report for one node.
struct NodeStatsSnapshot {
  std::string workspace, node;
  std::uint32_t workers = 0, in_flight = 0, queue_depth = 0;
  std::uint64_t completed = 0, failed = 0;
  std::array<std::uint64_t, 16> failures_by_code{};
  double rate_1m = 0;
  LatencyHistogram queue_wait, service;
};

}  // namespace muster::broker
