// local_identity.hpp — the enrolling side (a worker or the CLI): its key pair and what the
// daemon said when it enrolled, kept in its --data-dir as
//   <name>-curve.key       the peer's secret key file (0600)
//   <name>-curve.pub       its public key file
//   <name>-identity.json   {identity_id, role, workspace, name, public_key, daemon_public_key,
//                           enrolled_at} (0600)
// Owns: loading/creating these files and deciding, before any socket is opened, whether to
// enroll (and with which daemon key) or to reuse a saved identity.
// Must never: trust a daemon key other than the one saved at enrollment or carried by the
// token; replace a saved daemon key silently; send anything to a daemon whose key came from
// anywhere but the token, the saved identity or explicit configuration.
#pragma once

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "muster/curve_keys.hpp"
#include "muster/role.hpp"
#include "muster/timestamp.hpp"

namespace muster::keys {

// The daemon key from a token, the saved identity or the configuration disagree. what() says
// which keys, which file, and what to do (never to re-trust automatically).
class DaemonKeyMismatch : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Not enrolled and no token to enroll with. what() lists the three token locations.
class NotEnrolled : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LocalIdentityPaths {
  std::filesystem::path secret_key;  // <name>-curve.key
  std::filesystem::path public_key;  // <name>-curve.pub
  std::filesystem::path identity;    // <name>-identity.json
};

// Throws std::invalid_argument unless is_valid_file_stem(name).
LocalIdentityPaths local_identity_paths(const std::filesystem::path& data_dir, std::string_view name);

struct LocalIdentity {
  std::string identity_id;
  Role role = Role::Worker;
  std::string workspace;
  std::string name;
  std::string public_key;         // Z85: this peer's key, as enrolled
  std::string daemon_public_key;  // Z85: the daemon it enrolled with
  TimePoint enrolled_at;
};

// <name>-identity.json, or nullopt if it does not exist. Throws std::runtime_error (naming the
// file) if it is malformed.
std::optional<LocalIdentity> load_local_identity(const std::filesystem::path& data_dir, std::string_view name);
// Writes <name>-identity.json atomically, mode 0600.
void save_local_identity(const std::filesystem::path& data_dir, std::string_view name, const LocalIdentity& id);

// ensure_data_dir(data_dir), then load_or_create_key_pair on <name>-curve.key/.pub.
KeyPair load_or_create_local_keys(const std::filesystem::path& data_dir, std::string_view name,
                                  bool* created = nullptr);

// What the enrolling side should do next.
struct EnrollmentPlan {
  KeyPair keys;                          // ZMQ_CURVE_PUBLICKEY / ZMQ_CURVE_SECRETKEY
  std::string daemon_public_key;         // ZMQ_CURVE_SERVERKEY, for enrollment and every socket
  std::optional<LocalIdentity> identity; // set: already enrolled; connect with `keys`
  std::optional<std::string> token;      // set: enroll first, sending this token text
  bool needs_enrollment() const { return !identity.has_value(); }
};

// Decides from the files in `data_dir`, the token text (if one was found: see
// token_source.hpp) and an explicitly configured daemon key (optional, Z85):
//  - saved identity present: reuse it. If the token's or the configured daemon key differs
//    from the saved one → DaemonKeyMismatch. If the saved identity names another public key
//    than <name>-curve.key holds → std::runtime_error.
//  - no saved identity: a token is required (else NotEnrolled) and must parse (else
//    std::invalid_argument with the parse message); the daemon key is the token's; a
//    configured daemon key that differs → DaemonKeyMismatch.
// Creates the key pair on first use. Opens no socket.
EnrollmentPlan plan_enrollment(const std::filesystem::path& data_dir, std::string_view name,
                               const std::optional<std::string>& token_text,
                               const std::optional<std::string>& configured_daemon_key = std::nullopt);

// After an ok EnrollResponse: builds the LocalIdentity from the plan and the response fields,
// saves it, and returns it. Throws std::invalid_argument if `role` is not a role name.
LocalIdentity record_enrollment(const std::filesystem::path& data_dir, std::string_view name,
                                const EnrollmentPlan& plan, std::string_view identity_id,
                                std::string_view role, std::string_view workspace,
                                std::string_view enrolled_name, TimePoint now);

}  // namespace muster::keys
