// token_store.cpp — token lifecycle, and the JSON file backing.
// Must never: write the secret anywhere, or its hash anywhere but the store's backing; log a
// token text.
#include "muster/token_store.hpp"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "muster/curve_keys.hpp"
#include "muster/duration.hpp"
#include "muster/secure_file.hpp"

namespace muster::keys {
namespace fs = std::filesystem;
using nlohmann::json;

std::string_view token_state_name(TokenState s) {
  switch (s) {
    case TokenState::Active: return "active";
    case TokenState::Expired: return "expired";
    case TokenState::UsedUp: return "used-up";
    case TokenState::Revoked: return "revoked";
  }
  return "?";
}

std::string_view token_error_name(TokenError e) {
  switch (e) {
    case TokenError::None: return "ok";
    case TokenError::Malformed: return "malformed";
    case TokenError::WrongDaemonKey: return "wrong-daemon-key";
    case TokenError::Unknown: return "unknown";
    case TokenError::Expired: return "expired";
    case TokenError::UsedUp: return "used-up";
    case TokenError::Revoked: return "revoked";
  }
  return "?";
}

TokenState TokenInfo::state(TimePoint now) const {
  if (revoked) return TokenState::Revoked;
  if (now >= expires_at) return TokenState::Expired;
  if (uses_left == 0) return TokenState::UsedUp;
  return TokenState::Active;
}

json to_json(const TokenInfo& t, TimePoint now) {
  json j = {{"id", t.id},
            {"role", role_name(t.role)},
            {"workspace", t.workspace},
            {"label", t.label},
            {"created_at", format_timestamp(t.created_at)},
            {"expires_at", format_timestamp(t.expires_at)},
            {"uses_total", t.uses_total},
            {"uses_left", t.uses_left},
            {"revoked", t.revoked},
            {"state", token_state_name(t.state(now))}};
  j["revoked_at"] = t.revoked_at ? json(format_timestamp(*t.revoked_at)) : json(nullptr);
  j["last_used_at"] = t.last_used_at ? json(format_timestamp(*t.last_used_at)) : json(nullptr);
  return j;
}

namespace {

constexpr const char* kFormat = "muster-tokens";
constexpr int kVersion = 1;

std::optional<TimePoint> opt_time(const json& j, const char* key, const fs::path& file) {
  if (!j.contains(key) || j.at(key).is_null()) return std::nullopt;
  auto t = parse_timestamp(j.at(key).get<std::string>());
  if (!t) throw std::runtime_error(fmt::format("{}: bad timestamp in `{}`", file.string(), key));
  return t;
}

TimePoint req_time(const json& j, const char* key, const fs::path& file) {
  auto t = opt_time(j, key, file);
  if (!t) throw std::runtime_error(fmt::format("{}: missing `{}`", file.string(), key));
  return *t;
}

}  // namespace

std::vector<StoredToken> TokenFile::load() {
  auto text = read_private_file(file_);
  if (!text) return {};
  std::vector<StoredToken> out;
  try {
    json doc = json::parse(*text);
    if (doc.value("format", "") != kFormat || doc.value("version", 0) != kVersion)
      throw std::runtime_error("not a muster token store (format/version)");
    if (doc.value("daemon_public_key", "") != daemon_key_z85_)
      spdlog::warn(
          "{} was written for another daemon key; tokens minted before the daemon key was "
          "rotated will be refused",
          file_.string());
    for (const json& t : doc.at("tokens")) {
      StoredToken e;
      e.info.id = t.at("id").get<std::string>();
      e.secret_hash = t.at("secret_hash").get<std::string>();
      auto role = parse_role(t.at("role").get<std::string>());
      if (!role) throw std::runtime_error(fmt::format("bad role for token {}", e.info.id));
      e.info.role = *role;
      e.info.workspace = t.at("workspace").get<std::string>();
      e.info.label = t.value("label", "");
      e.info.created_at = req_time(t, "created_at", file_);
      e.info.expires_at = req_time(t, "expires_at", file_);
      e.info.uses_total = t.at("uses_total").get<std::uint32_t>();
      e.info.uses_left = t.at("uses_left").get<std::uint32_t>();
      e.info.revoked = t.value("revoked", false);
      e.info.revoked_at = opt_time(t, "revoked_at", file_);
      e.info.last_used_at = opt_time(t, "last_used_at", file_);
      out.push_back(std::move(e));
    }
  } catch (const json::exception& e) {
    throw std::runtime_error(fmt::format("{} is not a valid token store: {}", file_.string(), e.what()));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(fmt::format("{} is not a valid token store: {}", file_.string(), e.what()));
  }
  return out;
}

void TokenFile::save(const TokenMap& /*before*/, const TokenMap& after) {
  json arr = json::array();
  for (const auto& [id, e] : after) {
    const TokenInfo& t = e.info;
    json j = {{"id", t.id},
              {"secret_hash", e.secret_hash},
              {"role", role_name(t.role)},
              {"workspace", t.workspace},
              {"label", t.label},
              {"created_at", format_timestamp(t.created_at)},
              {"expires_at", format_timestamp(t.expires_at)},
              {"uses_total", t.uses_total},
              {"uses_left", t.uses_left},
              {"revoked", t.revoked}};
    j["revoked_at"] = t.revoked_at ? json(format_timestamp(*t.revoked_at)) : json(nullptr);
    j["last_used_at"] = t.last_used_at ? json(format_timestamp(*t.last_used_at)) : json(nullptr);
    arr.push_back(std::move(j));
  }
  json doc = {{"format", kFormat},
              {"version", kVersion},
              {"daemon_public_key", daemon_key_z85_},
              {"tokens", std::move(arr)}};
  write_file_atomic(file_, doc.dump(2) + "\n", 0600);
}

TokenStore::TokenStore(fs::path file, std::string daemon_public_key_z85)
    : TokenStore(std::make_unique<TokenFile>(std::move(file), daemon_public_key_z85),
                 daemon_public_key_z85) {}

TokenStore::TokenStore(std::unique_ptr<TokenBacking> backing, std::string daemon_public_key_z85)
    : backing_(std::move(backing)), daemon_key_z85_(std::move(daemon_public_key_z85)) {
  auto key = z85_decode_key(daemon_key_z85_);
  if (!key) throw std::invalid_argument("TokenStore: daemon public key is not a Z85 key");
  daemon_key_ = *key;
  for (StoredToken& e : backing_->load()) {
    auto bad = [&](const std::string& why) {
      return std::runtime_error(fmt::format("{} is not a valid token store: {}", backing_->describe(), why));
    };
    if (e.info.id.size() != 2 * kTokenIdBytes || !hex_decode(e.info.id))
      throw bad(fmt::format("bad token id `{}`", e.info.id));
    if (e.secret_hash.size() != 64 || !hex_decode(e.secret_hash))
      throw bad(fmt::format("bad secret_hash for token {}", e.info.id));
    std::string id = e.info.id;
    if (!entries_.emplace(id, std::move(e)).second) throw bad(fmt::format("token {} appears twice", id));
  }
}

fs::path TokenStore::default_path(const fs::path& data_dir) { return data_dir / kTokenStoreFile; }

void TokenStore::save(const Entries& next) {
  backing_->save(entries_, next);
  entries_ = next;
}

MintedToken TokenStore::mint(const MintRequest& req, TimePoint now) {
  if (req.ttl <= std::chrono::seconds(0) || req.ttl > kMaxDuration)
    throw std::invalid_argument("token ttl must be between 1s and 10 years");
  if (req.uses < 1 || req.uses > kMaxTokenUses)
    throw std::invalid_argument(fmt::format("token uses must be between 1 and {}", kMaxTokenUses));
  if (req.role == Role::Gateway) {
    if (workspace_list(req.workspace).empty())
      throw std::invalid_argument(
          "a gateway token needs the workspaces it may act in, comma-separated (e.g. alpha,beta): "
          "1-64 distinct names of 1-64 of A-Z a-z 0-9 _ . - (not starting with . or -)");
  } else if (!is_valid_workspace(req.workspace)) {
    throw std::invalid_argument(
        "invalid workspace name: use 1-64 of A-Z a-z 0-9 _ . - (not starting with . or -)");
  }
  if (!is_valid_label(req.label))
    throw std::invalid_argument("invalid token label: at most 128 bytes, no control characters");

  std::lock_guard lock(mu_);
  Token tok = generate_token(daemon_key_);
  while (entries_.count(tok.id)) tok = generate_token(daemon_key_);  // 2^-64, but be exact

  Entry e;
  e.info.id = tok.id;
  e.info.role = req.role;
  e.info.workspace = req.workspace;
  e.info.label = req.label;
  e.info.created_at = now;
  e.info.expires_at = now + req.ttl;
  e.info.uses_total = req.uses;
  e.info.uses_left = req.uses;
  e.secret_hash = token_secret_hash(tok);

  Entries next = pruned_copy(now);
  next.emplace(tok.id, e);
  save(next);
  spdlog::info("minted token {} (role {}, workspace {}, {} use(s), expires {})", e.info.id,
               role_name(e.info.role), e.info.workspace, e.info.uses_total,
               format_timestamp(e.info.expires_at));
  return MintedToken{tok.to_string(), e.info};
}

TokenCheck TokenStore::check_locked(std::string_view token_text, TimePoint now) const {
  TokenCheck r;
  TokenParseResult parsed = parse_token(token_text);
  if (!parsed) {
    r.error = TokenError::Malformed;
    r.message = parsed.message;
    r.detail = parsed.message;
    return r;
  }
  const Token& tok = *parsed.token;
  if (!constant_time_equal(tok.daemon_public_key, daemon_key_)) {
    std::string theirs = tok.daemon_public_key_z85();
    r.error = TokenError::WrongDaemonKey;
    r.message = fmt::format(
        "this token was minted by another daemon (token's daemon key {}, this daemon's key {}); "
        "ask this daemon's operator for a token",
        key_fingerprint(theirs), key_fingerprint(daemon_key_z85_));
    r.detail = fmt::format("token {} names daemon key {}", tok.id, theirs);
    return r;
  }
  auto it = entries_.find(tok.id);
  // Hash even when the id is unknown, so both paths cost about the same.
  std::string presented = token_secret_hash(tok);
  if (it == entries_.end()) {
    r.error = TokenError::Unknown;
    r.message = "unknown token: this daemon never minted it, or it was pruned";
    r.detail = fmt::format("no token with id {}", tok.id);
    return r;
  }
  auto want = hex_decode(it->second.secret_hash);
  auto got = hex_decode(presented);
  if (!want || !got || !constant_time_equal(*want, *got)) {
    r.error = TokenError::Unknown;
    r.message = "unknown token: this daemon never minted it, or it was pruned";
    r.detail = fmt::format("token {}: wrong secret (guessing or a damaged token)", tok.id);
    return r;
  }
  const TokenInfo& info = it->second.info;
  r.info = info;
  switch (info.state(now)) {
    case TokenState::Revoked:
      r.error = TokenError::Revoked;
      r.message = "this token was revoked; ask the operator for a new one";
      r.detail = fmt::format("token {} is revoked", tok.id);
      break;
    case TokenState::Expired:
      r.error = TokenError::Expired;
      r.message = fmt::format("this token expired at {}; ask the operator for a new one",
                              format_timestamp(info.expires_at));
      r.detail = fmt::format("token {} expired at {}", tok.id, format_timestamp(info.expires_at));
      break;
    case TokenState::UsedUp:
      r.error = TokenError::UsedUp;
      r.message = fmt::format(
          "this token has no uses left (it was minted for {} use(s)); ask the operator for a new one",
          info.uses_total);
      r.detail = fmt::format("token {} is used up ({} use(s))", tok.id, info.uses_total);
      break;
    case TokenState::Active:
      r.detail = fmt::format("token {} ok", tok.id);
      break;
  }
  return r;
}

TokenCheck TokenStore::check(std::string_view token_text, TimePoint now) const {
  std::lock_guard lock(mu_);
  return check_locked(token_text, now);
}

TokenCheck TokenStore::consume(std::string_view token_text, TimePoint now) {
  std::lock_guard lock(mu_);
  TokenCheck r = check_locked(token_text, now);
  if (!r) return r;
  Entries next = pruned_copy(now);  // the token itself is active, so it stays
  Entry& e = next.at(r.info->id);
  e.info.uses_left -= 1;
  e.info.last_used_at = now;
  save(next);
  r.info = e.info;
  return r;
}

bool TokenStore::refund(std::string_view id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.info.uses_left >= it->second.info.uses_total) return false;
  Entries next = entries_;
  next.find(id)->second.info.uses_left += 1;
  save(next);
  return true;
}

