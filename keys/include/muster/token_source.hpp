// token_source.hpp — where an enrolling worker or CLI finds its enrollment token, in order:
//   1. the environment variable MUSTER_ENROLLMENT_TOKEN (if non-empty);
//   2. the file given with --enrollment-token-file (it must exist);
//   3. $XDG_CONFIG_HOME/muster/enrollment-token, XDG_CONFIG_HOME defaulting to ~/.config
//      (used only if it exists; a relative XDG_CONFIG_HOME is ignored, as the XDG spec says).
// Surrounding whitespace (the newline of `echo TOKEN > file`) is trimmed; nothing else.
// Owns: that order and the reading of the token file.
// Must never: print a token; read the real environment except in token_source_from_env().
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace muster::keys {

inline constexpr const char* kTokenEnvVar = "MUSTER_ENROLLMENT_TOKEN";

struct TokenSourceInputs {
  std::optional<std::string> env_token;              // value of MUSTER_ENROLLMENT_TOKEN
  std::optional<std::filesystem::path> token_file;   // --enrollment-token-file
  std::optional<std::string> xdg_config_home;        // value of XDG_CONFIG_HOME
  std::optional<std::string> home;                   // value of HOME
};

// Fills the inputs from the process environment and the command-line flag.
TokenSourceInputs token_source_from_env(std::optional<std::filesystem::path> token_file_flag);

// $XDG_CONFIG_HOME/muster/enrollment-token or ~/.config/muster/enrollment-token; nullopt if
// neither an absolute XDG_CONFIG_HOME nor HOME is known.
std::optional<std::filesystem::path> default_token_file(const TokenSourceInputs& in);

struct FoundToken {
  std::string token;   // trimmed text (not yet parsed: see parse_token)
  std::string source;  // "MUSTER_ENROLLMENT_TOKEN" or "file /path": for messages, not secret
};

// The token by the order above, or nullopt if none of the three has one. Throws
// std::runtime_error if --enrollment-token-file names a missing/unreadable or empty file.
// Logs a warning if a token file can be read by group or others.
std::optional<FoundToken> find_enrollment_token(const TokenSourceInputs& in);

}  // namespace muster::keys
