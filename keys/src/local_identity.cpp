// local_identity.cpp — the enrolling side's files and the enroll-or-reuse decision.
// Must never: overwrite a saved identity with a different daemon key.
#include "muster/local_identity.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "muster/key_file.hpp"
#include "muster/names.hpp"
#include "muster/secure_file.hpp"
#include "muster/token.hpp"

namespace muster::keys {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr const char* kFormat = "muster-local-identity";
constexpr int kVersion = 1;
}  // namespace

LocalIdentityPaths local_identity_paths(const fs::path& data_dir, std::string_view name) {
  if (!is_valid_file_stem(name))
    throw std::invalid_argument(fmt::format(
        "invalid identity name '{}': use 1-64 of A-Z a-z 0-9 _ . - (not starting with . or -)",
        is_valid_label(name) ? name : std::string_view("<unprintable>")));
  std::string n(name);
  return {data_dir / (n + "-curve.key"), data_dir / (n + "-curve.pub"), data_dir / (n + "-identity.json")};
}

std::optional<LocalIdentity> load_local_identity(const fs::path& data_dir, std::string_view name) {
  const auto paths = local_identity_paths(data_dir, name);
  auto text = read_file(paths.identity);
  if (!text) return std::nullopt;
  try {
    json j = json::parse(*text);
    if (j.value("format", "") != kFormat || j.value("version", 0) != kVersion)
      throw std::runtime_error("not a muster identity file (format/version)");
    LocalIdentity id;
    id.identity_id = j.at("identity_id").get<std::string>();
    auto role = parse_role(j.at("role").get<std::string>());
    if (!role) throw std::runtime_error("bad role");
    id.role = *role;
    id.workspace = j.at("workspace").get<std::string>();
    id.name = j.value("name", "");
    id.public_key = j.at("public_key").get<std::string>();
    id.daemon_public_key = j.at("daemon_public_key").get<std::string>();
    if (!is_z85_key(id.public_key) || !is_z85_key(id.daemon_public_key))
      throw std::runtime_error("public_key or daemon_public_key is not a Z85 key");
    auto at = parse_timestamp(j.at("enrolled_at").get<std::string>());
    if (!at) throw std::runtime_error("bad enrolled_at");
    id.enrolled_at = *at;
    return id;
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{} is not a valid identity file: {} (delete it to enroll again)",
                                         paths.identity.string(), e.what()));
  }
}

void save_local_identity(const fs::path& data_dir, std::string_view name, const LocalIdentity& id) {
  const auto paths = local_identity_paths(data_dir, name);
  json j = {{"format", kFormat},
            {"version", kVersion},
            {"identity_id", id.identity_id},
            {"role", role_name(id.role)},
            {"workspace", id.workspace},
            {"name", id.name},
            {"public_key", id.public_key},
            {"daemon_public_key", id.daemon_public_key},
            {"enrolled_at", format_timestamp(id.enrolled_at)}};
  write_file_atomic(paths.identity, j.dump(2) + "\n", 0600);
}

KeyPair load_or_create_local_keys(const fs::path& data_dir, std::string_view name, bool* created) {
  const auto paths = local_identity_paths(data_dir, name);
  ensure_data_dir(data_dir);
  return load_or_create_key_pair(paths.secret_key, paths.public_key, created);
}

EnrollmentPlan plan_enrollment(const fs::path& data_dir, std::string_view name,
                               const std::optional<std::string>& token_text,
                               const std::optional<std::string>& configured_daemon_key) {
  const auto paths = local_identity_paths(data_dir, name);
  if (configured_daemon_key && !is_z85_key(*configured_daemon_key))
    throw std::invalid_argument("the configured daemon public key is not a 40-character Z85 key");

  EnrollmentPlan plan;
  plan.keys = load_or_create_local_keys(data_dir, name);

  std::optional<Token> token;
  if (token_text) {
    TokenParseResult parsed = parse_token(*token_text);
    if (!parsed) throw std::invalid_argument(parsed.message);
    token = std::move(parsed.token);
  }

  if (auto saved = load_local_identity(data_dir, name)) {
    if (saved->public_key != plan.keys.public_key)
      throw std::runtime_error(fmt::format(
          "{} was enrolled for public key {}, but {} holds key {}; the key file was replaced. "
          "Restore the old key file, or delete {} and enroll this key with a new token",
          paths.identity.string(), saved->public_key, paths.secret_key.string(),
          plan.keys.public_key, paths.identity.string()));
    if (configured_daemon_key && *configured_daemon_key != saved->daemon_public_key)
      throw DaemonKeyMismatch(fmt::format(
          "the configured daemon key {} is not the key {} that {} was enrolled with. muster never "
          "re-trusts a daemon silently: fix the configuration, or, if the daemon's key was "
          "rotated on purpose, delete {} and enroll again with a new token",
          *configured_daemon_key, saved->daemon_public_key, paths.identity.string(),
          paths.identity.string()));
    if (token && token->daemon_public_key_z85() != saved->daemon_public_key)
      throw DaemonKeyMismatch(fmt::format(
          "the enrollment token is for daemon key {}, but {} was enrolled with daemon key {}. "
          "muster never re-trusts a daemon silently: if the daemon's key was rotated on purpose, "
          "delete {} and run again to enroll with the new token; otherwise remove the token",
          token->daemon_public_key_z85(), paths.identity.string(), saved->daemon_public_key,
          paths.identity.string()));
    plan.daemon_public_key = saved->daemon_public_key;
    plan.identity = std::move(saved);
    return plan;
  }

  if (!token)
    throw NotEnrolled(fmt::format(
        "not enrolled yet ({} does not exist) and no enrollment token found: set "
        "MUSTER_ENROLLMENT_TOKEN, pass --enrollment-token-file FILE, or put the token in "
        "$XDG_CONFIG_HOME/muster/enrollment-token (default ~/.config/muster/enrollment-token)",
        paths.identity.string()));
  plan.daemon_public_key = token->daemon_public_key_z85();
  if (configured_daemon_key && *configured_daemon_key != plan.daemon_public_key)
    throw DaemonKeyMismatch(fmt::format(
        "the enrollment token is for daemon key {}, but the configured daemon key is {}; "
        "refusing to enroll with either. Get a token from the daemon you mean",
        plan.daemon_public_key, *configured_daemon_key));
  plan.token = *token_text;
  return plan;
}

LocalIdentity record_enrollment(const fs::path& data_dir, std::string_view name, const EnrollmentPlan& plan,
                                std::string_view identity_id, std::string_view role,
                                std::string_view workspace, std::string_view enrolled_name, TimePoint now) {
  auto r = parse_role(role);
  if (!r) throw std::invalid_argument(fmt::format("the daemon answered with an unknown role"));
  if (identity_id.empty()) throw std::invalid_argument("the daemon answered without an identity id");
  if (auto saved = load_local_identity(data_dir, name);
      saved && saved->daemon_public_key != plan.daemon_public_key)
    throw DaemonKeyMismatch(fmt::format("{} already holds an identity for another daemon key",
                                        local_identity_paths(data_dir, name).identity.string()));
  LocalIdentity id;
  id.identity_id = std::string(identity_id);
  id.role = *r;
  id.workspace = std::string(workspace);
  id.name = std::string(enrolled_name);
  id.public_key = plan.keys.public_key;
  id.daemon_public_key = plan.daemon_public_key;
  id.enrolled_at = now;
  save_local_identity(data_dir, name, id);
  return id;
}

}  // namespace muster::keys
