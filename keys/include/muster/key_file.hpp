// key_file.hpp — CURVE key files on disk and the daemon's own key pair.
// Format (text, one `name=value` per line, `#` comments and blank lines ignored):
//   secret file (mode 0600):  public=<z85>\nsecret=<z85>\n
//   public file (any mode):   public=<z85>\n
// Owns: reading/writing those files, the 0600 rule, `load_or_create_daemon_keys`.
// Must never: read a secret key file that group or others can access; write one non-atomically
// or with a wider mode than 0600; put a secret key into a public file or an error message.
#pragma once

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

#include "muster/curve_keys.hpp"
#include "muster/secure_file.hpp"

namespace muster::keys {

// A key file that is missing, malformed, or whose halves do not match. what() names the file.
class KeyFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr const char* kDaemonSecretKeyFile = "daemon-curve.key";
inline constexpr const char* kDaemonPublicKeyFile = "daemon-curve.pub";

// File contents for a pair / a public key.
std::string format_secret_key_file(const KeyPair& pair);
std::string format_public_key_file(std::string_view public_z85);

// Parse file contents; `source` names the file in errors. Throw KeyFileError.
// The secret form needs both lines and checks that the public key derives from the secret.
// The public form refuses a text that contains a `secret=` line.
KeyPair parse_secret_key_file(std::string_view text, const std::filesystem::path& source);
std::string parse_public_key_file(std::string_view text, const std::filesystem::path& source);

// Load from disk. Missing file → KeyFileError; group/other-accessible secret file →
// PermissionError ("... Fix: chmod 600 FILE").
KeyPair load_secret_key_file(const std::filesystem::path& path);
std::string load_public_key_file(const std::filesystem::path& path);

// Atomic writes (secure_file.hpp): secret file 0600, public file 0644.
void write_secret_key_file(const std::filesystem::path& path, const KeyPair& pair);
void write_public_key_file(const std::filesystem::path& path, std::string_view public_z85);

// Loads the pair from `secret_path` or, if that file does not exist, generates one and writes
// both files. A missing or stale public file is (re)written from the secret file, which is the
// authority. `created` (optional) tells whether a new pair was generated.
KeyPair load_or_create_key_pair(const std::filesystem::path& secret_path,
                                const std::filesystem::path& public_path, bool* created = nullptr);

// `data_dir`/daemon-curve.key and daemon-curve.pub.
std::filesystem::path daemon_secret_key_path(const std::filesystem::path& data_dir);
std::filesystem::path daemon_public_key_path(const std::filesystem::path& data_dir);

// The daemon's pair: ensure_data_dir(data_dir) (0700 if created), then load_or_create_key_pair
// on the two daemon files. Called once at daemon start.
KeyPair load_or_create_daemon_keys(const std::filesystem::path& data_dir, bool* created = nullptr);

// Key rotation (daemon stopped): renames the current pair to
// daemon-curve.key.retired-<UTC time> / .pub.retired-<UTC time> and creates a new pair.
// Every outstanding token and every peer's saved daemon key then refer to the old key; see
// docs/SECURITY.md. Returns the new pair.
KeyPair rotate_daemon_keys(const std::filesystem::path& data_dir,
                           std::chrono::system_clock::time_point now);

}  // namespace muster::keys
