// cmd_help.cpp — `muster help [COMMAND...|exit-codes]`, `muster completion bash|zsh|fish` and
// `muster man` (troff), all generated from the CLI11 app (command_tree.hpp).
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli.hpp"
#include "command_tree.hpp"
#include "contexts.hpp"

namespace muster::cli {

namespace {

const std::vector<std::string> kTopics = {"exit-codes"};

std::string man_extra() {
  std::string out = ".SH EXIT STATUS\n";
  for (auto* r = exit_rows_begin(); r != exit_rows_end(); ++r)
    out += fmt::format(".TP\n.B {}\n{} \\- {}\n", code(r->exit), r->name, r->meaning);
  out += ".SH ENVIRONMENT\n"
         ".TP\n.B MUSTER_CONTEXT\nthe connection profile to use when \\fB\\-\\-context\\fR is not given\n"
         ".TP\n.B MUSTER_RUNTIME_DIR\nwhere the local ipc:// sockets are (else $XDG_RUNTIME_DIR/muster, else /tmp/muster\\-$UID)\n"
         ".TP\n.B MUSTER_DATA_DIR\nCURVE keys and identities (else $XDG_DATA_HOME/muster)\n"
         ".TP\n.B MUSTER_ENROLLMENT_TOKEN\nan enrollment token (else $XDG_CONFIG_HOME/muster/enrollment\\-token)\n"
         ".SH FILES\n.TP\n.I $XDG_CONFIG_HOME/muster/contexts.json\nnamed connection profiles "
         "(\\fBmuster context\\fR); ~/.config/muster/contexts.json when XDG_CONFIG_HOME is unset\n"
         ".SH SEE ALSO\n\\fBmusterd\\fR(8), the muster README and docs/PROTOCOL.md\n";
  return out;
}

int help(Cli& cli, const std::vector<std::string>& topic) {
  // The formatter directly: App::help() would follow the parsed subcommand (this one).
  auto help_of = [](CLI::App* app, const std::string& usage_name) {
    return app->get_formatter()->make_help(app, usage_name, CLI::AppFormatMode::Normal);
  };
  if (topic.empty()) {
    std::cout << help_of(&cli.app, cli.app.get_name());
    return code(Exit::Ok);
  }
  if (topic.size() == 1 && topic[0] == "exit-codes") {
    std::cout << "Exit statuses of muster (by class; stable for scripts):\n\n" << exit_code_table();
    return code(Exit::Ok);
  }
  CLI::App* at = &cli.app;
  for (auto& word : topic) {
    try {
      at = at->get_subcommand(word);
    } catch (const CLI::OptionNotFound&) {
      throw std::invalid_argument(fmt::format("no help topic '{}' (commands: see `muster help`; topics: exit-codes)",
                                              fmt::join(topic, " ")));
    }
  }
  std::cout << help_of(at, fmt::format("{} {}", cli.app.get_name(), fmt::join(topic, " ")));
  return code(Exit::Ok);
}

}  // namespace

void add_help_commands(Cli& cli) {
  auto topic = std::make_shared<std::vector<std::string>>();
  auto* help_cmd = cli.app.add_subcommand("help", "Help on muster, a command (`muster help token create`) "
                                                  "or a topic (`muster help exit-codes`)");
  help_cmd->add_option("TOPIC", *topic, "A command path or exit-codes");
  cli.on(help_cmd, [&cli, topic] { return help(cli, *topic); });

  auto shell = std::make_shared<std::string>();
  auto* completion = cli.app.add_subcommand("completion", "Print a shell completion script: bash, zsh or fish");
  completion->add_option("SHELL", *shell, "bash, zsh or fish")->required()->check(CLI::IsMember({"bash", "zsh", "fish"}));
  completion->footer("bash: source <(muster completion bash)   zsh: source <(muster completion zsh)   "
                     "fish: muster completion fish | source");
  cli.on(completion, [&cli, shell] {
    if (*shell == "bash") std::cout << bash_completion(cli.app, kTopics);
    else if (*shell == "zsh") std::cout << zsh_completion(cli.app, kTopics);
    else std::cout << fish_completion(cli.app, kTopics);
    return code(Exit::Ok);
  });

  auto* man = cli.app.add_subcommand("man", "Print the man page (troff): muster man | man -l -");
  auto output = std::make_shared<std::string>();
  man->add_option("-o,--output", *output, "Write it to this file instead of stdout");
  cli.on(man, [&cli, output] {
    auto page = man_page(cli.app, MUSTER_VERSION, man_extra());
    if (output->empty()) {
      std::cout << page;
      return code(Exit::Ok);
    }
    std::ofstream out(*output, std::ios::trunc);
    if (!(out << page).flush()) throw std::runtime_error(fmt::format("cannot write {}", *output));
    return code(Exit::Ok);
  });
}

}  // namespace muster::cli
