// registration_store.hpp — the host mode's remote-node registrations, per user, with expiry.
// Owns: refresh semantics (a registration lives `ttl` after its last refresh, 10 minutes by
// default), which registration backs a muster node when several users register one name
// (the most recently refreshed), and the listing order.
// Must never: return an expired registration. Socket-free and clock-free: `now_ms` is passed in.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace muster::bridge {

struct Registration {
  std::string user;
  std::string name;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::int64_t created_ms = 0;
  std::int64_t refreshed_ms = 0;
  std::int64_t expires_ms = 0;
  bool same_ports(const Registration& o) const { return inputs == o.inputs && outputs == o.outputs; }
};

class RegistrationStore {
 public:
  explicit RegistrationStore(std::int64_t ttl_ms = 10 * 60 * 1000) : ttl_ms_(ttl_ms) {}

  std::int64_t ttl_ms() const { return ttl_ms_; }

  // Creates or refreshes (user, name). Returns the stored registration.
  const Registration& upsert(const std::string& user, const std::string& name,
                             std::vector<std::string> inputs, std::vector<std::string> outputs,
                             std::int64_t now_ms);

  // The user's live registrations, by name.
  std::vector<Registration> list(const std::string& user, std::int64_t now_ms) const;
  // Every user's live registrations of `name`, most recently refreshed first.
  std::vector<Registration> find(const std::string& name, std::int64_t now_ms) const;
  // One registration per live name (the most recently refreshed), by name.
  std::vector<Registration> exposed(std::int64_t now_ms) const;

  // Drops expired registrations and returns them.
  std::vector<Registration> expire(std::int64_t now_ms);
  // When the next registration expires, if any.
  std::optional<std::int64_t> next_expiry() const;
  std::size_t size() const { return regs_.size(); }

 private:
  std::int64_t ttl_ms_;
  std::map<std::pair<std::string, std::string>, Registration> regs_;  // (user, name)
};

}  // namespace muster::bridge
