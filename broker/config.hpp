// config.hpp — musterd's config file: TOML read and written through CLI11, so that every
// command-line flag is a setting of the file with no second list to keep in step.
// Owns: the mapping "--flag-name VALUE" <-> `flag-name = value` (TOML, top-level keys), type
// and value checks with the file's name and line in every error, and the effective settings
// as TOML (`--print-config`), which --config reads back unchanged.
// Must never: open a socket, create a file, or accept a key, type or value the command line
// would refuse (an unknown key is an error, not a warning).
//
// Adding a setting: add the flag to the CLI11 app (app.add_option / add_flag) as usual. Its long
// name without "--" is its key; its type (CLI11's INT/UINT/FLOAT/TEXT/BOOLEAN) the TOML type the
// file must use; its checks (->check(...)) run on the file's value too. A flag that must not be
// a setting (like --version) is marked ->configurable(false).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace muster::broker {

// A CLI11 config formatter for TOML files, strict about keys, types and values.
//  - Keys are the app's configurable long flag names without "--"; tables are refused.
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
  // each after its help text as a comment when `write_description`. An option with neither a
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
// effective_config(app) and exits) to `app`.
void add_config_options(CLI::App& app, bool* print_config);

// The effective settings of a parsed `app` as TOML, with the help texts as comments.
std::string effective_config(const CLI::App& app);

}  // namespace muster::broker
