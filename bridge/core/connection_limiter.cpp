// connection_limiter.cpp — see connection_limiter.hpp.
#include "muster/bridge/connection_limiter.hpp"

#include <mutex>
#include <unordered_map>

namespace muster::bridge {

struct ConnectionLimiter::State {
  std::size_t cap = 0, total_cap = 0;
  mutable std::mutex mu;
  std::unordered_map<std::string, std::size_t> open;
  std::size_t total = 0;
};

ConnectionLimiter::Slot::~Slot() {
  std::lock_guard lock(state_->mu);
  auto it = state_->open.find(key_);
  if (it == state_->open.end()) return;
  --state_->total;
  if (--it->second == 0) state_->open.erase(it);
}

ConnectionLimiter::ConnectionLimiter(std::size_t per_key_cap, std::size_t total_cap)
    : state_(std::make_shared<State>()) {
  state_->cap = per_key_cap;
  state_->total_cap = total_cap;
}

std::shared_ptr<ConnectionLimiter::Slot> ConnectionLimiter::acquire(const std::string& key, Refusal* why) {
  if (why) *why = Refusal::None;
  {
    std::lock_guard lock(state_->mu);
    if (state_->total_cap != 0 && state_->total >= state_->total_cap) {
      if (why) *why = Refusal::Total;
      return nullptr;
    }
    auto it = state_->open.find(key);
    if (state_->cap != 0 && it != state_->open.end() && it->second >= state_->cap) {
      if (why) *why = Refusal::PerKey;
      return nullptr;
    }
    ++state_->open[key];
    ++state_->total;
  }
  return std::make_shared<Slot>(state_, key);
}

std::size_t ConnectionLimiter::open(const std::string& key) const {
  std::lock_guard lock(state_->mu);
  auto it = state_->open.find(key);
  return it == state_->open.end() ? 0 : it->second;
}

std::size_t ConnectionLimiter::open_total() const {
  std::lock_guard lock(state_->mu);
  return state_->total;
}

}  // namespace muster::bridge
