// spare_nodes.hpp — the nodes of a std::unordered_map kept for reuse: an entry erased through it
// leaves its node (its value destroyed and made anew, so it holds nothing) for the next entry
// inserted through it, instead of a free and a malloc per entry.
// Owns: up to `keep` spare nodes of one map type (node handles, independent of any map's life).
// Must never: keep anything an erased value held (a payload, a peer: released at erase, as
// erase() would), or hand out a node whose value is not default-constructed.
// Why: musterd's request map, the worker SDK's kept answers and the client library's open calls
// take one node per call; at 256 calls in flight they are freed and taken in bursts larger than
// malloc's per-size cache (docs/PERFORMANCE.md, "Small calls, session 11" and "SDK worker and
// client library, session 12").
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace muster {

template <class Map>
class SpareNodes {
 public:
  explicit SpareNodes(std::size_t keep) : keep_(keep) { spare_.reserve(keep); }

  // Inserts `key` (not in `map`) with a default-constructed value, in a spare node if there is
  // one; returns the value.
  typename Map::mapped_type& insert(Map& map, const typename Map::key_type& key) {
    if (spare_.empty()) return map.try_emplace(key).first->second;
    auto node = std::move(spare_.back());
    spare_.pop_back();
    node.key() = key;
    return map.insert(std::move(node)).position->second;
  }

  // Erases the entry at `it`; its node is kept (while fewer than `keep` are) with its value
  // destroyed and default-constructed again.
  void erase(Map& map, typename Map::iterator it) {
    if (spare_.size() >= keep_) {
      map.erase(it);
      return;
    }
    auto node = map.extract(it);
    auto* value = &node.mapped();
    std::destroy_at(value);
    std::construct_at(value);
    spare_.push_back(std::move(node));
  }

  std::size_t spare() const { return spare_.size(); }

 private:
  std::size_t keep_;
  std::vector<typename Map::node_type> spare_;
};

}  // namespace muster
