// identity_store.cpp — enrolled identities: hash-map lookups, add, revoke; the JSON file backing.
// Must never: publish a change to memory before its backing stored it, or drop a revoked key
// from the key map (a revoked key must stay known so that it cannot enroll again).
#include "muster/identity_store.hpp"

#include <algorithm>
#include <array>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "muster/curve_keys.hpp"
#include "muster/secure_file.hpp"

namespace muster::keys {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr const char* kFormat = "muster-identities";
constexpr int kVersion = 1;

std::optional<TimePoint> opt_time(const json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) return std::nullopt;
  auto t = parse_timestamp(j.at(key).get<std::string>());
  if (!t) throw std::runtime_error(fmt::format("bad timestamp in `{}`", key));
  return t;
}

json stored_json(const Identity& i) {
  json j = {{"id", i.id},
            {"public_key", i.public_key},
            {"role", role_name(i.role)},
            {"workspace", i.workspace},
            {"name", i.name},
            {"hostname", i.hostname},
            {"enrolled_at", format_timestamp(i.enrolled_at)},
            {"token_id", i.token_id},
            {"revoked", i.revoked}};
  j["revoked_at"] = i.revoked_at ? json(format_timestamp(*i.revoked_at)) : json(nullptr);
  return j;
}
}  // namespace

json to_json(const Identity& i) { return stored_json(i); }

std::string new_uuid_v4() {
  std::array<std::uint8_t, 16> b{};
  random_bytes(b);
  b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  std::string h = hex_encode(b);
  return fmt::format("{}-{}-{}-{}-{}", h.substr(0, 8), h.substr(8, 4), h.substr(12, 4),
                     h.substr(16, 4), h.substr(20, 12));
}

std::vector<Identity> IdentityFile::load() {
  auto text = read_file(file_);
  if (!text) return {};
  std::vector<Identity> out;
  try {
    json doc = json::parse(*text);
    if (doc.value("format", "") != kFormat || doc.value("version", 0) != kVersion)
      throw std::runtime_error("not a muster identity store (format/version)");
    for (const json& j : doc.at("identities")) {
      Identity i;
      i.id = j.at("id").get<std::string>();
      i.public_key = j.at("public_key").get<std::string>();
      auto role = parse_role(j.at("role").get<std::string>());
      if (!role) throw std::runtime_error(fmt::format("identity {}: bad role", i.id));
      i.role = *role;
      i.workspace = j.at("workspace").get<std::string>();
      i.name = j.value("name", "");
      i.hostname = j.value("hostname", "");
      auto at = opt_time(j, "enrolled_at");
      if (!at) throw std::runtime_error(fmt::format("identity {}: missing enrolled_at", i.id));
      i.enrolled_at = *at;
      i.token_id = j.value("token_id", "");
      i.revoked = j.value("revoked", false);
      i.revoked_at = opt_time(j, "revoked_at");
      out.push_back(std::move(i));
    }
  } catch (const json::exception& e) {
    throw std::runtime_error(fmt::format("{} is not a valid identity store: {}", file_.string(), e.what()));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(fmt::format("{} is not a valid identity store: {}", file_.string(), e.what()));
  }
  return out;
}

void IdentityFile::save(const IdentityMap& /*before*/, const IdentityMap& after) {
  std::vector<const Identity*> sorted;
  sorted.reserve(after.size());
  for (const auto& [id, i] : after) sorted.push_back(&i);
  std::sort(sorted.begin(), sorted.end(), [](const Identity* a, const Identity* b) {
    return a->enrolled_at != b->enrolled_at ? a->enrolled_at < b->enrolled_at : a->id < b->id;
  });
  json arr = json::array();
  for (const Identity* i : sorted) arr.push_back(stored_json(*i));
  json doc = {{"format", kFormat}, {"version", kVersion}, {"identities", std::move(arr)}};
  write_file_atomic(file_, doc.dump(2) + "\n", 0600);
}

IdentityStore::IdentityStore(fs::path file) : IdentityStore(std::make_unique<IdentityFile>(std::move(file))) {}

IdentityStore::IdentityStore(std::unique_ptr<IdentityBacking> backing) : backing_(std::move(backing)) {
  for (Identity& i : backing_->load()) {
    auto bad = [&](const std::string& why) {
      return std::runtime_error(fmt::format("{} is not a valid identity store: {}", backing_->describe(), why));
    };
    if (!is_z85_key(i.public_key)) throw bad(fmt::format("identity {}: public_key is not a Z85 key", i.id));
    if (by_key_.count(i.public_key))
      throw bad(fmt::format("public key of identity {} is enrolled twice", i.id));
    if (by_id_.count(i.id)) throw bad(fmt::format("identity {} appears twice", i.id));
    by_key_.emplace(i.public_key, i.id);
    std::string id = i.id;
    by_id_.emplace(std::move(id), std::move(i));
  }
}

fs::path IdentityStore::default_path(const fs::path& data_dir) { return data_dir / kIdentityStoreFile; }

