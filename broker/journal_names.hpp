// journal_names.hpp — the small ids under which a journal stores values that many calls share
// (a call's node and caller; the worker that runs it): each distinct value is written once to a
// side table, and a call's row holds its id instead of the value's strings (docs/DURABILITY.md
// §4, §10: fewer columns bound and stored per row).
// Owns: which values the store holds under which id, as far as this journal wrote or read them,
// and the last one found (a burst of calls comes from one caller to one node, one worker).
// Must never: answer an id the store does not hold (the journal clears it when a turn that
// stored a value rolls back, and reads the table again), or touch the store itself.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace muster::broker::journal {

// Values of N strings (compared byte for byte) and the id of each in the store.
template <std::size_t N>
class NameIds {
 public:
  using Parts = std::array<std::string_view, N>;

  // The id `parts` is stored under, or 0 when the store does not hold it (yet).
  std::int64_t find(const Parts& parts) {
    if (last_ && same(last_->first, parts)) return last_->second;
    auto it = ids_.find(parts);
    if (it == ids_.end()) return 0;
    last_ = &*it;
    return it->second;
  }
  // The store holds `parts` under `id` (above 0).
  void add(const Parts& parts, std::int64_t id) {
    Key key;
    for (std::size_t i = 0; i < N; ++i) key[i] = std::string(parts[i]);
    last_ = &*ids_.insert_or_assign(std::move(key), id).first;
  }
  void clear() {
    ids_.clear();
    last_ = nullptr;
  }
  std::size_t size() const { return ids_.size(); }

 private:
  using Key = std::array<std::string, N>;
  template <class A, class B>
  static bool same(const A& a, const B& b) {
    for (std::size_t i = 0; i < N; ++i)
      if (std::string_view(a[i]) != std::string_view(b[i])) return false;
    return true;
  }
  // Transparent: a lookup by string_views copies nothing.
  struct Hash {
    using is_transparent = void;
    template <class A>
    std::size_t operator()(const A& parts) const {
      std::size_t h = 0;
      for (const auto& p : parts)
        h ^= std::hash<std::string_view>{}(p) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
      return h;
    }
  };
  struct Eq {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const { return same(a, b); }
  };
  using Map = std::unordered_map<Key, std::int64_t, Hash, Eq>;
  Map ids_;
  const typename Map::value_type* last_ = nullptr;  // a node of ids_ (nodes do not move)
};

}  // namespace muster::broker::journal
