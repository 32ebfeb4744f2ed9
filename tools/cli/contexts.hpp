// contexts.hpp — named connection profiles of the `muster` CLI (like `nats context`): which
// daemon endpoint to use and where the CURVE keys, identity and saved daemon key live.
// Stored in $XDG_CONFIG_HOME/muster/contexts.json (else ~/.config/muster/contexts.json):
//   {"current": "prod", "contexts": {"prod": {"client_address": "tcp://10.0.0.5:7802",
//    "data_dir": "/home/me/.local/share/muster-prod", "name": "client", ...}}}
// Owns: the file's format, the name rules, and the choice of the context in use
// (--context, else $MUSTER_CONTEXT, else the file's "current").
// Must never: store secrets (keys stay in their data dir, tokens in their files); write the
// file non-atomically or readable by others.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace muster::cli {

struct Context {
  std::string description;
  std::string client_address;         // the daemon's client endpoint (a pair: "A,B")
  std::string data_dir;               // CURVE keys, identity and saved daemon key (tcp://)
  std::string name;                   // identity name in data_dir
  std::string enrollment_address;
  std::string enrollment_token_file;
  bool insecure = false;              // tcp:// without CURVE
  bool admin = false;                 // connect as the admin identity
};

struct ContextFile {
  std::string current;                // "" = none selected
  std::map<std::string, Context> contexts;
};

std::filesystem::path contexts_path();
// An absent file is an empty ContextFile. Throws std::runtime_error naming the file if it is
// not valid JSON of this shape.
ContextFile load_contexts(const std::filesystem::path& path = contexts_path());
void save_contexts(const ContextFile& file, const std::filesystem::path& path = contexts_path());

// Names: 1-64 of A-Z a-z 0-9 _ . - (throws std::invalid_argument otherwise).
void check_context_name(const std::string& name);

// The context in use: `flag` (--context) if set, else $MUSTER_CONTEXT, else file.current;
// nullopt if none is selected. Throws std::invalid_argument if a selected name is not defined.
std::optional<std::pair<std::string, Context>> selected_context(const ContextFile& file,
                                                                const std::string& flag);

}  // namespace muster::cli
