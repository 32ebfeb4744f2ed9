// config_file.hpp — the config file of muster's programs (musterd, muster-gateway,
// muster-bridge): TOML read and written through CLI11, so that every command-line flag is a
// setting of the file with no second list to keep in step.
// Owns: the mapping "--flag-name VALUE" <-> `flag-name = value` (TOML: the program's own flags
// as top-level keys, a subcommand's flags in a `[subcommand]` table, `[a.b]` for a nested one),
// type and value checks with the file's name and line in every error, and the effective
// settings as TOML (`--print-config`), which --config reads back unchanged.
// Must never: open a socket, create a file, or accept a key, type or value the command line
// would refuse (an unknown key is an error, not a warning).
//
// Adding a setting: add the flag to the CLI11 app (app.add_option / add_flag) as usual. Its long
// name without "--" is its key; its type (CLI11's INT/UINT/FLOAT/TEXT/BOOLEAN) the TOML type the
// file must use; its checks (->check(...)) run on the file's value too. A flag that must not be
// a setting (like --version) is marked ->configurable(false).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace muster {

// A CLI11 config formatter for TOML files, strict about keys, types and values.
//  - Keys are the app's configurable long flag names without "--". A table `[name]` holds the
//    settings of the app's subcommand `name` (a table inside it, `[name.sub]`, those of its
//    subcommand `sub`); any other table is refused. The subcommand itself is still chosen on
//    the command line: a table only gives its flags' values when it runs.
//  - Flags take booleans; integer options integers (UINT ones >= 0); FLOAT ones numbers;
//    TEXT ones strings; repeatable options (vectors) an array of those or a single value.
//  - Every value passes the option's validators here already, so that a bad value is named
//    with its file and line ("musterd.toml:4: ping-interval-ms: ...").
// Errors are CLI::ConfigError; a file TOML cannot parse is reported with its line and column.
class TomlConfig : public CLI::Config {
 public:
  // `app` is the application whose options the file sets; it must outlive this formatter.
  explicit TomlConfig(CLI::App& app) : app_(app) {}

  // The effective settings, one `key = value` per configurable option in declaration order,
  // each after its help text as a comment when `write_description`; then, for each subcommand
  // chosen on the command line, a `[subcommand]` table with its settings. An option with neither a
  // value nor a default is written commented out (`# key = ...`), so the text reads back as
  // the same settings. `default_also` false leaves out options the user did not set.
  std::string to_config(const CLI::App* app, bool default_also, bool write_description,
                        std::string prefix) const override;

  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override;

 private:
  CLI::App& app_;
};

// Adds `--config FILE` (TOML, read with TomlConfig; flags given on the command line win over
// the file) and `--print-config` (sets `*print_config`; the caller then prints
// effective_config(app) and exits) to `app`, the program's top-level app. For a program with
// subcommands, call app.fallthrough() too, so that both may also follow the subcommand.
void add_config_options(CLI::App& app, bool* print_config);

// The effective settings of a parsed `app` as TOML, with the help texts as comments, headed by
// the command that reads them back (`prog --config FILE serve`).
std::string effective_config(const CLI::App& app);

// Parses the command line of `app` (set up with add_config_options, `print_config` its flag).
// Returns the exit code when the program should stop here: 0 after --help or --version (printed
// by CLI11) or --print-config (effective_config printed to stdout); 2 after a bad flag or
// setting (the error printed to stderr). Returns nothing when the program should run.
std::optional<int> parse_or_exit(CLI::App& app, int argc, char** argv, const bool& print_config);

}  // namespace muster
