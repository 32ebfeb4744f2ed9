// connection_limiter.hpp — the host mode's connection caps: counts the open connections (HTTP
// and WebSocket) of each remote address and in all, and refuses one over either cap.
// Owns: the counts, released when the connection's slot is destroyed.
// Must never: leak a count (a slot releases exactly once, also after the limiter is gone).
// Thread-safe.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace muster::bridge {

class ConnectionLimiter {
 public:
  struct State;
  // Held by a connection for as long as it is open; destroying it frees the place.
  class Slot {
   public:
    Slot(std::shared_ptr<State> state, std::string key) : state_(std::move(state)), key_(std::move(key)) {}
    ~Slot();
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    const std::string& key() const { return key_; }

   private:
    std::shared_ptr<State> state_;
    std::string key_;
  };

  // `per_key_cap`: connections allowed at once per key (remote address); `total_cap`: in all.
  // 0 means no cap.
  explicit ConnectionLimiter(std::size_t per_key_cap, std::size_t total_cap = 0);

  enum class Refusal { None, PerKey, Total };
  // A slot for one more connection of `key`, or nullptr when `key` already holds its cap or
  // every connection allowed is open (`why`, if given, says which).
  std::shared_ptr<Slot> acquire(const std::string& key, Refusal* why = nullptr);
  // Connections open for `key` now, and in all.
  std::size_t open(const std::string& key) const;
  std::size_t open_total() const;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace muster::bridge
