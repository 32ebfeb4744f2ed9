// key_file.cpp — CURVE key files: parse, format, load with the 0600 rule, create on first use.
// Must never: include secret key text in an exception message.
#include "muster/key_file.hpp"

#include <algorithm>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "muster/timestamp.hpp"

namespace muster::keys {
namespace fs = std::filesystem;

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

struct Parsed {
  std::optional<std::string> pub;
  std::optional<std::string> sec;
};

Parsed parse_lines(std::string_view text, const fs::path& source) {
  Parsed p;
  std::size_t lineno = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++lineno;
    if (line.empty() || line.front() == '#') continue;
    auto eq = line.find('=');
    if (eq == std::string_view::npos)
      throw KeyFileError(fmt::format("{}: line {}: expected `public=<z85>` or `secret=<z85>`",
                                     source.string(), lineno));
    std::string_view name = trim(line.substr(0, eq));
    std::string_view value = trim(line.substr(eq + 1));
    std::optional<std::string>* slot = nullptr;
    if (name == "public") slot = &p.pub;
    else if (name == "secret") slot = &p.sec;
    else
      throw KeyFileError(fmt::format("{}: line {}: unknown field `{}` (expected public or secret)",
                                     source.string(), lineno, name));
    if (slot->has_value())
      throw KeyFileError(fmt::format("{}: line {}: `{}` given twice", source.string(), lineno, name));
    if (!is_z85_key(value))
      throw KeyFileError(fmt::format("{}: line {}: `{}` is not a 40-character Z85 key",
                                     source.string(), lineno, name));
    *slot = std::string(value);
  }
  return p;
}

}  // namespace

std::string format_secret_key_file(const KeyPair& pair) {
  return fmt::format(
      "# muster CURVE key pair. Secret: keep this file private (chmod 600).\n"
      "public={}\nsecret={}\n",
      pair.public_key, pair.secret_key);
}

std::string format_public_key_file(std::string_view public_z85) {
  return fmt::format("# muster CURVE public key. Safe to share.\npublic={}\n", public_z85);
}

KeyPair parse_secret_key_file(std::string_view text, const fs::path& source) {
  Parsed p = parse_lines(text, source);
  if (!p.sec) throw KeyFileError(fmt::format("{}: no `secret=` line: not a secret key file", source.string()));
  if (!p.pub) throw KeyFileError(fmt::format("{}: no `public=` line", source.string()));
  KeyPair kp(std::move(*p.pub), std::move(*p.sec));
  if (!key_pair_matches(kp))
    throw KeyFileError(fmt::format(
        "{}: the public key does not belong to the secret key (file damaged or edited)",
        source.string()));
  return kp;
}

std::string parse_public_key_file(std::string_view text, const fs::path& source) {
  Parsed p = parse_lines(text, source);
  if (p.sec)
    throw KeyFileError(fmt::format(
        "{} contains a secret key; a public key file must contain only `public=`. Do not share "
        "this file.",
        source.string()));
  if (!p.pub) throw KeyFileError(fmt::format("{}: no `public=` line", source.string()));
  return std::move(*p.pub);
}

KeyPair load_secret_key_file(const fs::path& path) {
  auto text = read_private_file(path);
  if (!text) throw KeyFileError(fmt::format("secret key file {} does not exist", path.string()));
  KeyPair kp = parse_secret_key_file(*text, path);
  if (!text->empty()) std::fill(text->begin(), text->end(), '\0');
  return kp;
}

std::string load_public_key_file(const fs::path& path) {
  auto text = read_file(path);
  if (!text) throw KeyFileError(fmt::format("public key file {} does not exist", path.string()));
  return parse_public_key_file(*text, path);
}

void write_secret_key_file(const fs::path& path, const KeyPair& pair) {
  if (!key_pair_matches(pair))
    throw std::invalid_argument("refusing to write a key pair whose halves do not match");
  std::string text = format_secret_key_file(pair);
  write_file_atomic(path, text, 0600);
  std::fill(text.begin(), text.end(), '\0');
}

void write_public_key_file(const fs::path& path, std::string_view public_z85) {
  if (!is_z85_key(public_z85)) throw std::invalid_argument("not a 40-character Z85 public key");
  write_file_atomic(path, format_public_key_file(public_z85), 0644);
}

KeyPair load_or_create_key_pair(const fs::path& secret_path, const fs::path& public_path,
                                bool* created) {
  if (created) *created = false;
  std::error_code ec;
  if (!fs::exists(secret_path, ec)) {
    if (ec) throw std::runtime_error(fmt::format("cannot stat {}: {}", secret_path.string(), ec.message()));
    KeyPair kp = generate_key_pair();
    // Public file first: a crash in between leaves a stale .pub, which the next start rewrites
    // from the secret file; never a secret without the matching public file being fixable.
    write_public_key_file(public_path, kp.public_key);
    write_secret_key_file(secret_path, kp);
    if (created) *created = true;
    spdlog::info("created CURVE key pair {} (public key {})", secret_path.string(), kp.public_key);
    return kp;
  }
  KeyPair kp = load_secret_key_file(secret_path);
  std::optional<std::string> pub;
  try {
    if (auto text = read_file(public_path)) pub = parse_public_key_file(*text, public_path);
  } catch (const KeyFileError& e) {
    spdlog::warn("{}; rewriting it from {}", e.what(), secret_path.string());
  }
  if (!pub || *pub != kp.public_key) {
    if (pub) spdlog::warn("{} does not match {}; rewriting it", public_path.string(), secret_path.string());
    write_public_key_file(public_path, kp.public_key);
  }
  return kp;
}

fs::path daemon_secret_key_path(const fs::path& data_dir) { return data_dir / kDaemonSecretKeyFile; }
fs::path daemon_public_key_path(const fs::path& data_dir) { return data_dir / kDaemonPublicKeyFile; }

KeyPair load_or_create_daemon_keys(const fs::path& data_dir, bool* created) {
  ensure_data_dir(data_dir);
  return load_or_create_key_pair(daemon_secret_key_path(data_dir), daemon_public_key_path(data_dir),
                                 created);
}

KeyPair rotate_daemon_keys(const fs::path& data_dir, std::chrono::system_clock::time_point now) {
  ensure_data_dir(data_dir);
  const fs::path sec = daemon_secret_key_path(data_dir), pub = daemon_public_key_path(data_dir);
  std::string stamp = format_timestamp(now);
  for (char& c : stamp)
    if (c == ':') c = '-';  // keep file names portable
  std::error_code ec;
  if (fs::exists(sec, ec)) {
    load_secret_key_file(sec);  // refuse to retire a damaged or world-readable key silently
    fs::rename(sec, fs::path(sec.string() + ".retired-" + stamp));
    if (fs::exists(pub, ec)) fs::rename(pub, fs::path(pub.string() + ".retired-" + stamp));
  }
  bool created = false;
  KeyPair kp = load_or_create_key_pair(sec, pub, &created);
  return kp;
}

}  // namespace muster::keys
