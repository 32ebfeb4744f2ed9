// command_tree.hpp — the `muster` CLI as data (every command path, its description, options
// and positionals), read from the CLI11 app so that help, shell completion and the man page
// are generated from the one definition and cannot drift from it.
// Owns: the walk of the CLI11 app and the three renderings (bash, zsh, fish completion; troff).
// Must never: hard-code a command or option name (everything comes from the app).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace muster::cli {

struct OptionInfo {
  std::vector<std::string> names;  // "--timeout", "-t", ...
  std::string value;               // "" for a flag, else its type name (DURATION, TEXT, ...)
  std::string description;
};
struct PositionalInfo {
  std::string name, description;
  bool required = false;
};
struct CommandInfo {
  std::vector<std::string> path;   // {} for the root, {"token", "create"}
  std::string description, footer;
  std::vector<std::string> subcommands;
  std::vector<OptionInfo> options;
  std::vector<PositionalInfo> positionals;
};

std::vector<CommandInfo> command_tree(CLI::App& app);

// Extra words completed after `muster help` (topics that are not commands).
std::string bash_completion(CLI::App& app, const std::vector<std::string>& help_topics);
std::string zsh_completion(CLI::App& app, const std::vector<std::string>& help_topics);
std::string fish_completion(CLI::App& app, const std::vector<std::string>& help_topics);

// The man page (troff, section 1). `extra_sections`: already-formatted troff appended at the end
// (EXIT STATUS, FILES, ENVIRONMENT).
std::string man_page(CLI::App& app, const std::string& version, const std::string& extra_sections);

}  // namespace muster::cli