std::optional<TokenInfo> TokenStore::revoke(std::string_view id, TimePoint now) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  if (it->second.info.revoked) return it->second.info;
  Entries next = pruned_copy(now);
  next.insert_or_assign(std::string(id), it->second);  // even if it ended long ago: now revoked
  Entry& e = next.find(id)->second;
  e.info.revoked = true;
  e.info.revoked_at = now;
  save(next);
  spdlog::info("revoked token {}", e.info.id);
  return entries_.find(id)->second.info;
}

std::optional<TokenInfo> TokenStore::find(std::string_view id) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return it->second.info;
}

std::vector<TokenInfo> TokenStore::list() const {
  std::lock_guard lock(mu_);
  std::vector<TokenInfo> out;
  out.reserve(entries_.size());
  for (const auto& [id, e] : entries_) out.push_back(e.info);
  std::stable_sort(out.begin(), out.end(),
                   [](const TokenInfo& a, const TokenInfo& b) { return a.created_at < b.created_at; });
  return out;
}

std::size_t TokenStore::prune(TimePoint now, std::chrono::seconds keep_for) {
  std::lock_guard lock(mu_);
  std::size_t removed = 0;
  Entries next = without_ended(entries_, now, keep_for, removed);
  if (removed == 0) return 0;
  save(next);
  return removed;
}

TokenStore::Entries TokenStore::without_ended(const Entries& entries, TimePoint now,
                                              std::chrono::seconds keep_for, std::size_t& removed) {
  Entries next;
  for (const auto& [id, e] : entries) {
    const TokenInfo& t = e.info;
    std::optional<TimePoint> ended;
    switch (t.state(now)) {
      case TokenState::Active: break;
      case TokenState::Revoked: ended = t.revoked_at.value_or(t.created_at); break;
      case TokenState::UsedUp: ended = t.last_used_at.value_or(t.created_at); break;  // unexpired
      case TokenState::Expired: ended = t.expires_at; break;
    }
    if (ended && *ended + keep_for <= now) {
      ++removed;
      continue;
    }
    next.emplace(id, e);
  }
  return next;
}

TokenStore::Entries TokenStore::pruned_copy(TimePoint now) const {
  std::size_t removed = 0;
  Entries next = without_ended(entries_, now, kTokenKeepAfterEnd, removed);
  if (removed > 0) spdlog::info("forgot {} token(s) that ended more than {} days ago", removed,
                                kTokenKeepAfterEnd.count() / 86400);
  return next;
}

}  // namespace muster::keys
