// cli.hpp — what every subcommand group of the `muster` CLI shares: the CLI11 app, the
// connection options (flags over the selected context over defaults), the client, and the
// registry "subcommand → action".
// Owns: the wiring between main.cpp and the cmd_*.cpp files; each group adds its subcommands in
// its own add_*_commands (one file per group, so groups grow without touching each other).
// Must never: print results or decide exit codes for a group (the group's action does), or
// connect before an action asks for the client.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "contexts.hpp"
#include "exit_codes.hpp"
#include "muster/client.hpp"

namespace muster::cli {

class Cli {
 public:
  Cli();

  CLI::App app;
  // An action returns the process's exit status (exit_codes.hpp). It may throw CallError,
  // EnrollmentError (mapped by their code) or std::invalid_argument (usage).
  using Action = std::function<int()>;
  void on(CLI::App* subcommand, Action action) { actions_.emplace_back(subcommand, std::move(action)); }

  // Parses argv and runs the chosen action; the process's exit status.
  int run(int argc, char** argv);

  // The connection options in effect (flags, else the selected context, else defaults). The
  // context is read on first use, so commands that need no connection (help, context) work
  // whatever the contexts file says.
  const ClientOptions& client_options();
  // The context in use ("" if none) — for `muster check` and `muster context`.
  const std::string& context_name();
  // Connects on first use.
  Client& client();

 private:
  void apply_context();  // once
  bool context_applied_ = false;
  int dispatch();

  ClientOptions copt_;
  std::unique_ptr<Client> client_;
  std::vector<std::pair<CLI::App*, Action>> actions_;
  std::string context_flag_, context_name_, log_level_ = "warn";
  std::chrono::milliseconds enroll_timeout_{10000};
  bool as_admin_ = false;
  // The options a context can supply: a context fills only those not given on the command line.
  CLI::Option *o_address_ = nullptr, *o_insecure_ = nullptr, *o_data_dir_ = nullptr, *o_name_ = nullptr,
              *o_enroll_address_ = nullptr, *o_token_file_ = nullptr, *o_admin_ = nullptr;
};

// Adds an option taking a duration (`500ms`, `2s`, `1m`, `1h30m`: keys::parse_duration_ms).
// `legacy_ms_name` (e.g. "--timeout-ms"), if given, is a hidden second spelling that also takes
// a plain number of milliseconds, for scripts written before durations.
CLI::Option* add_duration_option(CLI::App* app, const std::string& name,
                                 std::chrono::milliseconds& target, const std::string& description,
                                 const std::string& legacy_ms_name = "");

// The groups, one file each (cmd_*.cpp).
void add_call_commands(Cli& cli);      // call
void add_job_commands(Cli& cli);       // job get|ls|cancel
void add_node_commands(Cli& cli);      // nodes, node info, workers
void add_status_commands(Cli& cli);    // status
void add_admin_commands(Cli& cli);     // token, keys
void add_check_command(Cli& cli);      // check
void add_context_commands(Cli& cli);   // context
void add_help_commands(Cli& cli);      // help, completion, man
void add_watch_commands(Cli& cli);     // watch

// The default client endpoint when none is configured (as the client library picks it).
std::string default_client_address();

}  // namespace muster::cli