std::optional<Identity> IdentityStore::find_by_key(std::string_view public_key_z85) const {
  std::shared_lock lock(mu_);
  auto k = by_key_.find(std::string(public_key_z85));
  if (k == by_key_.end()) return std::nullopt;
  return by_id_.at(k->second);
}

std::optional<Identity> IdentityStore::find_by_key(const KeyBytes& public_key) const {
  return find_by_key(z85_encode_key(public_key));
}

std::optional<Identity> IdentityStore::find_by_id(std::string_view id) const {
  std::shared_lock lock(mu_);
  auto it = by_id_.find(std::string(id));
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

std::optional<Identity> IdentityStore::authorize(std::string_view public_key_z85, Role needed) const {
  auto i = find_by_key(public_key_z85);
  if (!i || i->revoked || !role_satisfies(i->role, needed)) return std::nullopt;
  return i;
}

std::optional<Identity> IdentityStore::authorize(const KeyBytes& public_key, Role needed) const {
  return authorize(z85_encode_key(public_key), needed);
}

bool IdentityStore::is_allowed(std::string_view public_key_z85, Role needed) const {
  return authorize(public_key_z85, needed).has_value();
}

std::optional<Identity> IdentityStore::authorize_id(std::string_view id, Role needed) const {
  auto i = find_by_id(id);
  if (!i || i->revoked || !role_satisfies(i->role, needed)) return std::nullopt;
  return i;
}

AddResult IdentityStore::preview_locked(const NewIdentity& req) const {
  AddResult r;
  if (!is_z85_key(req.public_key)) {
    r.status = AddStatus::InvalidKey;
    r.message = "public_key is not a 40-character Z85 CURVE key";
    return r;
  }
  auto k = by_key_.find(req.public_key);
  if (k == by_key_.end()) {
    r.status = AddStatus::Created;
    return r;
  }
  const Identity& cur = by_id_.at(k->second);
  r.identity = cur;
  if (cur.revoked) {
    r.status = AddStatus::KeyRevoked;
    r.message = "this key belongs to a revoked identity and cannot enroll again; generate a new key";
  } else if (cur.role != req.role || cur.workspace != req.workspace) {
    r.status = AddStatus::Conflict;
    r.message = fmt::format(
        "this key is already enrolled with role {} in workspace {}; use a new key for role {} in "
        "workspace {}",
        role_name(cur.role), cur.workspace, role_name(req.role), req.workspace);
  } else {
    r.status = AddStatus::Existing;
  }
  return r;
}

AddResult IdentityStore::preview(const NewIdentity& req) const {
  std::shared_lock lock(mu_);
  return preview_locked(req);
}

AddResult IdentityStore::add(const NewIdentity& req, TimePoint now) {
  std::unique_lock lock(mu_);
  AddResult r = preview_locked(req);
  if (r.status != AddStatus::Created) return r;
  Identity i;
  do i.id = new_uuid_v4();
  while (by_id_.count(i.id));
  i.public_key = req.public_key;
  i.role = req.role;
  i.workspace = req.workspace;
  i.name = req.name;
  i.hostname = req.hostname;
  i.enrolled_at = now;
  i.token_id = req.token_id;
  ById next = by_id_;
  next.emplace(i.id, i);
  backing_->save(by_id_, next);
  by_id_ = std::move(next);
  by_key_.emplace(i.public_key, i.id);
  ++generation_;
  spdlog::info("enrolled identity {} ({} in workspace {}, name '{}', host '{}', key {})", i.id,
               role_name(i.role), i.workspace, i.name, i.hostname, i.public_key);
  r.identity = std::move(i);
  return r;
}

std::optional<Identity> IdentityStore::revoke(std::string_view id, TimePoint now) {
  std::unique_lock lock(mu_);
  auto it = by_id_.find(std::string(id));
  if (it == by_id_.end()) return std::nullopt;
  if (it->second.revoked) return it->second;
  ById next = by_id_;
  Identity& i = next.at(std::string(id));
  i.revoked = true;
  i.revoked_at = now;
  Identity out = i;
  backing_->save(by_id_, next);
  by_id_ = std::move(next);
  ++generation_;
  spdlog::info("revoked identity {} ({}, key {})", out.id, role_name(out.role), out.public_key);
  return out;
}

std::vector<Identity> IdentityStore::list() const {
  std::shared_lock lock(mu_);
  std::vector<Identity> out;
  out.reserve(by_id_.size());
  for (const auto& [id, i] : by_id_) out.push_back(i);
  std::sort(out.begin(), out.end(), [](const Identity& a, const Identity& b) {
    return a.enrolled_at != b.enrolled_at ? a.enrolled_at < b.enrolled_at : a.id < b.id;
  });
  return out;
}

std::size_t IdentityStore::size() const {
  std::shared_lock lock(mu_);
  return by_id_.size();
}

std::uint64_t IdentityStore::generation() const {
  std::shared_lock lock(mu_);
  return generation_;
}

}  // namespace muster::keys
