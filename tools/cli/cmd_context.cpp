// cmd_context.cpp — `muster context add|use|list|show|remove`: named connection profiles
// (contexts.hpp), like `nats context`. The selected context supplies --client-address,
// --data-dir (keys, identity, saved daemon key), --name, --enrollment-address,
// --enrollment-token-file, --insecure and --admin unless given on the command line.
#include <iostream>

#include <fmt/format.h>

#include "cli.hpp"
#include "table.hpp"

namespace muster::cli {

namespace {
struct ContextArgs {
  std::string name;
  Context ctx;
  bool use = false, json = false;
};

Json context_json(const std::string& name, const Context& c, bool current) {
  return {{"name", name}, {"current", current}, {"description", c.description},
          {"client_address", c.client_address}, {"data_dir", c.data_dir}, {"identity_name", c.name},
          {"enrollment_address", c.enrollment_address}, {"enrollment_token_file", c.enrollment_token_file},
          {"insecure", c.insecure}, {"admin", c.admin}};
}
}  // namespace

void add_context_commands(Cli& cli) {
  auto a = std::make_shared<ContextArgs>();
  auto* group = cli.app.add_subcommand("context", "Named connection profiles (stored in " +
                                                      contexts_path().string() + ")")
                    ->require_subcommand(1);

  auto* add = group->add_subcommand("add", "Add or replace a context");
  add->add_option("NAME", a->name, "Context name")->required();
  add->add_option("--client-address", a->ctx.client_address, "The daemon's client endpoint (a failover pair: both, comma-separated)")->required();
  add->add_option("--data-dir", a->ctx.data_dir, "Where the CURVE keys, identity and saved daemon key live");
  add->add_option("--name", a->ctx.name, "Identity name in the data dir");
  add->add_option("--enrollment-address", a->ctx.enrollment_address, "The daemon's enrollment endpoint");
  add->add_option("--enrollment-token-file", a->ctx.enrollment_token_file, "File holding an enrollment token");
  add->add_flag("--insecure", a->ctx.insecure, "tcp:// without CURVE (clear text!)");
  add->add_flag("--admin", a->ctx.admin, "Connect as the admin identity");
  add->add_option("--description", a->ctx.description, "A note shown in `muster context list`");
  add->add_flag("--use", a->use, "Also make it the current context");
  cli.on(add, [a] {
    check_context_name(a->name);
    auto file = load_contexts();
    bool replaced = file.contexts.contains(a->name);
    file.contexts[a->name] = a->ctx;
    if (a->use || file.contexts.size() == 1) file.current = a->name;
    save_contexts(file);
    std::cerr << fmt::format("context '{}' {}{}\n", a->name, replaced ? "replaced" : "added",
                             file.current == a->name ? " (current)" : "");
    return code(Exit::Ok);
  });

  auto* use = group->add_subcommand("use", "Make a context the current one");
  use->add_option("NAME", a->name, "Context name")->required();
  cli.on(use, [a] {
    auto file = load_contexts();
    if (!file.contexts.contains(a->name))
      throw std::invalid_argument(fmt::format("context '{}' is not defined (see `muster context list`)", a->name));
    file.current = a->name;
    save_contexts(file);
    std::cerr << fmt::format("using context '{}'\n", a->name);
    return code(Exit::Ok);
  });

  auto* list = group->add_subcommand("list", "List contexts; * marks the current one");
  list->add_flag("--json", a->json, "Print JSON");
  cli.on(list, [a] {
    auto file = load_contexts();
    if (a->json) {
      Json j = Json::array();
      for (auto& [n, c] : file.contexts) j.push_back(context_json(n, c, n == file.current));
      std::cout << j.dump(2) << "\n";
      return code(Exit::Ok);
    }
    Table t({"", "NAME", "CLIENT ADDRESS", "DATA DIR", "DESCRIPTION"});
    for (auto& [n, c] : file.contexts)
      t.row({n == file.current ? "*" : "", n, c.client_address, c.data_dir.empty() ? "-" : c.data_dir, c.description});
    t.print(std::cout);
    return code(Exit::Ok);
  });

  auto* show = group->add_subcommand("show", "Show a context (default: the one in use)");
  show->add_option("NAME", a->name, "Context name");
  cli.on(show, [&cli, a] {
    auto file = load_contexts();
    std::string n = a->name.empty() ? cli.context_name() : a->name;
    auto it = file.contexts.find(n);
    if (n.empty()) throw std::invalid_argument("no context is in use (see `muster context use`)");
    if (it == file.contexts.end())
      throw std::invalid_argument(fmt::format("context '{}' is not defined (see `muster context list`)", n));
    std::cout << context_json(n, it->second, n == file.current).dump(2) << "\n";
    return code(Exit::Ok);
  });

  auto* remove = group->add_subcommand("remove", "Remove a context");
  remove->add_option("NAME", a->name, "Context name")->required();
  cli.on(remove, [a] {
    auto file = load_contexts();
    if (file.contexts.erase(a->name) == 0)
      throw std::invalid_argument(fmt::format("context '{}' is not defined (see `muster context list`)", a->name));
    if (file.current == a->name) file.current.clear();
    save_contexts(file);
    std::cerr << fmt::format("context '{}' removed\n", a->name);
    return code(Exit::Ok);
  });
}

}  // namespace muster::cli
