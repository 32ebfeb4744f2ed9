// identity_postgres_import.cpp — merging a data dir's store files into the shared stores
// (identity_postgres_import.hpp).
#include "identity_postgres_import.hpp"

#include <algorithm>
#include <memory>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace muster::broker {
namespace fs = std::filesystem;

namespace {

ImportConflict conflict(const std::string& source, const std::string& what) {
  return ImportConflict(fmt::format(
      "cannot import {} into the shared store: {}; nothing was imported. Settle it by hand "
      "(docs/DURABILITY.md §12): if the shared store is right, move the file out of the data "
      "dir; musterd imports a file only while it is there",
      source, what));
}

template <class T>
std::optional<T> earliest(const std::optional<T>& a, const std::optional<T>& b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

template <class T>
std::optional<T> latest(const std::optional<T>& a, const std::optional<T>& b) {
  if (!a) return b;
  if (!b) return a;
  return std::max(*a, *b);
}

}  // namespace

keys::IdentityMap merge_identities(keys::IdentityMap shared, const std::vector<keys::Identity>& imported,
                                   const std::string& source) {
  std::unordered_map<std::string, std::string> id_of_key;
  for (const auto& [id, i] : shared) id_of_key.emplace(i.public_key, id);
  for (const keys::Identity& i : imported) {
    auto same = shared.find(i.id);
    if (same == shared.end()) {
      if (auto holder = id_of_key.find(i.public_key); holder != id_of_key.end())
        throw conflict(source, fmt::format("key {} is identity {} there and identity {} in the file",
                                           i.public_key, holder->second, i.id));
      id_of_key.emplace(i.public_key, i.id);
      shared.emplace(i.id, i);
      continue;
    }
    keys::Identity& cur = same->second;
    if (cur.public_key != i.public_key || cur.role != i.role || cur.workspace != i.workspace)
      throw conflict(source, fmt::format("identity {} is key {} ({} in workspace {}) there and key {} ({} "
                                         "in workspace {}) in the file",
                                         i.id, cur.public_key, keys::role_name(cur.role), cur.workspace,
                                         i.public_key, keys::role_name(i.role), i.workspace));
    if (i.revoked) {  // a revocation in either wins
      cur.revoked_at = cur.revoked ? earliest(cur.revoked_at, i.revoked_at) : i.revoked_at;
      cur.revoked = true;
    }
  }
  return shared;
}

keys::TokenMap merge_tokens(keys::TokenMap shared, const std::vector<keys::StoredToken>& imported,
                            const std::string& source) {
  for (const keys::StoredToken& t : imported) {
    auto same = shared.find(t.info.id);
    if (same == shared.end()) {
      shared.emplace(t.info.id, t);
      continue;
    }
    keys::StoredToken& cur = same->second;
    if (cur.secret_hash != t.secret_hash || cur.info.role != t.info.role || cur.info.workspace != t.info.workspace)
      throw conflict(source, fmt::format("token {} has another secret, role or workspace there than in the file",
                                         t.info.id));
    // A use taken on either side stays taken; a revocation on either side holds.
    cur.info.uses_left = std::min(cur.info.uses_left, t.info.uses_left);
    cur.info.last_used_at = latest(cur.info.last_used_at, t.info.last_used_at);
    if (t.info.revoked) {
      cur.info.revoked_at = cur.info.revoked ? earliest(cur.info.revoked_at, t.info.revoked_at) : t.info.revoked_at;
      cur.info.revoked = true;
    }
  }
  return shared;
}

ImportReport import_file_stores(const fs::path& data_dir, const std::string& daemon_key_z85,
                                keys::IdentityBacking& identities, keys::TokenBacking& tokens) {
  ImportReport report;
  const fs::path identity_file = keys::IdentityStore::default_path(data_dir);
  const fs::path token_file = keys::TokenStore::default_path(data_dir);
  std::error_code ec;
  const bool have_identities = fs::exists(identity_file, ec);
  const bool have_tokens = fs::exists(token_file, ec);
  if (!have_identities && !have_tokens) return report;

  // Decide both merges before writing anything. The file stores validate their files.
  keys::IdentityMap identities_before, identities_after;
  if (have_identities) {
    keys::IdentityStore file(identity_file);  // throws, naming the file, if it is not valid
    for (keys::Identity& i : identities.load()) identities_before.emplace(i.id, std::move(i));
    identities_after = merge_identities(identities_before, file.list(), identity_file.string());
    for (const auto& [id, i] : identities_after) {
      auto was = identities_before.find(id);
      if (was == identities_before.end()) ++report.identities_added;
      else if (i.revoked && !was->second.revoked) ++report.identities_revoked;
    }
  }
  keys::TokenMap tokens_before, tokens_after;
  if (have_tokens) {
    keys::TokenStore validated(token_file, daemon_key_z85);  // throws, naming the file, if it is not valid
    for (keys::StoredToken& t : tokens.load()) tokens_before.emplace(t.info.id, std::move(t));
    tokens_after = merge_tokens(tokens_before, keys::TokenFile(token_file, daemon_key_z85).load(), token_file.string());
    for (const auto& [id, t] : tokens_after) {
      auto was = tokens_before.find(id);
      if (was == tokens_before.end()) ++report.tokens_added;
      else if (!(was->second == t)) ++report.tokens_updated;
    }
  }
  if (have_identities) identities.save(identities_before, identities_after);
  if (have_tokens) tokens.save(tokens_before, tokens_after);
  for (const fs::path& f : {identity_file, token_file}) {
    if (!fs::exists(f, ec)) continue;
    fs::path to = f;
    to += ".imported";
    fs::rename(f, to);  // throws filesystem_error naming both (then the next takeover imports again)
    report.renamed.push_back(to);
  }
  spdlog::info("imported {} and {} into {}: {} identities added, {} newly revoked, {} tokens added, "
               "{} updated; renamed to *.imported (not read again)",
               identity_file.string(), token_file.string(), identities.describe(), report.identities_added,
               report.identities_revoked, report.tokens_added, report.tokens_updated);
  return report;
}

}  // namespace muster::broker
