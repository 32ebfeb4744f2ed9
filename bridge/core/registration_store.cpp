// registration_store.cpp — see registration_store.hpp.
#include "muster/bridge/registration_store.hpp"

#include <algorithm>

namespace muster::bridge {

const Registration& RegistrationStore::upsert(const std::string& user, const std::string& name,
                                              std::vector<std::string> inputs,
                                              std::vector<std::string> outputs, std::int64_t now_ms) {
  auto key = std::make_pair(user, name);
  auto it = regs_.find(key);
  if (it == regs_.end() || it->second.expires_ms <= now_ms) {
    Registration r;
    r.user = user;
    r.name = name;
    r.created_ms = now_ms;
    it = regs_.insert_or_assign(key, std::move(r)).first;
  }
  Registration& r = it->second;
  r.inputs = std::move(inputs);
  r.outputs = std::move(outputs);
  r.refreshed_ms = now_ms;
  r.expires_ms = now_ms + ttl_ms_;
  return r;
}

std::vector<Registration> RegistrationStore::list(const std::string& user, std::int64_t now_ms) const {
  std::vector<Registration> out;
  for (auto it = regs_.lower_bound({user, std::string()}); it != regs_.end() && it->first.first == user; ++it)
    if (it->second.expires_ms > now_ms) out.push_back(it->second);
  return out;  // the map orders by (user, name)
}

std::vector<Registration> RegistrationStore::find(const std::string& name, std::int64_t now_ms) const {
  std::vector<Registration> out;
  for (auto& [key, r] : regs_)
    if (key.second == name && r.expires_ms > now_ms) out.push_back(r);
  std::stable_sort(out.begin(), out.end(), [](const Registration& a, const Registration& b) {
    return a.refreshed_ms > b.refreshed_ms;
  });
  return out;
}

std::vector<Registration> RegistrationStore::exposed(std::int64_t now_ms) const {
  std::map<std::string, const Registration*> best;
  for (auto& [key, r] : regs_) {
    if (r.expires_ms <= now_ms) continue;
    auto& slot = best[r.name];
    if (!slot || r.refreshed_ms > slot->refreshed_ms) slot = &r;
  }
  std::vector<Registration> out;
  out.reserve(best.size());
  for (auto& [name, r] : best) out.push_back(*r);
  return out;
}

std::vector<Registration> RegistrationStore::expire(std::int64_t now_ms) {
  std::vector<Registration> gone;
  for (auto it = regs_.begin(); it != regs_.end();) {
    if (it->second.expires_ms <= now_ms) {
      gone.push_back(std::move(it->second));
      it = regs_.erase(it);
    } else {
      ++it;
    }
  }
  return gone;
}

std::optional<std::int64_t> RegistrationStore::next_expiry() const {
  std::optional<std::int64_t> out;
  for (auto& [key, r] : regs_)
    if (!out || r.expires_ms < *out) out = r.expires_ms;
  return out;
}

}  // namespace muster::bridge
