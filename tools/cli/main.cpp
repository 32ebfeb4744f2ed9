// main.cpp — the `muster` command: builds the CLI from its groups (cmd_*.cpp) and runs it.
// Exit statuses by class: exit_codes.hpp (0 ok, 1 failed, 2 usage, 3 unavailable, 4 timeout,
// 5 permission denied, 6 pending, 130 cancelled).
#include "cli.hpp"

int main(int argc, char** argv) {
  muster::cli::Cli cli;
  muster::cli::add_call_commands(cli);
  muster::cli::add_job_commands(cli);
  muster::cli::add_node_commands(cli);
  muster::cli::add_status_commands(cli);
  muster::cli::add_watch_commands(cli);
  muster::cli::add_admin_commands(cli);
  muster::cli::add_check_command(cli);
  muster::cli::add_context_commands(cli);
  muster::cli::add_help_commands(cli);
  return cli.run(argc, argv);
}
